"""Recognise what kind of text file a bar export is before pandas reads it.

Users bring files from MetaTrader terminals in several locales: UTF-16 from the
terminal's "Export bars", semicolons with decimal commas from European systems, tabs,
no header at all (MT4 history export). Sniffing a small head of the file picks the
encoding, separator, decimal mark and header row, and rejects things that are not bar
files at all (HTML saved by a browser, binaries) with a clear message instead of a
pandas traceback.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from rltrader.errors import DataError

HEAD_BYTES = 64 * 1024
PARQUET_MAGIC = b"PAR1"
SEPARATOR_PREFERENCE = ("\t", ";", ",")  # a decimal-comma file must not be split on ','
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA_NUMBER = re.compile(r"^[+-]?\d+,\d+$")


@dataclass(frozen=True)
class TextLayout:
    """How to read a delimited text file."""

    encoding: str
    sep: str
    decimal: str
    has_header: bool
    field_count: int


def is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == PARQUET_MAGIC


def _detect_encoding(raw: bytes, path: Path) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in raw:
        # UTF-16 without a BOM puts a NUL beside every ASCII character.
        odd_nuls = raw[1::2].count(0)
        if odd_nuls > 0.9 * (len(raw) // 2):
            return "utf-16-le"
        raise DataError(path, "is a binary file, not a CSV of bars; export the bars as CSV text")
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(raw) - 4:  # the head cut a multi-byte character in two
            return "utf-8"
        return "latin-1"


def _split(line: str, sep: str) -> list[str]:
    return [field.strip().strip('"').strip() for field in line.split(sep)]


def _looks_numeric(field: str) -> bool:
    return bool(_NUMBER.match(field))


def _is_data_line(fields: list[str]) -> bool:
    """A bar row has at least four numeric fields (the prices)."""
    return sum(_looks_numeric(field) for field in fields) >= 4


def sniff_text(path: Path, sep: str | None = None) -> TextLayout:
    """Read the head of ``path`` and work out how to parse it, or say why it is not bar data."""
    with open(path, "rb") as handle:
        raw = handle.read(HEAD_BYTES)
    if not raw.strip():
        raise DataError(path, "is empty; export the bars again (File > Export or copy_rates_range)")
    encoding = _detect_encoding(raw, path)
    text = raw.decode(encoding, errors="ignore")
    if len(raw) == HEAD_BYTES:  # drop the possibly cut last line
        text = text[: text.rfind("\n")] if "\n" in text else text
    stripped = text.lstrip().lower()
    if stripped.startswith(("<!doctype", "<html", "<?xml")) or "<html" in stripped[:2048]:
        raise DataError(
            path, "is an HTML/XML page, not a CSV of bars; save the file itself, not the web page"
        )
    if stripped.startswith(("{", "[")):
        raise DataError(path, "is JSON, not a CSV of bars; export the bars as CSV")
    lines = [line for line in text.splitlines() if line.strip()][:50]
    if sum(ch.isprintable() or ch in "\t\r\n" for ch in text[:4096]) < 0.95 * len(text[:4096]):
        raise DataError(path, "is a binary file, not a CSV of bars; export the bars as CSV text")

    candidates = (sep,) if sep else SEPARATOR_PREFERENCE
    chosen: str | None = None
    for candidate in candidates:
        counts = {line.count(candidate) for line in lines[1:]} or {lines[0].count(candidate)}
        if len(counts) == 1 and lines[0].count(candidate) == next(iter(counts)) >= 3:
            chosen = candidate
            break
    if chosen is None:
        if sep:
            raise DataError(
                path,
                f"the separator {sep!r} does not split line 1 into at least 4 columns "
                "consistently; check --sep",
            )
        raise DataError(
            path,
            "is not a CSV of bars: no separator (tab, ';' or ',') splits its lines into the same "
            "4 or more columns; expected columns like Date, Open, High, Low, Close",
        )

    first = _split(lines[0], chosen)
    has_header = not _is_data_line(first)
    data_lines = lines[1:] if has_header else lines
    decimal = "."
    if chosen != ",":
        sample = [field for line in data_lines[:20] for field in _split(line, chosen)]
        if any(_DECIMAL_COMMA_NUMBER.match(field) for field in sample):
            decimal = ","
    return TextLayout(
        encoding=encoding, sep=chosen, decimal=decimal, has_header=has_header, field_count=len(first)
    )
