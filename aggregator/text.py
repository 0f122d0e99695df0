"""Small pure text helpers shared by every stage: XML-safe text, whitespace, durations and sizes."""

from __future__ import annotations

import re
import unicodedata

# XML 1.0 allows #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
# Everything else (NUL, C0 controls, lone surrogates, U+FFFE/U+FFFF) makes lxml/feedgen raise.
# Written as the complement (what is forbidden): the same set, but a small class that compiles in
# microseconds, where the allowed ranges made re build a table of the whole BMP on every start-up.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Bidi embedding, override and isolate controls (LRE RLE PDF LRO RLO, LRI RLI FSI PDI): in a title they
# reorder the text after them ("abc\u202egpj.exe" shows as "abcexe.jpg") and, left open, the page
# around it. The marks U+200E, U+200F and U+061C only set the direction of neutral characters next
# to them, which right-to-left text needs, so they stay.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Of a summary, what the same-story rule compares (publish.similar) and so what headlines read of it.
LEAD_SOURCE_CHARS = 1000
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_ASCII_NON_WORD = bytes(c for c in range(128) if not chr(c).isalnum())
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?\s*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_UNITS = {
    "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
}


def strip_invalid_xml_chars(text: str) -> str:
    """Remove the characters XML 1.0 forbids, so one bad item never stops a feed from rendering."""
    return _XML_INVALID.sub("", text)


def strip_bidi_controls(text: str) -> str:
    """Remove the bidi embedding, override and isolate controls (issue 20: they spoof text)."""
    return _BIDI_CONTROLS.sub("", text)


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace as one space, none at the ends. Without a regex (several times faster on
    long text): str.split and re's \\s both use Py_UNICODE_ISSPACE, so the result is the same."""
    return " ".join(text.split())


def title_key(title: str) -> str:
    """A title as compared for duplicates: NFKC (full-width and half-width forms alike), case-folded,
    without punctuation of either width, symbols or spaces (the store's re-post rule, publish.similar)."""
    if title.isascii():  # the same result, several times faster: NFKC and casefold leave ASCII as lower()
        return title.encode("ascii").lower().translate(None, _ASCII_NON_WORD).decode("ascii")
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", title).casefold())


def parse_duration(value: object) -> float:
    """Seconds from an int/float or a string like '90s', '30m', '2h', '1d'. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a non-negative duration, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]
    raise ValueError(f"expected a duration such as 90, '90s', '30m', '2h' or '1d', got {value!r}")


def parse_size(value: object) -> int:
    """Bytes from an int or a string like '15MiB', '500KB'. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a non-negative size, got {value!r}")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])
    raise ValueError(f"expected a size such as 1048576 or '15MiB', got {value!r}")
