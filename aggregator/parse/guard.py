"""Checks on raw feed bytes before any parser sees them: empty, hostile DTDs, HTML pages; no parsing here."""

from __future__ import annotations

import codecs
import html
import re
from urllib.parse import urljoin

from aggregator.errors import ParseError
from aggregator.text import strip_invalid_xml_chars

_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
# BOM-less wide encodings, detected from '<?' the way XML 1.0 Appendix F does.
_WIDE_PREFIXES = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", "cp037"),  # EBCDIC '<?xm'
)
_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
# An internal DTD subset ('<!DOCTYPE x [') or any ENTITY declaration, wherever it appears: feedparser's
# loose parser expands entities itself (80 KB became 400 M characters), so nothing of the kind gets through.
_DOCTYPE_SUBSET = re.compile(r"<!DOCTYPE[^>\[]*\[", re.IGNORECASE)
_ENTITY = re.compile(r"<!ENTITY", re.IGNORECASE)
_HTML_START = re.compile(
    r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE\s+html|<html\b)", re.IGNORECASE | re.DOTALL
)
_LINK_TAG = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/json",
    "application/rdf+xml",
)
_HTML_SNIFF = 4096


def text_for_checks(body: bytes) -> str:
    """The body as text good enough for markup checks: wide encodings decoded, else latin-1 (ASCII-safe)."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            if encoding == "utf-8":
                break
            return body[len(bom) :].decode(encoding, "replace")
    for prefix, encoding in _WIDE_PREFIXES:
        if body.startswith(prefix):
            return body.decode(encoding, "replace")
    match = _DECL_ENCODING.match(body)
    if match and match.group(1).lower().replace(b"-", b"").replace(b"_", b"") in (b"utf7", b"unicode11utf7"):
        # UTF-7 can spell '<!ENTITY' as '+ADw-!ENTITY': check what a decoder would see.
        return body.decode("utf-7", "replace")
    return body.decode("latin-1")


def check_not_empty(body: bytes) -> None:
    for bom, _ in _BOMS:
        if body.startswith(bom):
            body = body[len(bom) :]
            break
    if not body.strip(b" \t\r\n\x00"):
        raise ParseError("empty document")


def refuse_hostile_markup(text: str) -> None:
    """Raise ParseError for a DOCTYPE with an internal subset or any ENTITY declaration."""
    if _DOCTYPE_SUBSET.search(text):
        raise ParseError("refused: DOCTYPE with internal subset / ENTITY declaration")
    if _ENTITY.search(text):
        raise ParseError("refused: DOCTYPE with internal subset / ENTITY declaration")


def looks_like_html(text: str, content_type: str) -> bool:
    head = text[:_HTML_SNIFF]
    return bool(_HTML_START.match(head)) or (
        content_type.startswith("text/html") and "<rss" not in head and "<feed" not in head
    )


def advertised_feeds(text: str, base_url: str) -> list[str]:
    """Feed links an HTML page advertises (<link rel=alternate type=...rss+xml href=...>), as 'url (type)'."""
    found: list[str] = []
    for tag in _LINK_TAG.findall(text[:262144]):
        attrs = {
            m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
            for m in _ATTR.finditer(tag)
        }
        rels = attrs.get("rel", "").lower().split()
        kind = attrs.get("type", "").lower().strip()
        if "alternate" in rels and kind in _FEED_TYPES and attrs.get("href"):
            href = strip_invalid_xml_chars(urljoin(base_url, attrs["href"].strip()))
            found.append(f"{href} ({kind})")
    return found


def not_a_feed_error(text: str, content_type: str, base_url: str) -> ParseError:
    if looks_like_html(text, content_type):
        links = advertised_feeds(text, base_url)
        if links:
            return ParseError("not a feed (HTML page); it advertises: " + ", ".join(links[:5]))
        return ParseError("not a feed (HTML page) and it advertises no feed")
    return ParseError("not a feed: no RSS, Atom or JSON Feed root element")
