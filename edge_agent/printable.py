"""Text safe to print on one terminal line: control characters shown escaped, like ``repr``.

Why: file names and other outside text reach the CLI's output and the logs. A newline in a
file name would split a line, or forge one (``error: bad`` then a fake ``OK: ...``), and a
terminal escape sequence could rewrite what the operator sees. Korean and other printable
text stays as it is.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # controls, bidi/format, lone surrogates


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a non-UTF-8 file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: object, backslash: bool = True) -> str:
    """``str(text)`` with every control, format or separator character written as an escape
    sequence; the backslash too (so the escaping is unambiguous) unless ``backslash`` is
    False, for text whose names were already escaped (a message being printed)."""
    text = str(text)
    if text.isprintable() and not (backslash and "\\" in text):
        return text
    return "".join(_escape(c) if (backslash and c == "\\")
                   or unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)
