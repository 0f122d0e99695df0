"""Pure identity rules for the store: canonical links, normalized hashes, batch identities; no I/O.

Identity of an article within one source, in the order the store tries it (issue 6):

1. **guid**: the same ``original_id`` from the same source is the same article, unless the guid
   is *repeated* (one guid on items that differ in link or content: a common CMS bug). A
   repeated guid is remembered per source and never trusted again.
2. **link**: a canonical link already seen from that source is the same article (guid churn
   after a CMS migration). Only used when the link is unique within the batch and is not a
   bare site root (feeds where every item links to the home page would otherwise collapse).
3. **content hash**: for items without a trustworthy guid, the same normalized title+content.
4. **near-duplicate title** (conservative): an otherwise new article whose normalized title
   (NFKC, case-folded, punctuation and whitespace removed) is at least ``TITLE_KEY_MIN``
   characters long and *equal* to that of an article from the same source dated within
   ``TITLE_WINDOW_S`` seconds is a re-post of it, and is collapsed into it. No fuzzy matching:
   a false merge loses a story, a missed merge only shows one twice.

Within one batch the first occurrence in document order wins, so the outcome is stable.
Example (corpus hostile/xml/duplicate_guids.xml): 'dup-1' on two items with different links
is repeated, so both are kept, each identified by its link; the guid-less item sharing link /a
with the first falls back to its content hash (a link shared within a batch identifies
nothing): 4 articles. An id that another stored article already uses (the same guid-IRI from
two sources) is replaced by a urn:uuid derived from source + identity, once, and stored.

Changes to a known article, by three hashes:
  raw_hash     every stored field exactly: equal -> nothing to do, no write at all;
  content_hash title + content, normalized (whitespace, entities, attribute order and
               quoting, tag case, tracking parameters): differs -> a real update, `updated` moves;
  meta_hash    link, enclosures, image, authors, tags, summary: differs -> stored, date kept.
Anything else is cosmetic: the stored version stays, so published bytes do not change.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

from aggregator.model import Article
from aggregator.text import collapse_whitespace, title_key
from aggregator.tracking import TRACKING_IN_TEXT, is_tracking_param, strip_tracking

TITLE_KEY_MIN = 12  # characters after normalization; shorter titles ("Update", "日报") are too generic
TITLE_WINDOW_S = 12 * 3600  # a re-post arrives within hours; daily series are 24 h apart

_SEPARATORS = re.compile(r"([?&])[?&]+")
_DANGLING = re.compile(r"[?&]+(?=[\"'#])")  # left at the end of a URL in an attribute
_UPPER_TAG = re.compile(r"</?[a-z0-9]*[A-Z][A-Za-z0-9]*")
_ATTR_TAG = re.compile(r"<([a-z][^\s/>]*)\s([^<>]*)>")
_ATTR = re.compile(r"""([^\s"'=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


# A link with a lower-case host, no port, query or fragment: most of them. Keyed without urlsplit.
_PLAIN_LINK = re.compile(r"https?://([a-z0-9.-]+)(/[^?#\s]*)?")


def canonical_link(url: str) -> str:
    """A comparison key for a link: http/https, host case, default port, trailing slash,
    tracking parameters and query order do not count. "" for no link. Never shown to readers."""
    url = url.strip()
    if not url:
        return ""
    plain = _PLAIN_LINK.fullmatch(url)
    if plain and plain.group(1).rstrip("."):  # what _parsed_canonical_link gives it, unparsed
        return f"https://{plain.group(1).rstrip('.')}{(plain.group(2) or '').rstrip('/')}"
    return _parsed_canonical_link(url)


def _parsed_canonical_link(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return url
    host = parts.hostname.lower().rstrip(".")
    if port is not None and port not in (80, 443):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    pairs = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking_param(k))
    query = "?" + urlencode(pairs) if pairs else ""
    fragment = "#" + parts.fragment if parts.fragment else ""
    return f"https://{host}{path}{query}{fragment}"


def is_site_root(link_key: str) -> bool:
    """True for a canonical link naming a whole site (no path, query or fragment)."""
    return link_key.startswith("https://") and "/" not in link_key[len("https://"):]


normalize_text = collapse_whitespace  # the store's name for it: what hashing compares


def normalize_html(fragment: str) -> str:
    """HTML with cosmetic differences removed, for hashing only: whitespace, entity spelling,
    attribute order and quoting, tag-name case, self-closing slashes, tracking parameters.

    Regex passes rather than a parser: it runs on every new article (issue 8: ~59,000 per cold
    run) and only has to map cosmetic variants to one string, never to produce valid HTML.
    """
    text = html.unescape(fragment)
    text, tracked = TRACKING_IN_TEXT.subn(r"\1", text)
    if tracked:  # tidy the separators left behind (rare: skip the passes otherwise)
        text = _DANGLING.sub("", _SEPARATORS.sub(r"\1", text))
    text = " ".join(text.split())
    text = _UPPER_TAG.sub(lambda m: m.group().lower(), text)
    text = _ATTR_TAG.sub(_sort_attributes, text)
    # whitespace is single spaces by now, so plain replaces (fast, in C) finish the job
    return text.replace(" />", ">").replace("/>", ">").replace(" <", "<").replace("> ", ">").strip()


def _sort_attributes(match: re.Match[str]) -> str:
    pairs = sorted(
        (name.lower(), dq or sq or bare) for name, dq, sq, bare in _ATTR.findall(match.group(2))
    )
    return "<" + match.group(1) + "".join(f' {k}="{v}"' for k, v in pairs) + ">"


def _digest(*parts: str) -> str:
    blob = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()[:32]


def content_hash(article: Article) -> str:
    """Title and content, normalized: a change here is a real update (and an identity for
    articles without a trustworthy guid)."""
    body = article.content_html or article.summary
    if article.needs_cleaning:
        # not cleaned yet: the bytes as given (normalizing raw publisher HTML cost more than the rest
        # of storing it). Such an article has a guid or a link to be known by; once cleaned, it is
        # hashed normally (Store.save_cleaned).
        return _digest("uncleaned", article.title, body)
    return _digest(normalize_text(html.unescape(article.title)), normalize_html(body))


def meta_hash(article: Article) -> str:
    """What else a reader sees: link, enclosures, image, authors, tags. A change here refreshes
    the stored article but does not move its `updated` date (a domain move must not flood)."""
    return _digest(
        canonical_link(article.link),
        "\x1e".join(f"{strip_tracking(e.url)} {e.type} {e.length}" for e in article.enclosures),
        strip_tracking(article.image),
        "\x1e".join(normalize_text(a) for a in article.authors),
        "\x1e".join(sorted(normalize_text(t) for t in article.tags)),
        normalize_text(article.summary),
    )


# An article's (raw_hash, content_hash, meta_hash): pure functions of it that exclude its dates, so
# the worker that cleaned it computes them off the main process (a cold run stores ~58,000
# articles; hashing them was most of the main process's work), keyed by the item's fingerprint.
Hashes = tuple[str, str, str]


def article_hashes(article: Article) -> Hashes:
    return raw_hash(article), content_hash(article), meta_hash(article)


def raw_hash(article: Article) -> str:
    """Every stored field exactly, dates excluded: equal means nothing to do at all."""
    return _digest(repr((
        article.original_id, article.title, article.link, article.authors, article.summary,
        article.content_html, article.tags, article.enclosures, article.image, article.base_url,
        article.language, article.source_name, article.feed,
    )))


@dataclass(frozen=True)
class Candidate:
    """One article of a batch with the keys the store matches it by.

    The hashes are computed on first use: an unchanged article is recognised by guid or link
    and its raw hash alone, without normalizing its HTML (issue 8: warm runs must be cheap).
    """

    article: Article
    guid: str  # "" when absent or repeated (untrustworthy)
    link_key: str  # "" when absent
    link_usable: bool  # unique in the batch and not a site root
    # (raw, content, meta) hashes computed where the article was made (a worker): see Hashes
    known: Hashes | None = field(default=None, compare=False)

    @functools.cached_property
    def content_hash(self) -> str:
        return self.known[1] if self.known else content_hash(self.article)

    @functools.cached_property
    def raw_hash(self) -> str:
        return self.known[0] if self.known else raw_hash(self.article)

    @functools.cached_property
    def meta_hash(self) -> str:
        return self.known[2] if self.known else meta_hash(self.article)

    @functools.cached_property
    def title_key(self) -> str:
        return title_key(self.article.title)

    def identity(self) -> tuple[str, str]:
        """The key that decides duplicates within one batch."""
        if self.guid:
            return ("guid", self.guid)
        if self.link_usable:
            return ("link", self.link_key)
        return ("hash", self.content_hash)

    def identity_keys(self) -> list[tuple[str, str]]:
        """Identity rows to remember for this article (prune keeps them)."""
        keys = []
        if self.guid:
            keys.append(("guid", self.guid))
        if self.link_usable:
            keys.append(("link", self.link_key))
        if not self.guid:
            keys.append(("hash", self.content_hash))
        return keys


@dataclass(frozen=True, slots=True)
class Batch:
    candidates: tuple[Candidate, ...]
    repeated_guids: frozenset[str]  # guids first found repeated in this batch
    warnings: tuple[str, ...]


def prepare_batch(source_url: str, articles: Sequence[Article], known_repeated: frozenset[str],
                  hashes: Mapping[str, Hashes] | None = None) -> Batch:
    """Key every article, detect repeated guids, drop in-batch duplicates (first one wins)."""
    links = [canonical_link(a.link) for a in articles]
    guids = [a.original_id.strip() for a in articles]
    guid_counts = Counter(g for g in guids if g)
    variants: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for article, link, guid in zip(articles, links, guids):
        if guid_counts[guid] > 1:  # only then is the (costly) normalized hash needed here
            variants[guid].add((link, content_hash(article)))
    repeated = frozenset(g for g, v in variants.items() if len(v) > 1)
    untrusted = repeated | known_repeated
    link_counts = Counter(k for k in links if k)
    warnings = [
        f"source {source_url}: guid {g!r} is repeated on {len(variants[g])} different items; "
        "identifying them by link, then by content hash"
        for g in sorted(repeated - known_repeated)
    ]
    seen: set[tuple[str, str]] = set()
    candidates = []
    for article, link, guid in zip(articles, links, guids):
        candidate = Candidate(
            article=article,
            guid="" if guid in untrusted else guid,
            link_key=link,
            link_usable=bool(link) and link_counts[link] == 1 and not is_site_root(link),
            known=hashes.get(article.fingerprint) if hashes and article.fingerprint else None,
        )
        if candidate.identity() in seen:
            continue
        seen.add(candidate.identity())
        candidates.append(candidate)
    return Batch(tuple(candidates), repeated - known_repeated, tuple(warnings))


def article_date(article: Article) -> datetime | None:
    """The date an article carries itself: published, else updated."""
    return article.published or article.updated


def is_near_duplicate(key_a: str, date_a: datetime, key_b: str, date_b: datetime) -> bool:
    """The documented re-post rule (see the module docstring)."""
    return (
        len(key_a) >= TITLE_KEY_MIN
        and key_a == key_b
        and abs((date_a - date_b).total_seconds()) <= TITLE_WINDOW_S
    )
