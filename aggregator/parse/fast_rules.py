"""Ports of feedparser 6.0's rules on elements and plain dicts: handler names, attributes, text, and its
bookkeeping of tags and authors. Pure; the walk that uses them is fast.py's."""

from __future__ import annotations

import re
from typing import Any

from aggregator.parse.fast_input import Decline
from aggregator.parse.feedparser_private import KEYMAP_ALIASES, NAMESPACES, enforce_href, has_handler

Dict = dict[str, Any]

_MATCH = {uri.lower(): prefix for uri, prefix in NAMESPACES.items()}
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)

# Keys xmlfeed.py reads, and FeedParserDict aliases of them: an unknown element by that name would write them.
READ_KEYS = {
    "title", "title_detail", "link", "links", "id", "summary", "summary_detail", "content", "author",
    "authors", "author_detail", "published_parsed", "updated_parsed", "tags", "enclosures", "media_content",
    "media_thumbnail", "image", "language", "ttl", "sy_updateperiod", "sy_updatefrequency", "href",
    "category", "license", "updated", "published",
} | KEYMAP_ALIASES  # fmt: skip


def element_key(element: Any) -> str:
    """feedparser's handler name for an element: 'title', 'dc_creator', 'media_content', ..."""
    tag = element.tag
    if tag[0] != "{":
        return str(tag).lower()
    uri, local = tag[1:].split("}", 1)
    lowered = uri.lower()
    if "backend.userland.com/rss" in lowered:
        lowered = "http://backend.userland.com/rss"
    prefix = _MATCH.get(lowered)
    if prefix is None:
        prefix = element.prefix
        if not prefix:
            raise Decline("unknown default namespace")
    local = local.lower()
    return f"{prefix.lower()}_{local}" if prefix else local


def element_attrs(element: Any) -> Dict:
    """Attributes the way feedparser's strict parser gives them: lowercased keys, both 'xml:base' and
    'base' for known namespaces, rel/type values lowercased."""
    items = element.attrib.items()
    if not items:
        return {}
    result: Dict = {}
    for key, value in items:
        if key[0] == "{":
            uri, local = key[1:].split("}", 1)
            prefix = _MATCH.get(uri.lower(), "")
            result[(f"{prefix}:{local}" if prefix else local).lower()] = value
        else:
            result[key.lower()] = value
    for key, value in items:
        result[key.rsplit("}", 1)[-1].lower()] = value
    for key in ("rel", "type"):
        if key in result:
            result[key] = result[key].lower()
    return result


def element_text(element: Any) -> str:
    if len(element):  # child elements, comments or PIs: feedparser would treat it as inline markup
        raise Decline(f"markup inside {element.tag}: {[c.tag for c in element][:3]}")
    return str(element.text or "")


def enforced_href(attrs: Dict) -> Dict:
    result: Dict = enforce_href(attrs)
    return result


def child_elements(element: Any) -> list[Any]:
    return [child for child in element if isinstance(child.tag, str)]


def is_inert(element: Any) -> bool:
    """An unknown, childless element (Blogger's gd:image in an author): feedparser files it under a key
    nobody reads."""
    key = element_key(element)
    return not len(element) and not has_known_handler(key) and key not in READ_KEYS


def has_known_handler(key: str) -> bool:
    return has_handler(key)


# --- ports of feedparser's bookkeeping helpers, on plain dicts ----------------------------------------


def add_tag(context: Dict, term: str | None, scheme: str | None, label: str | None) -> None:
    tags = context.setdefault("tags", [])
    if not term and not scheme and not label:
        return
    value = {"term": term, "scheme": scheme, "label": label}
    if value not in tags:
        tags.append(value)


def end_category(context: Dict, value: str) -> None:
    if not value:
        return
    tags = context["tags"]
    if tags and not tags[-1]["term"]:
        tags[-1]["term"] = value
    else:
        add_tag(context, value, None, None)


def save_author(context: Dict, key: str, value: str) -> None:
    context.setdefault("author_detail", {})[key] = value
    sync_author(context)
    context.setdefault("authors", [{}])[-1][key] = value


def sync_author(context: Dict) -> None:
    detail = context.get("authors", [{}])[-1]
    if detail:
        name, email = detail.get("name"), detail.get("email")
        if name and email:
            context["author"] = f"{name} ({email})"
        elif name:
            context["author"] = name
        elif email:
            context["author"] = email
        return
    author, email = context.get("author"), None
    if not author:
        return
    match = _EMAIL.search(author)
    if match:
        email = match.group(0)
        author = author.replace(email, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "")
        author = author.strip()
        if author and author[0] == "(":
            author = author[1:]
        if author and author[-1] == ")":
            author = author[:-1]
        author = author.strip()
    if author or email:
        context.setdefault("author_detail", detail)
    if author:
        detail["name"] = author
    if email:
        detail["email"] = email
