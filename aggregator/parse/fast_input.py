"""Which documents the fast path reads: the bytes feedparser's encoding rules would hand its XML parser.

Anything those rules would override (another encoding than declared, UTF-16/32, UTF-7, EBCDIC) raises
Decline, and feedparser reads the document instead; the fast path never guesses.
"""

from __future__ import annotations

import codecs
import re
import threading

from lxml import etree

from aggregator.parse.feedparser_private import RE_XML_DECLARATION, RE_XML_PI_ENCODING, parse_content_type

_LOCAL = threading.local()  # an lxml parser must not be shared between threads
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*?>")
_DECLARED_ENCODING = re.compile(rb"""encoding\s*=\s*["']([^"']*)""")


# Single-byte and common CJK codecs: Python decodes them the same way for both paths. Not UTF-7 (it can
# hide markup), UTF-16/32 or EBCDIC (feedparser's BOM sniffing differs).
_TRUSTED_CODECS = {
    "utf-8", "ascii", "iso8859-1", "iso8859-2", "iso8859-15", "cp1250", "cp1251", "cp1252", "koi8-r",
    "gb18030", "gbk", "big5", "shift_jis", "euc_jp", "euc_kr", "cp932", "cp949", "cp950",
}  # fmt: skip


class Decline(Exception):
    """Not sure to reproduce feedparser exactly: let feedparser do it."""


def xml_parser() -> etree.XMLParser:
    parser = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, huge_tree=False, recover=False, load_dtd=False
        )
        _LOCAL.parser = parser
    return parser


def utf8_document(body: bytes, content_type: str) -> bytes:
    """The bytes feedparser's encoding rules would hand its XML parser, or Decline if they would override."""
    data = body[3:] if body.startswith(codecs.BOM_UTF8) else body
    if data[:1] in (b"\x00", b"\xfe", b"\xff") or data[1:2] == b"\x00" or data[:4] == b"\x4c\x6f\xa7\x94":
        raise Decline("wide encoding")
    match = RE_XML_PI_ENCODING.match(data)
    xml_encoding = match.group(1).decode("utf-8").lower() if match else ""
    mime, http_encoding = parse_content_type(content_type) if content_type else ("", "")
    if mime in ("application/xml", "application/xml-dtd", "application/xml-external-parsed-entity") or (
        mime.startswith("application/") and mime.endswith("+xml")
    ):
        encoding = http_encoding or xml_encoding or "utf-8"
    elif mime.startswith("text/"):
        encoding = http_encoding or "us-ascii"
    elif not content_type:
        encoding = xml_encoding or "iso-8859-1"
    else:
        encoding = xml_encoding or "utf-8"
    if encoding.lower() == "gb2312":
        encoding = "gb18030"
    if codecs.lookup(encoding).name not in _TRUSTED_CODECS:
        raise Decline(f"encoding {encoding}")
    if encoding == "utf-8" and xml_encoding in ("", "utf-8") and _own_declaration(data) in (b"", b"utf-8"):
        data.decode("utf-8")  # feedparser would fall back to another encoding and warn
        return data
    text = data.decode(encoding)  # LookupError / UnicodeDecodeError: feedparser overrides; decline
    declaration = "<?xml version='1.0' encoding='utf-8'?>"
    if RE_XML_DECLARATION.search(text):
        text = RE_XML_DECLARATION.sub(declaration, text)
    else:
        text = declaration + "\n" + text
    return text.encode("utf-8")


def _own_declaration(data: bytes) -> bytes:
    """The encoding the XML declaration gives as lxml reads it (feedparser's regex can see another one)."""
    declaration = _XML_DECLARATION.match(data)
    found = _DECLARED_ENCODING.search(declaration.group(0)) if declaration else None
    return found.group(1).lower() if found else b""
