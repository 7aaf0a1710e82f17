"""File names and labels as people see them, and JSON that any name survives.

A file name is data, never markup or terminal control: :func:`shown` writes it as it is, with
control characters (ESC, CR, newlines, U+2028, bidirectional overrides, ...) escaped as
``\\x1b``, ``\\r``, ``\\u2028`` and the bytes of a name that is not UTF-8 (Python's surrogate
escapes) as ``\\xff``, so one name is one line that cannot move the cursor, colour the
terminal or reorder what follows. Rich output takes it as ``Text`` (no markup is read).

:func:`json_text` is ``json.dumps`` that writes any string: a name that is not UTF-8 is kept
losslessly as a ``\\udcff`` escape (``os.fsencode`` of the value read back gives the bytes).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _needs_escape(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI


def shown(text: object) -> str:
    """``text`` as one safe line: control characters, line separators, bidi controls and undecodable bytes escaped."""
    s = str(text)
    if s.isprintable() and not any(ch in _BIDI for ch in s):
        return s
    return "".join(_escape(ch) if _needs_escape(ch) else ch for ch in s)


def json_text(value: Any, **kw: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, **kw)``, or with ASCII escapes when a string in it is not
    valid Unicode (a file name that is not UTF-8): the result always encodes as UTF-8."""
    text = json.dumps(value, ensure_ascii=False, **kw)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True, **kw)
    return text


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 decision", "3 decisions", "2 strategies"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


__all__ = ["shown", "json_text", "counted"]
