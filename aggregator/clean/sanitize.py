"""The final allowlist sanitizer (nh3): the one table of allowed elements, attributes and schemes; no DOM edits."""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache
from urllib.parse import urlsplit

import nh3

# The whole policy, in one place (issue 2 step 4, issue 4 "Safety").
# Not here on purpose: script, style, object, embed, form and its controls, svg, math, frame,
# span/font/center (presentational; their text is kept), and every style/class/id/on* attribute.
ALLOWED_TAGS: frozenset[str] = frozenset(
    ["a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "small", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul", "var", "audio", "video", "source", "track"]
)
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title", "hreflang"},
    "abbr": {"title"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "img": {"src", "srcset", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "headers"},
    "th": {"colspan", "rowspan", "headers", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "time": {"datetime"},
    "ol": {"start", "reversed"},
    "li": {"value"},
    "audio": {"src", "controls", "preload"},
    "video": {"src", "controls", "poster", "width", "height", "preload"},
    "source": {"src", "srcset", "type", "media", "sizes"},
    "track": {"src", "kind", "srclang", "label"},
    "iframe": {"src", "width", "height", "allowfullscreen"},
}
URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})
# Attribute values we set ourselves; restricted to exactly these values.
TAG_ATTRIBUTE_VALUES: dict[str, dict[str, set[str]]] = {
    "img": {"referrerpolicy": {"no-referrer"}},
}
# Embedded players run sandboxed: no top navigation, no forms (issue 4: iframes only from video hosts).
IFRAME_SANDBOX = "allow-scripts allow-same-origin allow-popups allow-presentation"
_URL_ATTRS = frozenset({"href", "src", "cite", "poster"})
_SRCSET_ATTRS = frozenset({"srcset"})
_IFRAME_WITHOUT_SRC = re.compile(r"<iframe\b(?:(?!\ssrc=)[^>])*>.*?</iframe>", re.DOTALL | re.IGNORECASE)


def _is_http(url: str) -> bool:
    return urlsplit(url.strip()).scheme.lower() in ("http", "https")


def _clean_srcset(value: str) -> str | None:
    kept = []
    for candidate in value.split(","):
        parts = candidate.split()
        if parts and _is_http(parts[0]):
            kept.append(" ".join(parts[:2]))
    return ", ".join(kept) or None


def _attribute_filter(iframe_hosts: Collection[str]):  # type: ignore[no-untyped-def]
    def keep(tag: str, attr: str, value: str) -> str | None:
        if attr in _SRCSET_ATTRS:
            return _clean_srcset(value)
        if attr in _URL_ATTRS and tag != "a" and not _is_http(value):
            return None  # cite/src/poster: http(s) only (ammonia does not check cite)
        if tag == "iframe" and attr == "src":
            host = (urlsplit(value).hostname or "").lower()
            if host not in iframe_hosts or urlsplit(value).scheme != "https" or re.search(r'[\s"<>]', value):
                return None
        return value

    return keep


_TAGS = set(ALLOWED_TAGS)
_TAGS_WITH_IFRAME = _TAGS | {"iframe"}
_ATTRIBUTES = {tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()}
# The callback costs a Python call per attribute, so it runs only when an attribute it judges is present.
_NEEDS_FILTER = ("srcset=", "cite=", "<iframe", "poster=", "<source", "<track", "<audio", "<video")


@lru_cache(maxsize=32)
def _cleaner(hosts: frozenset[str], with_filter: bool) -> nh3.Cleaner:
    """A reusable nh3 Cleaner: building the policy per call costs more than sanitizing a short item."""
    return nh3.Cleaner(
        tags=_TAGS_WITH_IFRAME if hosts else _TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter(hosts) if with_filter else None,
        strip_comments=True,
        link_rel="noopener noreferrer",
        tag_attribute_values=TAG_ATTRIBUTE_VALUES,
        set_tag_attribute_values={"iframe": {"sandbox": IFRAME_SANDBOX}} if hosts else None,
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",
    )


def _clean(html: str, hosts: frozenset[str], with_filter: bool) -> str:
    return str(_cleaner(hosts, with_filter).clean(html))


@lru_cache(maxsize=32)
def _hosts(iframe_hosts: tuple[str, ...]) -> frozenset[str]:
    return frozenset(h.lower() for h in iframe_hosts)


def sanitize(html: str, iframe_hosts: Collection[str] = ()) -> str:
    """Sanitize a fragment with the allowlist; absolute http(s)/mailto URLs only, no comments."""
    hosts = _hosts(tuple(iframe_hosts))
    out = _clean(html, hosts, with_filter=False)
    # html5ever writes every tag and attribute name in lower case: the markers are found as written
    if any(marker in out for marker in _NEEDS_FILTER):
        out = _clean(out, hosts, with_filter=True)
    if "<iframe" in out:
        out = _IFRAME_WITHOUT_SRC.sub("", out)  # an iframe whose host was refused goes entirely
    return out
