"""How ``zkctl`` shows things: znode values, stats, records, error lines.

This module owns every rule that decides what a byte or a number looks like on
the terminal, so the commands in :mod:`zkactors.cli.zkctl` stay about *what* to
print:

* values: ``raw`` (the bytes as they are), ``hex`` (lowercase hex digits, one
  line, ``xxd -r -p`` reverses it), ``utf8`` (the text; not valid UTF-8 is an
  error), ``auto`` (the text when it is valid UTF-8, else hex with a note);
* values in a tree: a JSON-quoted string for text, ``0x…`` for anything else —
  never a Python ``b'…'`` repr, and a text ``"0x00"`` cannot be mistaken for
  bytes;
* stats: zxids in hex, times as ISO-8601 local time (``-w json`` keeps the raw
  numbers);
* error lines: one line, control characters escaped, long input shortened.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from typing import Any

from zkactors.protocol import format_zxid

VALUE_FORMATS = ("auto", "raw", "hex", "utf8")
OUTPUTS = ("table", "json")
TREE_VALUE_CHARS = 60
ERROR_CHARS = 300
_REPR_SURROGATE = re.compile(r"\\udc([89a-f][0-9a-f])")


class ValueFormatError(Exception):
    """A value cannot be shown in the format asked for (``utf8`` of binary bytes)."""


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    """``text`` on one line: newlines, other control characters and undecodable
    bytes (surrogate escapes) shown as escapes, and cut to about ``limit``
    characters with the full length noted."""
    shown = "".join(c if c.isprintable() else _escape(c) for c in text[:limit])
    # Messages that quote an argument with repr() (argparse's) carry its undecodable
    # bytes as '\udcff': shown as the byte they were.
    shown = _REPR_SURROGATE.sub(r"\\x\1", shown)
    if len(text) > limit:
        shown += f"… ({len(text)} characters)"
    return shown


def _escape(char: str) -> str:
    if "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8, as argv carries it
        return f"\\x{ord(char) - 0xdc00:02x}"
    return repr(char)[1:-1]


def decode_utf8(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueFormatError(
            f"the value is not valid UTF-8 (byte 0x{value[err.start]:02x} at offset "
            f"{err.start}); use --format hex or --format raw") from None


def value_text(value: bytes, fmt: str) -> tuple[str, str]:
    """``(text, encoding)`` of a value for ``hex``, ``utf8`` or ``auto`` (which
    picks ``utf8`` when it can, else ``hex``)."""
    if fmt == "hex":
        return value.hex(), "hex"
    if fmt == "utf8":
        return decode_utf8(value), "utf8"
    try:
        return value.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        return value.hex(), "hex"


def value_record(value: bytes, fmt: str) -> dict[str, Any]:
    """A value in a JSON record: ``{"value": …, "encoding": "utf8" | "hex"}``."""
    text, encoding = value_text(value, fmt)
    return {"value": text, "encoding": encoding}


def tree_value(value: bytes) -> str:
    """A short, unambiguous one-line form of a value: ``"text"`` (JSON quoting, so
    a newline shows as ``\\n``) or ``0x…`` for bytes that are not UTF-8; longer
    than :data:`TREE_VALUE_CHARS`, it is cut and the size added."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        shown = "0x" + value[:TREE_VALUE_CHARS // 2].hex()
        cut = len(value) > TREE_VALUE_CHARS // 2
    else:
        shown = json.dumps(text[:TREE_VALUE_CHARS], ensure_ascii=False)
        cut = len(text) > TREE_VALUE_CHARS
    return f"{shown} … ({len(value)} bytes)" if cut else shown


def stat_record(stat: Any) -> dict[str, int]:
    """The stat's fields, raw numbers (what ``-w json`` prints)."""
    return dataclasses.asdict(stat)


def readable_time(ms: int) -> str:
    """Milliseconds since the epoch as ISO-8601 local time, e.g.
    ``2024-05-01T12:34:56.789+02:00``; the number itself if it is out of range."""
    try:
        moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).astimezone()
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.isoformat(timespec="milliseconds")


def stat_lines(stat: Any) -> list[str]:
    """The stat as ``name value`` lines: zxids and the session id in hex, times
    readable."""
    lines = []
    for name, value in stat_record(stat).items():
        if name.endswith("zxid") or name == "ephemeralOwner":
            shown = format_zxid(value)
        elif name in ("ctime", "mtime"):
            shown = readable_time(value)
        else:
            shown = str(value)
        lines.append(f"{name:<15} {shown}")
    return lines


def status_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The status table; a ``digest`` column when the rows carry one (the tree
    digest at the applied zxid shown: a node computes both in one step)."""
    digests = any("digest" in row for row in rows)
    header = (f"{'node':>4}  {'role':<9} {'term':>4} {'commit':>9} {'applied zxid':>14} "
              f"{'lag':>5} {'clients':>7}  " + (f"{'digest':<16}  " if digests else "")
              + "endpoint")
    lines = [header]
    for row in rows:
        node = "?" if row.get("node") is None else row["node"]
        line = (f"{node:>4}  {row['role']:<9} {row['term']:>4} {row['commit_index']:>9} "
                f"{format_zxid(row['applied_zxid']):>14} {row['lag']:>5} "
                f"{row['clients']:>7}  ")
        if digests:
            line += f"{row.get('digest') or '-':<16}  "
        line += row["endpoint"]
        if row.get("error"):
            line += f"  ({one_line(row['error'])})"
        lines.append(line)
    return lines
