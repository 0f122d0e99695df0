"""feedparser's private internals that the fast path ports, imported in this one guarded place; nothing else.

parse/fast.py reproduces feedparser 6.0's own rules (its namespace table, relative-URI and HTML-type
lists, date parser, cp1252 repair, URL joining). Those names are private: a feedparser release may
move or rename any of them. When one is missing, or the version is not the 6.0 series the port was
proven against (tests/test_parse_fast.py), AVAILABLE is False with the reason, and parse/__init__.py
leaves every document to feedparser itself: slower, never wrong, never an import error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import feedparser

PROVEN_SERIES = "6.0."  # pyproject bounds feedparser to <6.1 for the same reason

try:
    from feedparser.datetimes import _parse_date
    from feedparser.encodings import RE_XML_DECLARATION, RE_XML_PI_ENCODING, parse_content_type
    from feedparser.html import _cp1252
    from feedparser.mixin import _FeedParserMixin
    from feedparser.urls import _urljoin, make_safe_absolute_uri
    from feedparser.util import FeedParserDict

    NAMESPACES: dict[str, str] = dict(_FeedParserMixin.namespaces)
    CAN_BE_RELATIVE_URI: frozenset[str] = frozenset(_FeedParserMixin.can_be_relative_uri)
    HTML_TYPES: tuple[str, ...] = tuple(_FeedParserMixin.html_types)
    looks_like_html: Callable[[str], bool] = _FeedParserMixin.looks_like_html
    map_content_type: Callable[[str], str] = _FeedParserMixin.map_content_type
    enforce_href: Callable[[Any], Any] = _FeedParserMixin._enforce_href
    KEYMAP_ALIASES: frozenset[str] = frozenset(FeedParserDict.keymap)
    CP1252: dict[int, str] = dict(_cp1252)

    def has_handler(key: str) -> bool:
        """Whether feedparser has a start or end handler for an element it names `key`."""
        return hasattr(_FeedParserMixin, "_start_" + key) or hasattr(_FeedParserMixin, "_end_" + key)

    REASON = "" if feedparser.__version__.startswith(PROVEN_SERIES) else (
        f"feedparser {feedparser.__version__} is not the {PROVEN_SERIES}x series the fast path was proven on")
except (ImportError, AttributeError, TypeError) as exc:  # a moved or renamed internal
    REASON = f"feedparser {feedparser.__version__}: {type(exc).__name__}: {exc}"

AVAILABLE = not REASON

__all__ = [
    "AVAILABLE", "CAN_BE_RELATIVE_URI", "CP1252", "HTML_TYPES", "KEYMAP_ALIASES", "NAMESPACES", "REASON",
    "RE_XML_DECLARATION", "RE_XML_PI_ENCODING", "enforce_href", "has_handler", "looks_like_html",
    "make_safe_absolute_uri", "map_content_type", "parse_content_type", "_parse_date", "_urljoin",
]
