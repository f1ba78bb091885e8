"""A trained model as one self-contained directory: what deciding on new bars needs, and nothing else.

A run's ``best_model.zip`` cannot decide anything alone: its features, their train-split
normalization, the instrument, sizing and costs live in the bar file, the config and the cache
it trained with. A bundle holds them all, so a machine that never saw the training can use it:

- ``policy.zip``: the policy (recurrent or feed-forward), an ordinary SB3 zip;
- ``bundle.json``: the feature definition and column order, the train-split normalization,
  the observation window, the environment, the account, instrument, sizing and cost terms, the
  bar interval, the warm-up (bars of history needed before the first decision: the longest
  feature window, or as many bars as the slowest exponential average needs to forget its start
  to ``EMA_TOLERANCE``), the fingerprint of the training data, and the run's validation and test
  figures;
- ``manifest.json``: the schema version and the SHA-256 of every other file, written last.

:func:`read_bundle` refuses, in one line, a directory whose files do not match their manifest, or
of a schema version this code does not know. A bundle is written whole or not at all: into a
temporary sibling, then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pydantic import ValidationError

from rltrader import __version__
from rltrader.atomic import TEMP_PREFIX, fsync_directory, write_json
from rltrader.bundle.description import (
    DESCRIPTION_FILE,
    MANIFEST_FILE,
    POLICY_FILE,
    SCHEMA_VERSION,
    Bundle,
    BundleDescription,
    BundleError,
)
from rltrader.features.cache import file_digest


def write_bundle(target: str | Path, policy: str | Path, description: BundleDescription,
                 extra: dict[str, bytes] | None = None) -> Path:
    """Write the bundle into ``target`` whole or not at all (a temporary sibling renamed into place).

    :param target: the bundle's directory; a bundle already there is replaced
    :param policy: the model zip to bundle
    :param description: what :func:`describe` returned
    :param extra: more files by name (an ONNX graph and its parity report); the manifest lists them too
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f"{TEMP_PREFIX}{target.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        shutil.copyfile(policy, staging / POLICY_FILE)
        write_json(staging / DESCRIPTION_FILE, description.model_dump(mode="json"))
        for name, content in (extra or {}).items():
            (staging / name).write_bytes(content)
        files = {name: file_digest(staging / name) for name in (POLICY_FILE, DESCRIPTION_FILE, *(extra or {}))}
        write_json(staging / MANIFEST_FILE, {"schema_version": SCHEMA_VERSION, "files": files})
        fsync_directory(staging)
        replaced = target.parent / f"{TEMP_PREFIX}{target.name}-old-{os.getpid()}"
        if target.exists():
            target.rename(replaced)
        staging.rename(target)
        fsync_directory(target.parent)
        shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def read_bundle(root: str | Path) -> Bundle:
    """A bundle whose every file matches its manifest; a one-line :class:`BundleError` otherwise."""
    root = Path(root)
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(root, f"not a model bundle (no {MANIFEST_FILE}); pass the directory `rltrader export` "
                                "wrote, or a run's bundle/")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        version, files = manifest["schema_version"], dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise BundleError(manifest_path, "unreadable manifest; export the bundle again") from None
    if version != SCHEMA_VERSION:
        raise BundleError(root, f"bundle schema version {version!r}, this rltrader {__version__} reads version "
                                f"{SCHEMA_VERSION}; export it again with this version")
    for name in (POLICY_FILE, DESCRIPTION_FILE):
        if name not in files:
            raise BundleError(manifest_path, f"lists no {name}; export the bundle again")
    for name, expected in sorted(files.items()):
        path = root / name
        if not path.is_file():
            raise BundleError(path, "missing from the bundle; export it again")
        if file_digest(path) != expected:
            raise BundleError(path, "does not match the bundle's manifest (changed after export); export it again")
    try:
        description = BundleDescription.model_validate_json((root / DESCRIPTION_FILE).read_text(encoding="utf-8"))
    except ValidationError as error:
        where = ".".join(str(part) for part in error.errors()[0]["loc"])
        raise BundleError(root / DESCRIPTION_FILE, f"not a bundle description ({where}: "
                                                   f"{error.errors()[0]['msg']})") from None
    return Bundle(root=root, description=description)


def source_bundle(source: str | Path) -> Bundle:
    """The verified bundle of a finished run's directory (``source/bundle``), or a bundle itself.

    :raises BundleError: a source without a bundle, or a bundle that fails its manifest
    """
    source = Path(source)
    if not source.is_dir():
        raise BundleError(source, "not a directory; pass a finished run's directory (e.g. results/42) or a bundle")
    root = source if (source / MANIFEST_FILE).is_file() else source / "bundle"
    if not (root / MANIFEST_FILE).is_file():
        if (source / "optimization_summary.json").is_file():
            raise BundleError(source, "finished before rltrader wrote bundles; run its `rltrader train` command "
                                      "again (a finished run redoes only its final report, which writes bundle/)")
        raise BundleError(source, "holds no finished run and no bundle; pass a finished run's directory, "
                                  "e.g. results/42")
    return read_bundle(root)


def export_bundle(source: str | Path, out: str | Path, extra: dict[str, bytes] | None = None) -> Bundle:
    """Copy the bundle of a finished run (``source/bundle``), or a bundle itself, to ``out``, verified.

    :param source: a finished run's directory, or a bundle directory
    :param out: where the bundle goes: a new directory, or one holding a bundle (replaced)
    :param extra: files to add (an ONNX graph and its parity report), listed in the manifest
    :raises BundleError: a source without a bundle, a bundle that fails its manifest, or an ``out``
        that holds something else; nothing is written then
    """
    bundle = source_bundle(source)
    out = Path(out)
    if out.resolve() == bundle.root.resolve():
        raise BundleError(out, "is the bundle itself; pass another --out")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).is_file())):
        raise BundleError(out, "exists and is not a bundle; pass a new directory to --out")
    write_bundle(out, bundle.policy_path, bundle.description, extra)
    return read_bundle(out)


__all__ = ["export_bundle", "read_bundle", "source_bundle", "write_bundle"]
