"""The model registry: every version of a named model, which one is the champion, and why.

One registry per model name (``results/registry/<name>/``):

- ``registry.json``: the truth. Every version with its lineage (the champion it was compared
  against, the weights it started from, the data it saw and its windows, the config's digest, the
  seed, its figures and its comparison), the champion's number, and every event that changed or
  kept the champion with its reason. Rewritten atomically, so a reader (a paper trader following
  the champion) never sees half of it, and a killed retrain leaves it as it was.
- ``versions/v0003/``: version 3's bundle (``bundle/``, self-contained and verified by its
  manifest) and its decision (``decision.json``: both models' per-bar returns on the held-out
  window and the paired test). Written before ``registry.json`` names the version, so a kill in
  between leaves a directory nobody refers to, which the next registration replaces.
- ``history.parquet``: a fingerprint of every bar the registry has trained on (time and a hash of
  the row), so a bar file whose history changed is caught, naming the first differing bar.
- ``runs/``: the challengers' training runs (resumable: the same retrain continues a killed one).

Writers (a retrain, ``rltrader models promote`` and ``rollback``) hold the registry's lock for as
long as they work: a second writer exits at once, naming the first.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rltrader.atomic import remove_stray_temp_files, write_json
from rltrader.bundle import Bundle, read_bundle
from rltrader.errors import UserInputError
from rltrader.runtime.run_lock import run_directory_lock

REGISTRY_FILE = "registry.json"
VERSIONS_DIR = "versions"
RUNS_DIR = "runs"
DECISION_FILE = "decision.json"
DEFAULT_REGISTRY_DIR = Path("results") / "registry"
REGISTRY_VERSION = 1

EventKind = Literal["promote", "keep", "skip", "manual_promote", "rollback", "break_alarm"]
"""``break_alarm``: a paper account following the champion saw its live returns fall below what it was promoted on,
or, while only its held-out window is known, turn to losses (:mod:`rltrader.registry.breaks`); the champion stays."""


class RegistryError(UserInputError):
    """A registry that cannot do what was asked (no such model or version, nothing to roll back to)."""


class DataWindow(BaseModel):
    """Bars by their open times: the first and the last (inclusive) and how many."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str
    end: str
    bars: int


class ModelVersion(BaseModel):
    """One trained challenger, promoted or not.

    :param version: its number (1, 2, ...)
    :param created_at: when it was registered (UTC)
    :param parent: the champion it was compared against (None for a registry's first model)
    :param start: how its training started: cold, warm or warm_reset
    :param weights_from: the version whose weights it started from (None when cold)
    :param seed: its training seed
    :param data_path: the bar file it trained on
    :param data_sha256: that file's content hash when it trained
    :param windows: its train, validation and held-out windows
    :param config_sha256: digest of its full config (same digest, same settings)
    :param run_dir: its training run
    :param figures: its validation score and both models' held-out figures
    :param decision: the comparison that promoted it or kept the champion (see :mod:`rltrader.registry.paired_test`)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1)
    created_at: str
    parent: int | None
    start: str
    weights_from: int | None
    seed: int
    data_path: str
    data_sha256: str
    windows: dict[str, DataWindow]
    config_sha256: str
    run_dir: str
    figures: dict[str, Any]
    decision: dict[str, Any]


class RegistryEvent(BaseModel):
    """Something that changed or kept the champion, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time: str
    kind: EventKind
    version: int | None
    champion_before: int | None
    champion_after: int | None
    reason: str
    evidence: dict[str, Any] | None = None  # a break alarm's figures: when the fall began, the live and expected mean


class RegistryFile(BaseModel):
    """``registry.json``."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = REGISTRY_VERSION
    name: str
    champion: int | None = None
    versions: list[ModelVersion] = Field(default_factory=list)
    events: list[RegistryEvent] = Field(default_factory=list)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_model_name(name: str) -> str:
    """A name that is one plain directory: letters, digits, dot, dash and underscore."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
        raise RegistryError(f"model name {name!r}: use letters, digits, '.', '-' and '_' only, e.g. xauusd-h1")
    return name


class Registry:
    """The registry of model ``name`` under ``root`` (see the module docstring).

    :param root: where registries live (default ``results/registry``)
    :param name: the model's name: its directory under ``root``
    """

    def __init__(self, root: str | Path, name: str) -> None:
        self.name = check_model_name(name)
        self.dir = Path(root) / name
        self.file = self.read()

    # ------------------------------------------------------------------ reading
    def read(self) -> RegistryFile:
        """The registry as it is on disk; an empty one if it has no file yet."""
        path = self.dir / REGISTRY_FILE
        if not path.is_file():
            return RegistryFile(name=self.name)
        try:
            return RegistryFile.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError):
            raise RegistryError(f"{path}: unreadable registry; restore it from a backup or move {self.dir} away") \
                from None

    @property
    def exists(self) -> bool:
        return (self.dir / REGISTRY_FILE).is_file()

    @property
    def champion(self) -> ModelVersion | None:
        return None if self.file.champion is None else self.version(self.file.champion)

    def version(self, number: int) -> ModelVersion:
        for entry in self.file.versions:
            if entry.version == number:
                return entry
        known = ", ".join(str(entry.version) for entry in self.file.versions) or "none yet"
        raise RegistryError(f"model {self.name!r} has no version {number} (versions: {known})")

    def version_dir(self, number: int) -> Path:
        return self.dir / VERSIONS_DIR / f"v{number:04d}"

    def bundle_dir(self, number: int) -> Path:
        return self.version_dir(number) / "bundle"

    def bundle(self, number: int) -> Bundle:
        """Version ``number``'s bundle, verified against its manifest."""
        return read_bundle(self.bundle_dir(number))

    def champion_bundle(self) -> Bundle:
        champion = self.champion
        if champion is None:
            raise RegistryError(f"model {self.name!r} has no champion yet; run `rltrader retrain {self.name} "
                                "--data_path FILE` first")
        return self.bundle(champion.version)

    @property
    def next_version(self) -> int:
        return max((entry.version for entry in self.file.versions), default=0) + 1

    # ------------------------------------------------------------------ writing (under the lock)
    @contextlib.contextmanager
    def writing(self) -> Iterator[Registry]:
        """Hold the registry for the block (one writer at a time; a killed one frees it) and re-read it."""
        with run_directory_lock(self.dir, remedy="wait for it, or stop it", holder="registry writer",
                                what="model registry"):
            remove_stray_temp_files(self.dir)
            self.file = self.read()
            yield self

    def save(self) -> Path:
        return write_json(self.dir / REGISTRY_FILE, self.file.model_dump(mode="json"))

    def add_version(self, entry: ModelVersion, event: RegistryEvent) -> None:
        """Register ``entry`` (its bundle already in :meth:`version_dir`) and the event that decided about it."""
        self.file.versions.append(entry)
        self._record(event)

    def record(self, kind: EventKind, version: int | None, champion_after: int | None, reason: str,
               evidence: dict[str, Any] | None = None) -> RegistryEvent:
        """Record an event (the champion becomes ``champion_after``) and save; returns the event.

        :param evidence: figures behind the event (a break alarm's), kept with it"""
        event = RegistryEvent(time=now(), kind=kind, version=version, champion_before=self.file.champion,
                              champion_after=champion_after, reason=reason, evidence=evidence)
        self._record(event)
        return event

    def _record(self, event: RegistryEvent) -> None:
        self.file.events.append(event)
        self.file.champion = event.champion_after
        self.save()

    def promote(self, number: int, reason: str) -> RegistryEvent:
        """Make version ``number`` the champion by hand (``rltrader models promote``)."""
        self.version(number)  # an unknown number: one line naming the versions there are
        self.bundle(number)  # a version whose bundle fails its manifest cannot serve
        if number == self.file.champion:
            raise RegistryError(f"version {number} of {self.name!r} is already the champion")
        return self.record("manual_promote", number, number, reason or "promoted by hand")

    def open_break(self) -> RegistryEvent | None:
        """The break alarm on the champion raised since it took over (the newest), else None: a retrain then
        trains its challenger on the bars since the break (``retrain.after_break``)."""
        champion = self.file.champion
        for event in reversed(self.file.events):
            if event.kind == "break_alarm" and event.version == champion and event.evidence:
                return event
            if event.champion_after == champion and event.champion_before != champion:
                return None  # the champion took over here; no alarm since
        return None

    def regime_break(self) -> RegistryEvent | None:
        """The break alarm where the current regime began, else None: a retrain trains on no bar before its break
        until the usual windows fit after it (``retrain.after_break``).

        A later alarm on a version trained only on bars since that break does not move it: such a model learned the
        new regime, and its alarm says it learned it worse than its held-out bars said (or a new break came), so
        its challengers keep every bar of the regime rather than start again from a few hundred."""
        found: RegistryEvent | None = None
        for event in self.file.events:
            if event.kind != "break_alarm" or not event.evidence:
                continue
            if found is not None and event.version is not None:
                trained_from = pd.Timestamp(self.version(event.version).windows["train"].start)
                if trained_from >= pd.Timestamp(found.evidence["change_time"]):
                    continue
            found = event
        return found

    def champion_stack(self) -> list[int]:
        """The champions in the order they took over, a rollback undoing the last take-over."""
        stack: list[int] = []
        for event in self.file.events:
            if event.kind == "rollback":
                stack.pop()
            elif event.champion_after is not None and event.champion_after != event.champion_before:
                stack.append(event.champion_after)
        return stack

    def previous_champion(self) -> int | None:
        """The champion before the current one took over (what a rollback restores)."""
        stack = self.champion_stack()
        return stack[-2] if len(stack) >= 2 else None

    def rollback(self, reason: str) -> RegistryEvent:
        """The champion before the current one serves again (``rltrader models rollback``)."""
        if self.file.champion is None:
            raise RegistryError(f"model {self.name!r} has no champion to roll back")
        previous = self.previous_champion()
        if previous is None:
            raise RegistryError(f"model {self.name!r}: version {self.file.champion} is the first champion left; "
                                "there is none before it to roll back to")
        self.bundle(previous)
        return self.record("rollback", previous, previous,
                           reason or f"rolled back by hand from version {self.file.champion}")


def registry_names(root: str | Path) -> list[str]:
    """The model names that have a registry under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(path.parent.name for path in root.glob(f"*/{REGISTRY_FILE}"))


def open_registry(root: str | Path, name: str, must_exist: bool = True) -> Registry:
    """The registry of ``name``; with ``must_exist``, a one-line error naming the known ones if it has none."""
    registry = Registry(root, name)
    if must_exist and not registry.exists:
        known = ", ".join(registry_names(root)) or "none yet"
        raise RegistryError(f"{Path(root)}: no model named {name!r} (models: {known}); `rltrader retrain {name} "
                            "--data_path FILE` creates it")
    return registry


__all__ = ["DECISION_FILE", "DEFAULT_REGISTRY_DIR", "REGISTRY_FILE", "RUNS_DIR", "VERSIONS_DIR", "DataWindow",
           "ModelVersion", "Registry", "RegistryError", "RegistryEvent", "RegistryFile", "check_model_name", "now",
           "open_registry", "registry_names"]
