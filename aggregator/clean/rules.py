"""Site rules: load the packaged YAML and per-config extensions, match them to a page URL; no DOM edits."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from urllib.parse import urlsplit

import yaml
from lxml import etree
from lxml.cssselect import CSSSelector


@dataclass(frozen=True, eq=False)  # identity hash: rule sets are cache keys
class SiteRule:
    """Selectors to remove or unwrap and block texts to drop on pages whose URL matches `hosts`."""

    name: str
    hosts: tuple[str, ...]  # globs: 'x.com', '*.x.com'; with a '/', matched against host + path
    remove: tuple[tuple[str, CSSSelector], ...] = ()
    unwrap: tuple[tuple[str, CSSSelector], ...] = ()
    drop_text: tuple[re.Pattern[str], ...] = ()
    host_re: re.Pattern[str] | None = None  # globs without '/', folded into one regex
    path_re: re.Pattern[str] | None = None  # globs with '/', matched against host + path

    @property
    def is_generic(self) -> bool:
        return "*" in self.hosts

    def matches(self, places: Sequence[tuple[str, str]]) -> bool:
        """places: (host, host + path) pairs of the page's URLs."""
        if self.is_generic:
            return True
        for host, where in places:
            if (self.host_re and self.host_re.match(host)) or (self.path_re and self.path_re.match(where)):
                return True
        return False


def _globs(globs: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(fnmatch.translate(g.lower()) for g in globs)) if globs else None


def triggers(css: str) -> list[tuple[str, str]]:
    """(trigger, selector) per comma-separated part: the part can only match when its trigger,
    its longest class/id/attribute-value token, occurs in the raw HTML ('' = always run)."""
    out = []
    for part in css.split(","):
        part = part.strip()
        tokens = re.findall(r"[.#]([\w-]+)|\[[\w-]+[*^$~|]?=['\"]?([^'\"\]]+)", part)
        words = [a or b for a, b in tokens]
        out.append((max(words, key=len) if words else "", part))
    return out


@lru_cache(maxsize=4096)
def _places(urls: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for url in urls:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            continue
        if host:
            out.append((host, host + parts.path))
    return tuple(out)


def _strings(value: object, key: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"site rule {name!r}: {key}: expected a list of strings")


def compile_rule(raw: Mapping[str, object], index: int = 0) -> SiteRule:
    """One rule from its dict form; raises ValueError naming the rule and key on a bad selector or regex."""
    hosts = _strings(raw.get("hosts"), "hosts", str(raw.get("name", index)))
    name = str(raw.get("name") or f"rule[{index}]:{','.join(hosts)}")
    unknown = set(raw) - {"name", "hosts", "remove", "unwrap", "drop_text"}
    if unknown or not hosts:
        raise ValueError(f"site rule {name!r}: needs hosts; unknown keys {sorted(unknown)}")

    def selectors(key: str) -> tuple[tuple[str, CSSSelector], ...]:
        out = []
        for css in _strings(raw.get(key), key, name):
            try:
                out.append((css, CSSSelector(css)))
            except Exception as exc:  # cssselect raises several types
                raise ValueError(f"site rule {name!r}: {key}: bad selector {css!r}: {exc}") from exc
        return tuple(out)

    try:
        texts = tuple(re.compile(p) for p in _strings(raw.get("drop_text"), "drop_text", name))
    except re.error as exc:
        raise ValueError(f"site rule {name!r}: drop_text: {exc}") from exc
    return SiteRule(
        name, hosts, selectors("remove"), selectors("unwrap"), texts,
        _globs([g for g in hosts if "/" not in g]), _globs([g for g in hosts if "/" in g]),
    )


@lru_cache(maxsize=1)
def _packaged_rules() -> tuple[SiteRule, ...]:
    text = resources.files(__package__).joinpath("data/site_rules.yaml").read_text("utf-8")
    return tuple(compile_rule(raw, i) for i, raw in enumerate(yaml.safe_load(text)["rules"]))


@lru_cache(maxsize=64)
def _extra_rules(frozen: str) -> tuple[SiteRule, ...]:
    import ast  # the key is a repr of plain lists, strings and dicts

    return tuple(compile_rule(dict(raw), i) for i, raw in enumerate(ast.literal_eval(frozen)))


def load_site_rules(extra: Sequence[Mapping[str, object]] = ()) -> tuple[SiteRule, ...]:
    """The packaged rules followed by `extra` (config `clean.rules`, then a source's `clean_rules`).

    Cached: a worker compiles each rule set once. Raises ValueError on an invalid extra rule.
    """
    if not extra:
        return _packaged_rules()
    return _packaged_rules() + _extra_rules(repr([sorted(dict(r).items()) for r in extra]))


def rules_for(rules: Sequence[SiteRule], urls: Sequence[str]) -> tuple[SiteRule, ...]:
    """The rules that apply to a page known by these URLs (item link, feed link, base)."""
    return _matching(tuple(rules), _places(tuple(urls)))


@lru_cache(maxsize=4096)
def _matching(rules: tuple[SiteRule, ...], places: tuple[tuple[str, str], ...]) -> tuple[SiteRule, ...]:
    return tuple(rule for rule in rules if rule.matches(places))


@lru_cache(maxsize=256)
def _parts(rules: tuple[SiteRule, ...], action: str) -> tuple[tuple[str, str], ...]:
    """(trigger, xpath) for every selector part of these rules' `action` (remove or unwrap)."""
    out = []
    for rule in rules:
        for css, _selector in getattr(rule, action):
            for trigger, part in triggers(css):
                out.append((trigger, CSSSelector(part).path))
    return tuple(out)


@lru_cache(maxsize=1024)
def _union(paths: tuple[str, ...]) -> etree.XPath:
    return etree.XPath(" | ".join(paths))


def active_selector(rules: tuple[SiteRule, ...], action: str, raw_html: str) -> etree.XPath | None:
    """One XPath for the selector parts that can match this document (their trigger occurs in it).

    Most documents trigger none, so the rules cost a few substring searches instead of a tree walk each.
    """
    paths = tuple(path for trigger, path in _parts(rules, action) if not trigger or trigger in raw_html)
    return _union(paths) if paths else None


@lru_cache(maxsize=256)
def drop_text_regex(rules: tuple[SiteRule, ...]) -> re.Pattern[str] | None:
    texts = [f"(?:{p.pattern})" for rule in rules for p in rule.drop_text]
    return re.compile("|".join(texts)) if texts else None


@lru_cache(maxsize=1)
def trackers() -> tuple[frozenset[str], tuple[str, ...]]:
    """Known beacon hosts (exact or parent domain) and URL substrings, from data/trackers.yaml."""
    text = resources.files(__package__).joinpath("data/trackers.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return frozenset(h.lower() for h in data["hosts"]), tuple(s.lower() for s in data["url_parts"])


def is_tracker(url: str) -> bool:
    hosts, parts = trackers()
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    labels = host.split(".")
    if any(".".join(labels[i:]) in hosts for i in range(len(labels) - 1)):
        return True
    low = url.lower()
    return any(p in low for p in parts)
