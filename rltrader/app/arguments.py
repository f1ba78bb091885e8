"""The flags every command shares, spelt from the requests' fields, and the checks that run before any server.

A request field's flag is spelt as the field and helped by its description (:func:`add_request_flags`), so
the command line, the Prefect UI's form and a deployment's parameters all name a setting the same way.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rltrader.config import Config
from rltrader.errors import UserInputError
from rltrader.jobs.requests import ACCOUNT_FIELDS, LOADING_FIELDS, SWITCHES, TrainRequest

PATH_FIELDS = {"data_path", "config", "cache_dir", "results_dir", "settings_file"}
"""Request fields that are paths: ``Path`` in the parsed flags, text in the request (JSON, the UI form)."""
CONFIG_FIELDS = ("data_path", *LOADING_FIELDS, *ACCOUNT_FIELDS, "config", "cache_dir", "cache_environments")
"""What the commands other than ``train`` take from the request: the file, how to read bars, the cache."""
STUDY_REMEDY = "pass another --name"


def scalar_type(annotation: Any) -> type:
    """``int`` for ``int | None``, and so on: the type argparse converts a flag's value to."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def add_request_flags(parser: argparse.ArgumentParser, names: Iterable[str], required: Iterable[str] = (),
                      model: type[BaseModel] = TrainRequest) -> None:
    """One flag per request field (:class:`~rltrader.jobs.requests.TrainRequest` by default), spelt as the field,
    its help its description.

    A switch (an optimization) is ``--no-NAME``; a plain boolean ``--NAME``; a tri-state
    boolean ``--NAME`` / ``--no-NAME`` (unset means detect); anything else takes a value.

    :param names: the fields to give flags, in help order
    :param required: those the command cannot run without
    :param model: the request class the fields belong to
    """
    for name in names:
        field = model.model_fields[name]
        help_text = (field.description or "").replace("%", "%%")
        kind = scalar_type(field.annotation)
        if name in SWITCHES:
            what = help_text.split(". Off")[0]
            parser.add_argument(f"--no-{name}", dest=name, action="store_false", help=f"turn {name} off ({what})")
        elif field.annotation is bool:
            parser.add_argument(f"--{name}", action="store_true", help=help_text)
        elif kind is bool:
            parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(kind) is list:
            parser.add_argument(f"--{name}", type=typing.get_args(kind)[0], nargs="+", default=field.default,
                                help=help_text)
        elif typing.get_origin(kind) is typing.Literal:
            parser.add_argument(f"--{name}", choices=typing.get_args(kind), default=field.default, help=help_text)
        else:
            kind = Path if name in PATH_FIELDS else kind
            default = kind(field.default) if kind is Path and field.default is not None else field.default
            parser.add_argument(f"--{name}", type=kind, default=None if name in required else default,
                                required=name in required, help=help_text)


def request_from_args(args: argparse.Namespace, fields: Iterable[str] = tuple(TrainRequest.model_fields),
                      model: type[Any] = TrainRequest) -> Any:
    """The request that the parsed flags among ``fields`` spell (fields without a flag keep their defaults)."""
    given = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    given = {name: str(value) if isinstance(value, Path) else value for name, value in given.items()}
    try:
        return model(**given)
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise UserInputError(f"--{first['loc'][0]} {message}") from None


def resolve_config(args: argparse.Namespace) -> Config:
    """The config file with the command's flags for reading bars and for the cache."""
    return request_from_args(args, CONFIG_FIELDS).to_config()


def settings_file(args: argparse.Namespace, config: Config) -> Path:
    """The performance-mode settings file: ``--settings_file``, else the config's."""
    return args.settings_file or config.performance_mode.settings_file


def require_bar_file(data_path: str, config: Config) -> None:
    """A missing bar file, or a cross without a conversion file, is one line before Prefect starts
    (seconds saved, no server for nothing, nothing written)."""
    from rltrader.env.account import account_terms  # pandas and the instrument tables: only once a file is given

    if not Path(data_path).is_file():
        raise UserInputError(f"{data_path}: bar file not found; pass an existing CSV/TSV/parquet to --data_path")
    account_terms(config, data_path)


def after_loading(names: Iterable[str]) -> list[str]:
    """Request fields in help order: the account and instrument flags right after the bar file's."""
    rest = [name for name in names if name not in ACCOUNT_FIELDS]
    last = LOADING_FIELDS[-1] if LOADING_FIELDS[-1] in rest else "data_path"
    at = rest.index(last) + 1
    return [*rest[:at], *ACCOUNT_FIELDS, *rest[at:]]


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The bar file and how to read it: every command that reads bars takes the same overrides."""
    add_request_flags(parser, ("data_path", *LOADING_FIELDS, *ACCOUNT_FIELDS), required=("data_path",))


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The config file and the cache directory."""
    add_request_flags(parser, ("config", "cache_dir"))


__all__ = ["CONFIG_FIELDS", "PATH_FIELDS", "STUDY_REMEDY", "add_config_options", "add_data_options",
           "add_request_flags", "after_loading", "request_from_args", "require_bar_file", "resolve_config",
           "scalar_type", "settings_file"]
