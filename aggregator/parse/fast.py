"""Fast path: well-formed RSS 2.0/0.9x/1.0 and Atom 1.0 read with lxml into the values feedparser gives; never guesses.

feedparser stays the reference parser (issue 8, "Parser"): `parse()` rebuilds the part of feedparser's result
that xmlfeed.py reads (feed title/link/id/updated/language/ttl, entries' title, link, id, authors, dates,
summary, content, tags, enclosures, media, itunes:image) by porting feedparser 6's own rules: element names
and attributes lowercased and mapped by namespace URI, xml:base/xml:lang scoping, the strip + resolve +
mojibake-repair + cp1252 text pipeline, the title/summary depth rules, author and tag bookkeeping.
Anything outside that well-trodden subset (syntax error, DOCTYPE, other encodings than feedparser would
pick, xhtml or nested markup, base64, unknown handlers, odd roots) raises Decline inside and returns None,
so the caller falls back to feedparser. tests/test_parse_fast.py proves both paths equal over the corpus.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from aggregator.parse import known as known_items
from aggregator.parse.fast_input import Decline, utf8_document, xml_parser
from aggregator.parse.fast_rules import (
    READ_KEYS,
    add_tag,
    child_elements,
    element_attrs,
    element_key,
    element_text,
    end_category,
    enforced_href,
    has_known_handler,
    is_inert,
    save_author,
    sync_author,
)
from aggregator.parse.feedparser_private import (
    CAN_BE_RELATIVE_URI,
    CP1252,
    HTML_TYPES,
    _parse_date,
    _urljoin,
    looks_like_html,
    make_safe_absolute_uri,
    map_content_type,
)
from aggregator.parse.fields import join_url

__all__ = ["ENABLED", "decline_reason", "parse"]

# Switch; the differential test turns it off to get the reference result. Imported only when
# feedparser_private.AVAILABLE (the 6.0 series, every private name where the port expects it).
ENABLED = True

Dict = dict[str, Any]

_ATOM = "http://www.w3.org/2005/atom"
_RSS10 = "http://purl.org/rss/1.0/"
_RSS090 = "http://my.netscape.com/rdf/simple/0.9/"
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_RELATIVE = CAN_BE_RELATIVE_URI
_HTML_TYPES = HTML_TYPES
_TEXT_TYPES = ("text/plain", "text/html")
_C1_CONTROLS = re.compile("[" + "".join(map(chr, sorted(CP1252))) + "]")
_AMP_REF = re.compile("&([A-Za-z0-9_]+);")
_looks_like_html = looks_like_html
_map_type = map_content_type

_TITLES = {"title", "dc_title", "media_title"}
_DESCRIPTIONS = {"description": "text/html", "dc_description": "text/html", "media_description": "text/html"}
_SUMMARIES = {"summary": "text/plain", "itunes_summary": "text/plain"}
_CONTENTS = {"content": "text/plain", "content_encoded": "text/html", "fullitem": "text/html"}
_PUBLISHED = {"published", "pubdate", "issued", "dcterms_issued"}
_UPDATED = {"updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified"}
_AUTHORS = {"author", "dc_author", "dc_creator", "itunes_author", "managingeditor"}
_CATEGORIES = {"category", "dc_subject", "keywords", "media_category"}
_PERSON_PARTS = {"name", "itunes_name", "email", "itunes_email", "uri", "url", "homepage"}
# Handlers that only write keys xmlfeed.py never reads and change no parser state once closed.
_HARMLESS = {
    "rights", "copyright", "dc_rights", "dc_publisher", "webmaster", "language", "dc_language",
    "created", "dcterms_created", "expirationdate", "dcterms_valid", "itunes_subtitle", "subtitle",
    "tagline", "info", "itunes_explicit", "itunes_block", "generator", "newlocation", "cloud",
    "dc_contributor", "feedburner_browserfriendly", "media_rating", "media_credit", "media_restriction",
    "media_license", "media_player",
}  # fmt: skip
_FEED_UNKNOWN_KEPT = ("ttl", "sy_updateperiod", "sy_updatefrequency")


def parse(
    body: bytes, content_type: str, feed_url: str, known: frozenset[str] = frozenset(), salt: str = ""
) -> Dict | None:
    """A feedparser-shaped result for `body`, or None when the document is not one the fast path handles.

    Beside feedparser's keys: "digests", each entry's raw digest ("" for none; known.py) made with
    `salt` (what outside the document the Articles depend on), and "skipped", the digests of items
    left out because `known` has them.
    """
    if not ENABLED:
        return None
    try:
        return _parse(body, content_type, feed_url, known, salt)
    except Exception:  # noqa: BLE001 (declining is always safe: feedparser parses it instead)
        return None


def decline_reason(body: bytes, content_type: str, feed_url: str) -> str:
    """Why the fast path leaves `body` to feedparser; '' when it takes it (for tests and benchmarks)."""
    try:
        _parse(body, content_type, feed_url)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"[:200]
    return ""


def _parse(
    body: bytes, content_type: str, feed_url: str, known: frozenset[str] = frozenset(), salt: str = ""
) -> Dict:
    data = utf8_document(body, content_type)
    root = etree.fromstring(data, xml_parser())
    if root.getroottree().docinfo.doctype:
        raise Decline("DOCTYPE")
    walker = _Walker(feed_url, known, salt)
    result = walker.run(root)
    if walker.skipped and walker.clashes():
        result = _Walker(feed_url, frozenset(), salt).run(root)
    return result


class _Walker:
    """One document's walk; state mirrors the feedparser attributes that decide where values go."""

    def __init__(self, feed_url: str, known: frozenset[str] = frozenset(), salt: str = "") -> None:
        self.base0 = make_safe_absolute_uri(feed_url) or feed_url
        self.version = ""
        self.feed: Dict = {}
        self.entries: list[Dict] = []
        # known items (known.py): digests by entry, and the items walked or skipped with their base
        self.known = known
        self.digester = known_items.Digester(salt)
        self.digest_depth = 0
        self.digests: list[str] = []
        self.walked: list[tuple[Any, Dict, str]] = []
        self.skipped: list[tuple[str, Any, str]] = []
        self.title_depth = -1
        self.has_content = False
        self.depths: dict[str, int] = {}
        self.enclosures: list[Dict] = []
        self._bases: dict[tuple[str, str], str] = {}

    # --- scoping and the text pipeline (feedparser mixin.unknown_starttag / pop) ---------------------

    def scope(self, attrs: Dict, base: str, lang: str | None) -> tuple[str, str | None]:
        given = (attrs.get("xml:base", attrs.get("base")) or base) if attrs else base
        cached = self._bases.get((base, given))
        if cached is None:
            if base:
                cached = make_safe_absolute_uri(base, given) or base
            else:
                cached = _urljoin(base, given)
            self._bases[(base, given)] = cached
        if attrs:
            given_lang = attrs.get("xml:lang", attrs.get("lang"))
            if given_lang == "":
                lang = None
            elif given_lang is not None:
                lang = given_lang
        return cached, lang

    def value(self, raw: str, name: str, base: str, kind: str = "", resolve: bool = True) -> tuple[str, str]:
        output = raw.strip()
        if output and resolve and name in _RELATIVE:
            output = join_url(base, output, _urljoin)
        if kind == "text/plain" and not self.version.startswith("atom") and _looks_like_html(output):
            kind = "text/html"
        try:
            output = output.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        # str.translate with a dict walks every character in Python-level lookups: only when one can match.
        return (output.translate(CP1252) if _C1_CONTROLS.search(output) else output), kind

    @staticmethod
    def content_type(attrs: Dict, default: str) -> str:
        if attrs.get("mode", "") == "base64":
            raise Decline("base64")
        kind = _map_type(attrs.get("type", default))
        if kind not in _TEXT_TYPES:
            raise Decline(f"content type {kind}")
        return kind

    @staticmethod
    def detail(kind: str, lang: str | None, base: str, value: str) -> Dict:
        return {
            "type": kind,
            "language": lang.replace("_", "-") if lang else lang,
            "base": base,
            "value": value,
        }

    # --- document ---------------------------------------------------------------------------------

    def run(self, root: Any) -> Dict:
        self.version = self.root_version(root)
        attrs = element_attrs(root)
        base, lang = self.scope(attrs, self.base0, None)
        key = element_key(root)
        if lang and key in ("feed", "rss"):
            self.feed["language"] = lang.replace("_", "-")
        self.digest_depth = self.items_depth(root, key)
        if key == "feed":
            self.feed_children(root, 2, base, lang)
        else:
            for child in child_elements(root):
                self.outer_child(child, 2, base, lang, key)
        return {"bozo": False, "version": self.version, "feed": self.feed, "entries": self.entries,
                "digests": self.digests, "skipped": [digest for digest, _, _ in self.skipped]}

    def items_depth(self, root: Any, key: str) -> int:
        """The depth at which the walk meets items it may digest and skip (known.digest_depth)."""
        if key != "rss":  # Atom's entries and RSS 1.0's items are the root's children
            return known_items.digest_depth([element_key(child) for child in child_elements(root)], 2)
        channels = child_elements(root)
        if len(channels) != 1 or element_key(channels[0]) != "channel":
            return 0
        return known_items.digest_depth([element_key(child) for child in child_elements(channels[0])], 3)

    def clashes(self) -> bool:
        """Does a skipped item share an id or link with a walked one (known.clashes)?"""

        def keys(element: Any, base: str) -> set[str]:
            return known_items.raw_keys(element, lambda value: join_url(base, value, _urljoin))

        walked = (keys(element, base) | {entry[k] for k in ("id", "link") if entry.get(k)}
                  for element, entry, base in self.walked)
        return known_items.clashes((keys(element, base) for _, element, base in self.skipped), walked)

    def root_version(self, root: Any) -> str:
        found = []
        for prefix, uri in root.nsmap.items():
            lowered = uri.lower()
            if (prefix is None and lowered == _RSS090) or lowered in (_RSS10, _ATOM):
                found.append({_RSS090: "rss090", _RSS10: "rss10", _ATOM: "atom10"}[lowered])
        if len(found) > 1:
            raise Decline("several format namespaces")
        declared = found[0] if found else ""
        key = element_key(root)
        if key == "rss" and not declared.startswith("rss"):
            given = element_attrs(root).get("version", "")
            return _RSS_VERSIONS.get(given) or ("rss20" if given.startswith("2.") else "rss")
        if key == "feed" and declared == "atom10" and root.tag == "{http://www.w3.org/2005/Atom}feed":
            return declared
        if key == "rdf_rdf" and declared == "rss10":
            return declared
        raise Decline(f"root {root.tag!r} with {declared!r}")

    def outer_child(self, element: Any, depth: int, base: str, lang: str | None, root_key: str) -> None:
        """Children of <rss> or <rdf:RDF>: the channel, items, and RDF's channel-sibling image/textinput."""
        key = element_key(element)
        attrs = element_attrs(element)
        base, lang = self.scope(attrs, base, lang)
        if key == "channel":
            if "lastmod" in attrs or "href" in attrs:
                raise Decline("CDF channel")
            self.feed_children(element, depth + 1, base, lang)
        elif key == "item":
            self.item(element, attrs, depth, base, lang)
        elif key in ("image", "textinput") and root_key == "rdf_rdf":
            self.image(element, depth, key)
        else:
            raise Decline(f"{key} outside the channel")

    # --- feed level -------------------------------------------------------------------------------

    def feed_children(self, parent: Any, depth: int, base: str, lang: str | None) -> None:
        for element in child_elements(parent):
            attrs = element_attrs(element)
            child_base, child_lang = self.scope(attrs, base, lang)
            self.feed_child(element, element_key(element), attrs, depth, child_base, child_lang)

    def feed_child(
        self, element: Any, key: str, attrs: Dict, depth: int, base: str, lang: str | None
    ) -> None:
        feed = self.feed
        if key in ("item", "entry"):
            self.item(element, attrs, depth, base, lang)
        elif key in _TITLES and key != "media_title":
            kind = self.content_type(attrs, "text/plain")
            value, kind = self.value(element_text(element), "title", base, kind)
            if not -1 < self.title_depth <= depth:
                feed["title"] = value
                feed["title_detail"] = self.detail(kind, lang, base, value)
            if value:
                self.title_depth = depth
        elif key == "link":
            self.link(feed, element, attrs, base, in_entry=False)
        elif key in ("id", "guid"):
            is_link = attrs.get("ispermalink", "true") == "true"
            value, _ = self.value(element_text(element), "id", base, resolve=is_link)
            feed["id"] = value
            if is_link:
                feed.setdefault("link", value)
        elif key in _UPDATED:
            feed["updated_parsed"] = _parse_date(self.value(element_text(element), key, base)[0])
        elif key in ("language", "dc_language"):
            feed["language"] = self.value(element_text(element), "language", base)[0]
        elif key in _DESCRIPTIONS or key in _SUMMARIES:
            element_text(element)
            if "summary" in feed and not self.has_content:
                self.has_content = True  # feedparser turns it into content; nothing we read changes
            elif key in _SUMMARIES:
                feed["summary"] = ""  # only its presence matters (see above)
        elif key in ("image", "textinput"):
            self.image(element, depth, key)
        elif key in _AUTHORS or key in ("contributor", "itunes_owner"):
            self.check_person(element)
        elif key == "items" and self.version == "rss10":
            pass  # RDF's table of contents: feedparser stores it under a key nobody reads
        elif key == "itunes_category":
            self.check_nested_categories(element)
        elif key in _HARMLESS or key in _PUBLISHED or key in _CATEGORIES or key in (
            "itunes_image", "itunes_link", "itunes_keywords", "media_thumbnail", "tags", "enclosure",
            "itunes_email", "itunes_name", "name", "email",
        ) or key == "media_keywords" and not attrs:  # fmt: skip
            element_text(element)
        elif has_known_handler(key) or key in READ_KEYS and key not in _FEED_UNKNOWN_KEPT:
            raise Decline(f"feed element {key}")
        elif len(element) and key not in _FEED_UNKNOWN_KEPT:
            self.feed_children(element, depth + 1, base, lang)  # feedparser handles them one level deeper
        elif attrs:
            element_text(element)
            feed[key] = attrs
        else:
            feed[key] = self.value(element_text(element), key, base)[0]

    def image(self, element: Any, depth: int, key: str) -> None:
        """<image>/<textinput>: their titles only move feedparser's title gate."""
        self.title_depth = -1
        allowed = ("title", "link", "url", "width", "height", "description", "href", "name")
        for child in child_elements(element):
            child_key = element_key(child)
            if child_key not in allowed or (child_key == "link" and element_attrs(child)):
                raise Decline(f"{child_key} in {key}")
            text = element_text(child)
            if child_key == "title" and text.strip():
                self.title_depth = depth + 1

    def check_person(self, element: Any) -> None:
        for child in child_elements(element):
            if element_key(child) not in _PERSON_PARTS and not is_inert(child):
                raise Decline("unusual person element")
            element_text(child)
        if not child_elements(element):
            element_text(element)

    def check_nested_categories(self, element: Any) -> None:
        for child in child_elements(element):
            if element_key(child) != "itunes_category":
                raise Decline("unusual itunes:category")
            self.check_nested_categories(child)

    def link(self, context: Dict, element: Any, attrs: Dict, base: str, in_entry: bool) -> None:
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        attrs = enforced_href(attrs)
        if "href" in attrs:
            element_text(element)
            attrs["href"] = join_url(base, attrs["href"], _urljoin)
            if in_entry and attrs["rel"] == "enclosure":
                self.enclosures.append(attrs)
            if attrs["rel"] == "alternate" and _map_type(attrs["type"]) in _HTML_TYPES:
                context["link"] = attrs["href"]
            return
        if attrs["rel"] == "enclosure":
            raise Decline("enclosure link without href")
        value, _ = self.value(element_text(element), "link", base)
        if in_entry:
            value = _AMP_REF.sub(r"&\g<1>", value.replace("&amp;", "&"))
        else:
            value = _AMP_REF.sub(r"&\g<1>", value)
        context["link"] = value

    # --- entries ----------------------------------------------------------------------------------

    def item(self, element: Any, attrs: Dict, depth: int, base: str, lang: str | None) -> None:
        if "lastmod" in attrs or "href" in attrs:
            raise Decline("CDF item")
        digest = ""
        if depth == self.digest_depth:
            title_type = (self.feed.get("title_detail") or {}).get("type")
            context = (self.version, self.base0, base, lang, depth, self.has_content, self.feed.get("title"),
                       title_type, self.feed.get("link"), self.feed.get("language"))
            digest = self.digester.digest(element, context)
            if digest in self.known:
                self.skipped.append((digest, element, base))
                self.has_content = False  # as after a walked item; nothing feed-level follows (items_depth)
                return
        entry: Dict = {}
        self.entries.append(entry)
        self.digests.append(digest)
        self.walked.append((element, entry, base))
        self.title_depth = -1
        self.depths = {}
        self.enclosures = []
        about = attrs.get("rdf:about")
        if about:
            entry["id"] = about
        self.entry_children(entry, element, depth + 1, base, lang)
        if self.enclosures:
            entry["enclosures"] = [{k: v for k, v in link.items() if k != "rel"} for link in self.enclosures]
        self.has_content = False

    def entry_children(self, entry: Dict, parent: Any, depth: int, base: str, lang: str | None) -> None:
        for element in child_elements(parent):
            attrs = element_attrs(element)
            child_base, child_lang = self.scope(attrs, base, lang)
            self.entry_child(entry, element, element_key(element), attrs, depth, child_base, child_lang)

    def store(self, entry: Dict, name: str, value: str, depth: int, detail: Dict | None = None) -> None:
        """feedparser's pop(): a shallower or equally deep element wins; *_detail always follows."""
        old = self.depths.get(name)
        if old is None or depth <= old:
            self.depths[name] = depth
            entry[name] = value
        if detail is not None:
            entry[name + "_detail"] = detail

    def entry_child(
        self, entry: Dict, element: Any, key: str, attrs: Dict, depth: int, base: str, lang: str | None
    ) -> None:
        if key in _TITLES:
            kind = self.content_type(attrs, "text/plain")
            value, kind = self.value(element_text(element), "title", base, kind)
            if not -1 < self.title_depth <= depth:
                self.store(entry, "title", value, depth, self.detail(kind, lang, base, value))
            if value and key != "media_title":
                self.title_depth = depth
        elif key == "link":
            self.link(entry, element, attrs, base, in_entry=True)
        elif key in ("id", "guid"):
            is_link = attrs.get("ispermalink", "true") == "true"
            value, _ = self.value(element_text(element), "id", base, resolve=is_link)
            self.store(entry, "id", value, depth)
            if is_link:
                entry.setdefault("link", value)
        elif key in _DESCRIPTIONS or key in _SUMMARIES:
            if "summary" in entry and not self.has_content:
                # feedparser's _start_description/_start_summary: a second summary is content (text/plain)
                self.content(entry, element, attrs, "content", "text/plain", base, lang)
                return
            kind = self.content_type(attrs, _DESCRIPTIONS.get(key) or _SUMMARIES[key])
            value, kind = self.value(element_text(element), "summary", base, kind)
            self.store(entry, "summary", value, depth, self.detail(kind, lang, base, value))
        elif key in _CONTENTS:
            self.content(entry, element, attrs, key, _CONTENTS[key], base, lang)
        elif key in _PUBLISHED:
            entry["published_parsed"] = _parse_date(self.value(element_text(element), key, base)[0])
        elif key in _UPDATED:
            entry["updated_parsed"] = _parse_date(self.value(element_text(element), key, base)[0])
        elif key in _AUTHORS:
            self.author(entry, element, depth, base)
        elif key in _CATEGORIES:
            if key == "media_category":
                attrs.setdefault("scheme", "http://search.yahoo.com/mrss/category_schema")
            add_tag(entry, attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label"))
            end_category(entry, self.value(element_text(element), "category", base)[0])
        elif key == "itunes_category":
            add_tag(entry, attrs.get("text"), "http://www.itunes.com/", None)
            end_category(entry, self.value(element_text(element), "category", base)[0])
        elif key in ("itunes_keywords", "media_keywords", "tags"):
            if attrs and key == "media_keywords":
                raise Decline("media:keywords with attributes")
            value = self.value(element_text(element), key, base)[0]
            for term in value.split(","):
                if key == "tags":
                    add_tag(entry, term.strip(), None, None)
                elif term.strip():
                    scheme = "http://www.itunes.com/" if key == "itunes_keywords" else None
                    add_tag(entry, term.strip(), scheme, None)
        elif key == "enclosure":
            element_text(element)
            attrs = enforced_href(attrs)
            attrs["rel"] = "enclosure"
            self.enclosures.append(attrs)
        elif key == "media_content":
            entry.setdefault("media_content", []).append(attrs)
            # feedparser pushes nothing for it: its children are handled as if they stood in the entry
            self.entry_children(entry, element, depth + 1, base, lang)
        elif key == "media_thumbnail":
            entry.setdefault("media_thumbnail", []).append(attrs)
            url = self.value(element_text(element), "url", base)[0]
            if url.strip() and "url" not in attrs:
                attrs["url"] = url
        elif key == "media_group":
            self.entry_children(entry, element, depth + 1, base, lang)
        elif key in ("itunes_image", "itunes_link"):
            element_text(element)
            href = attrs.get("href") or attrs.get("url")
            if href:
                entry["image"] = {"href": href}
        elif key in ("image", "source"):
            # feedparser files these away from anything we read, but both reset its title gate.
            for child in child_elements(element):
                if key == "source" or element_key(child) not in ("url", "width", "height", "href"):
                    raise Decline(f"{element_key(child)} in {key}")
                element_text(child)
            if not child_elements(element):
                element_text(element)
            self.title_depth = -1
        elif key in _HARMLESS or key in _PERSON_PARTS:
            element_text(element)  # name/email/uri outside an author or contributor are dropped by feedparser
        elif key == "contributor":
            self.check_person(element)
        elif has_known_handler(key) or key in READ_KEYS:
            raise Decline(f"entry element {key}")
        else:
            # An unknown element: feedparser keeps its own text under a key nobody reads and handles its
            # children as usual, one level deeper.
            self.entry_children(entry, element, depth + 1, base, lang)

    def content(
        self, entry: Dict, element: Any, attrs: Dict, key: str, default: str, base: str, lang: str | None
    ) -> None:
        self.has_content = True
        kind = self.content_type(attrs, default)
        value, kind = self.value(element_text(element), "content", base, kind)
        item = self.detail(kind, lang, base, value)
        if key == "content" and attrs.get("src"):
            item["src"] = attrs["src"]
        entry.setdefault("content", []).append(item)
        entry.setdefault("summary", value)  # feedparser's copyToSummary

    def author(self, entry: Dict, element: Any, depth: int, base: str) -> None:
        entry.setdefault("authors", []).append({})
        children = child_elements(element)
        if not children:
            self.store(entry, "author", self.value(element_text(element), "author", base)[0], depth)
            sync_author(entry)
            return
        if any(not isinstance(node.tag, str) for node in element):
            raise Decline("comment in author")
        for child in children:
            part = element_key(child)
            if part in ("name", "itunes_name", "email", "itunes_email"):
                save_author(entry, "email" if "email" in part else "name", element_text(child).strip())
            elif part in ("uri", "url", "homepage"):
                child_base, _ = self.scope(element_attrs(child), base, None)
                value = self.value(element_text(child), "href", child_base)[0]
                self.store(entry, "href", value, depth + 1)
                save_author(entry, "href", value)
            elif not is_inert(child):
                raise Decline(f"{part} in author")
        # The author's own text: feedparser also collects the text of unknown children with attributes.
        own = (element.text or "") + "".join(
            (element_text(child) if is_inert(child) and child.attrib else "") + (child.tail or "")
            for child in children
        )
        self.store(entry, "author", self.value(own, "author", base)[0], depth)
        sync_author(entry)


