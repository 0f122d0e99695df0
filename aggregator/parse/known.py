"""Known items recognised from their raw XML, so a changed feed normalizes only its new items.

A steady run re-fetches feeds that gained one to three items among ~60; normalizing every item
spent nearly all of a feed's parsing time on items the store already had. The fast path (fast.py) gives
each item a digest of its raw XML plus everything outside the item that its Article depends on
(`Digester`); the store keeps digests as the items' fingerprints, and the next parse skips an item
whose digest it knows. Only where that is exact:

- the document's items come after every other element of their channel (or feed), so the feed-level
  values an item inherits are final when its digest is taken, and skipping an item changes no
  feed-level value after it (`digest_depth`);
- no skipped item shares an id or link with an item parsed now (`clashes`): ids of repeated guids and
  the store's repeat checks depend on the other items, so then the whole feed is parsed again.

Bump DIGEST_VERSION whenever the normalization of an item changes, so stored items are parsed anew.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import feedparser
from lxml import etree

DIGEST_VERSION = "1"
_ITEM_KEYS = ("item", "entry")
_KEY_NAMES = {"guid", "id", "link"}
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # resolving gives such a value back (nearly always)


class Digester:
    """Digests of one document's items; the context part is computed once per (base, lang, state)."""

    def __init__(self, salt: str) -> None:
        self.salt = salt
        self._prefixes: dict[tuple[Any, ...], bytes] = {}

    def digest(self, element: Any, context: tuple[Any, ...]) -> str:
        prefix = self._prefixes.get(context)
        if prefix is None:
            prefix = repr((DIGEST_VERSION, feedparser.__version__, self.salt, context)).encode(
                "utf-8", "surrogatepass"
            )
            self._prefixes[context] = prefix
        hasher = hashlib.blake2b(prefix, digest_size=16)
        hasher.update(etree.tostring(element, with_tail=False))
        return hasher.hexdigest()


def digest_depth(keys: Sequence[str], depth: int) -> int:
    """`depth` (where the walk meets these items) when a channel's or feed's items are the last of its
    children (keys: the children's feedparser keys, in order), else 0: then no item is digested."""
    first = next((i for i, key in enumerate(keys) if key in _ITEM_KEYS), None)
    if first is None or any(key not in _ITEM_KEYS for key in keys[first:]):
        return 0
    return depth


def raw_keys(element: Any, resolve: Callable[[str], str]) -> set[str]:
    """The guid, id, link and rdf:about values an item gives, resolved: what its id and the store's
    repeat checks are made from."""
    found: set[str] = set()
    for name, value in element.attrib.items():
        if name.rsplit("}", 1)[-1] == "about":
            found.add(value.strip())
    for child in element:
        if not isinstance(child.tag, str) or child.tag.rsplit("}", 1)[-1].lower() not in _KEY_NAMES:
            continue
        for value in (child.text, child.get("href")):
            value = value.strip() if value else ""
            if value:
                found.add(value if _HAS_SCHEME.match(value) else resolve(value))
    return found


def clashes(skipped: Iterable[set[str]], parsed: Iterable[set[str]]) -> bool:
    """Could a skipped item's id or repeat check depend on an item parsed now?"""
    skipped_keys: set[str] = set()
    skipped_keyless = False
    for keys in skipped:
        skipped_keys |= keys
        skipped_keyless = skipped_keyless or not keys
    for keys in parsed:
        if keys & skipped_keys or (not keys and skipped_keyless):
            return True
    return False
