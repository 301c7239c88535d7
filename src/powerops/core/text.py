"""File content made safe to show in a one-line error: printable and bounded."""

from __future__ import annotations

# Bytes that never occur in a text file; tab, line feed and carriage return do.
_CONTROL_BYTES = (frozenset(range(0x20)) - {0x09, 0x0A, 0x0D}) | {0x7F}


def printable(text: str | bytes, limit: int = 200) -> str:
    """`text` on one line, non-printable characters escaped, cut to `limit` with "..."."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    escaped = "".join(_escape(char) if _hidden(char) else char for char in text)
    return escaped if len(escaped) <= limit else escaped[: max(limit - 3, 0)] + "..."


def looks_binary(data: bytes) -> bool:
    """Whether `data` holds a byte (NUL, ESC, ...) that a text file never contains."""
    return not _CONTROL_BYTES.isdisjoint(data)


def _hidden(char: str) -> bool:
    # U+FFFD stands for bytes a decoder could not read: show that as an escape, not as a glyph.
    return not char.isprintable() or char == "\ufffd"


def _escape(char: str) -> str:
    # "\x00", "\n", "\ufffd": the form a reader can type back into Python.
    return char.encode("unicode_escape").decode("ascii")
