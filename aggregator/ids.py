"""Article ids: keep a feed's own id when it is a valid Atom id, else derive a stable one; no I/O."""

from __future__ import annotations

import hashlib
import re
import uuid

# What the W3C feed validator accepts as atom:id (its rfc2396_full / urn / tag checks), ASCII only.
_IRI = re.compile(r"[a-zA-Z][0-9a-zA-Z+\-.]*:(//)?[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,#]+")
_URN = re.compile(
    r"[Uu][Rr][Nn]:[a-zA-Z0-9][a-zA-Z0-9-]{1,31}:([a-zA-Z0-9()+,.:=@;$_!*'\-]|%[0-9A-Fa-f]{2})+"
)
_TAG = re.compile(
    r"tag:([a-z0-9\-._]+?@)?[a-z0-9.\-]+?,\d{4}(-\d{2}(-\d{2})?)?:"
    r"[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*(#[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*)?"
)
_HOSTED = re.compile(r"[a-z][a-z0-9+\-.]*://[^/]")
# Schemes a reader can be expected to treat as ids; others trip the validator's IANA-scheme warning.
_SCHEMES = frozenset({"http", "https", "ftp", "urn", "tag", "info", "mailto", "news", "nntp"})
_MAX_ID = 512  # longer guids are hashed into a bounded derived id
_NAMESPACE = uuid.UUID("6f1c2b7e-4a47-5c36-9d8b-3a9f1f0d2e51")  # this program's uuid5 namespace


def is_valid_atom_id(value: str) -> bool:
    """True when `value` is an absolute IRI that the W3C feed validator accepts as atom:id."""
    if not value or len(value) > _MAX_ID or not value.isascii() or not _IRI.fullmatch(value):
        return False
    scheme = value.split(":", 1)[0].lower()
    if scheme not in _SCHEMES:
        return False
    if scheme == "urn":
        return _URN.fullmatch(value) is not None
    if scheme == "tag":
        return _TAG.fullmatch(value) is not None
    if scheme in ("http", "https", "ftp"):
        return _HOSTED.match(value) is not None and value.split(":", 1)[0].islower()
    return True


def derive_id(source_url: str, key: str) -> str:
    """A stable urn:uuid id for `key` within one source (ids are namespaced by source)."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, source_url + chr(10) + key)}"


def content_key(title: str, content: str) -> str:
    digest = hashlib.sha256((title + "\x00" + content).encode("utf-8", "surrogatepass")).hexdigest()
    return f"content:{digest}"


def make_article_id(source_url: str, original_id: str, link: str, title: str, content: str) -> str:
    """The feed's guid/id when it is a valid Atom id; else one derived from source + guid/link/content."""
    guid = original_id.strip()
    if is_valid_atom_id(guid):
        return guid
    if guid:
        return derive_id(source_url, "guid:" + guid)
    if link.strip():
        return derive_id(source_url, "link:" + link.strip())
    return derive_id(source_url, content_key(title, content))
