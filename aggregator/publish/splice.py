"""Incremental Atom: a changed feed renders only its new and changed entries; every other entry is
copied byte for byte from the file the last publish wrote. Pure except for reading that file.

An entry's bytes depend only on its article and on the config that shapes outputs, so an entry
digest over both (the caller's: id, source, dates, stored hash and config) that is the same as when
the file was written means the same bytes. feedgen renders the feed's head (its `updated` taken from
every entry) and the entries to render; the copied ones go in between, in the feed's order.

The old file is used only when it is exactly what the last publish wrote (its SHA-256 is in the
caller's marker) and splits into as many entries as it listed; anything else renders every entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.model import Article, OutputConfig
from aggregator.publish import common
from aggregator.publish.common import FeedSpec

# feedgen's pretty-printed layout: text and attribute values escape "<", so these occur only as tags.
_ENTRY_OPEN = b"  <entry>\n"
_ENTRY_CLOSE = b"  </entry>\n"
_FEED_CLOSE = b"</feed>"

EntryKey = tuple[str, str]  # (article id, source URL): unique within a published feed


@dataclass(frozen=True)
class Written:
    """What the last publish wrote for one feed: its entries' digests in file order, the file's SHA-256."""

    entries: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class EntryDigests:
    """For a publish: each feed's entry digests now (slug -> key -> digest), and what was written before."""

    now: Mapping[str, Mapping[EntryKey, str]]
    written: Mapping[str, Written]


def key_of(article: Article) -> EntryKey:
    return article.id, article.source_url


def split(document: bytes) -> tuple[bytes, list[bytes], bytes] | None:
    """Head, entries and tail of an Atom document rendered here; None when it is laid out otherwise."""
    end = document.rfind(_FEED_CLOSE)
    if end < 0:
        return None
    first = document.find(_ENTRY_OPEN, 0, end)
    if first < 0:
        return document[:end], [], document[end:]
    entries, at = [], first
    while at < end:
        if not document.startswith(_ENTRY_OPEN, at):
            return None
        close = document.find(_ENTRY_CLOSE, at, end)
        if close < 0:
            return None
        entries.append(document[at:close + len(_ENTRY_CLOSE)])
        at = close + len(_ENTRY_CLOSE)
    return document[:first], entries, document[end:]


def reusable_entries(path: Path, written: Written | None) -> dict[str, bytes]:
    """Entry digest -> entry bytes of the feed file at `path`, if it is exactly what was written."""
    if written is None:
        return {}
    try:
        document = path.read_bytes()
    except OSError:
        return {}
    if hashlib.sha256(document).hexdigest() != written.sha256:
        return {}  # edited by hand, or written by another version: nothing in it is trusted
    parts = split(document)
    if parts is None or len(parts[1]) != len(written.entries):
        return {}
    return dict(zip(written.entries, parts[1], strict=True))


def render_spliced(
    spec: FeedSpec,
    published: Sequence[Article],
    digests: Mapping[EntryKey, str],
    reusable: Mapping[str, bytes],
    load: Callable[[set[EntryKey]], Sequence[Article]],
    output: OutputConfig,
    categories_of: Mapping[str, Sequence[str]],
    render: Callable[..., bytes],
) -> tuple[bytes, Written]:
    """The Atom document of `published` (the feed's articles as published: ordered and limited; only
    their ids, sources and dates are read), rendering only the entries `reusable` lacks: their whole
    articles come from `load(keys)`; `render` is atom.render_atom. Byte for byte what it gives for the
    whole articles."""
    keys = [key_of(a) for a in published]
    missing = {k for k in keys if digests[k] not in reusable}
    fresh = [a for a in load(missing) if key_of(a) in missing]
    if len(fresh) != len(missing):
        raise ValueError(f"feed {spec.slug}: {len(missing)} entries to render, {len(fresh)} articles loaded")
    document = render(spec, fresh, output, categories_of, updated=common.feed_updated(published))
    parts = split(document)
    if parts is None:
        raise ValueError(f"feed {spec.slug}: rendered Atom not laid out as expected")
    head, entries, tail = parts
    rendered = dict(zip((key_of(a) for a in common.order_articles(fresh, 0)), entries, strict=True))
    body = b"".join(rendered[k] if k in missing else reusable[digests[k]] for k in keys)
    data = head + body + tail
    return data, Written(tuple(digests[k] for k in keys), hashlib.sha256(data).hexdigest())
