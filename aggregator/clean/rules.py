"""Site rules: load the packaged YAML and per-config extensions, match them to a page URL; no DOM edits."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import yaml
from lxml import etree
from lxml.cssselect import CSSSelector

from aggregator.patterns import SafePattern, compile_pattern, trusted_pattern

from .urls import fast_host_path


@dataclass(frozen=True, eq=False)  # identity hash: rule sets are cache keys
class SiteRule:
    """Selectors to remove or unwrap and block texts to drop on pages whose URL matches `hosts`."""

    name: str
    hosts: tuple[str, ...]  # globs: 'x.com', '*.x.com'; with a '/', matched against host + path
    remove: tuple[tuple[str, CSSSelector], ...] = ()
    unwrap: tuple[tuple[str, CSSSelector], ...] = ()
    drop_text: tuple[SafePattern, ...] = ()
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
def _place(url: str) -> tuple[str, str] | None:
    """(host, host + path) of a page URL; None when it has no host."""
    fast = fast_host_path(url)
    if fast is not None:
        host, path = fast
    else:
        try:
            parts = urlsplit(url)
            host, path = (parts.hostname or "").lower(), parts.path
        except ValueError:
            return None
    return (host, host + path) if host else None


def _strings(value: object, key: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"site rule {name!r}: {key}: expected a list of strings")


def compile_rule(raw: Mapping[str, object], index: int = 0, *, packaged: bool = False) -> SiteRule:
    """One rule from its dict form; raises ValueError naming the rule and key on a bad selector or regex.

    packaged: our own rules, whose patterns are written and tested to run in linear time on `re`.
    Every other pattern is a user's: RE2, else `regex` within the run's time budgets (patterns.py).
    """
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

    import regex

    try:
        texts = tuple(trusted_pattern(p) if packaged else compile_pattern(p, python_classes=True)
                      for p in _strings(raw.get("drop_text"), "drop_text", name))
    except (regex.error, re.error) as exc:
        raise ValueError(f"site rule {name!r}: drop_text: {exc}") from exc
    return SiteRule(
        name, hosts, selectors("remove"), selectors("unwrap"), texts,
        _globs([g for g in hosts if "/" not in g]), _globs([g for g in hosts if "/" in g]),
    )


@lru_cache(maxsize=1)
def _packaged_rules() -> tuple[SiteRule, ...]:
    text = resources.files(__package__).joinpath("data/site_rules.yaml").read_text("utf-8")
    return tuple(compile_rule(raw, i, packaged=True) for i, raw in enumerate(yaml.safe_load(text)["rules"]))


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
    rules = tuple(rules)
    places = [place for place in map(_place, urls) if place is not None]
    # item links differ per article: only the few path rules look at them, the rest is cached per host;
    # a path glob can only match a URL holding its literal part (one regex search finds any)
    path_rules, needles = _path_rules(rules)
    path_hits = []
    if path_rules and (needles is None or any(needles.search(where) for _, where in places)):
        for rule in path_rules:
            if rule.path_re and any(rule.path_re.match(where) for _, where in places):
                path_hits.append(rule)
    return _matching(rules, tuple(host for host, _ in places), frozenset(path_hits))


@lru_cache(maxsize=256)
def _path_rules(rules: tuple[SiteRule, ...]) -> tuple[tuple[SiteRule, ...], re.Pattern[str] | None]:
    """The rules with path globs, and a regex for the literals one of which a URL must hold to match
    any of them (the longest wildcard-free run of each glob; None: some glob has none)."""
    path_rules = tuple(rule for rule in rules if rule.path_re is not None and not rule.is_generic)
    globs = [re.sub(r"\[[^\]]*\]?", "*", g.lower()) for r in path_rules for g in r.hosts if "/" in g]  # [...] is no literal
    needles = [max(re.split(r"[*?]", g), key=len) for g in globs]
    if not all(needles):
        return path_rules, None
    return path_rules, re.compile("|".join(re.escape(n) for n in sorted(set(needles))))


@lru_cache(maxsize=4096)
def _matching(
    rules: tuple[SiteRule, ...], hosts: tuple[str, ...], path_hits: frozenset[SiteRule]
) -> tuple[SiteRule, ...]:
    """SiteRule.matches for every rule, with the path matches already known."""
    return tuple(
        rule
        for rule in rules
        if rule.is_generic or rule in path_hits or (rule.host_re and any(rule.host_re.match(h) for h in hosts))
    )


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
    parts, gates, untriggered = _plan(rules, action)
    present = {trigger for gate, triggers in gates if gate in raw_html for trigger in triggers if trigger in raw_html}
    if not present:
        return untriggered
    paths = tuple(path for trigger, path in parts if not trigger or trigger in present)
    return _union(paths) if paths else None


@lru_cache(maxsize=256)
def _plan(
    rules: tuple[SiteRule, ...], action: str
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, tuple[str, ...]], ...], etree.XPath | None]:
    """The selector parts of these rules' `action`, their gates, and the XPath of the parts that need
    no trigger (what a document triggering none gets): worked out once per rule set."""
    parts = _parts(rules, action)
    always = tuple(path for trigger, path in parts if not trigger)
    return parts, _gates(parts), _union(always) if always else None


@lru_cache(maxsize=256)
def _gates(parts: tuple[tuple[str, str], ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The distinct triggers grouped under a shared substring (a gate): when the gate is absent from a
    document, so is every trigger under it, and one search replaces several. Greedy, 4-character gates."""
    left = sorted({trigger for trigger, _path in parts if trigger})
    groups: list[tuple[str, tuple[str, ...]]] = []
    while left:
        counts: dict[str, int] = {}
        for trigger in left:
            for sub in {trigger[i : i + 4] for i in range(len(trigger) - 3)}:
                counts[sub] = counts.get(sub, 0) + 1
        gate = max(sorted(counts), key=lambda g: counts[g], default="")
        if not gate or counts[gate] < 2:
            groups.extend((trigger, (trigger,)) for trigger in left)
            break
        groups.append((gate, tuple(t for t in left if gate in t)))
        left = [t for t in left if gate not in t]
    return tuple(groups)


@lru_cache(maxsize=256)
@lru_cache(maxsize=256)
def drop_text_patterns(rules: tuple[SiteRule, ...]) -> tuple[SafePattern, ...]:
    """The rules' drop_text patterns in as few searches as is safe: ours in one `re` union, the users'
    that RE2 runs in one RE2 union, and each other one alone (a union would share its time budget, so
    one hostile pattern would switch off every drop_text pattern of the page)."""
    found = [p for rule in rules for p in rule.drop_text]
    out = []
    for engine, join in (("re", trusted_pattern), ("re2", compile_pattern)):
        texts = [f"(?:{p.pattern})" for p in found if p.engine == engine]
        if texts:
            out.append(join("|".join(texts)) if len(texts) > 1 else next(p for p in found if p.engine == engine))
    return (*out, *(p for p in found if p.engine == "regex"))


@lru_cache(maxsize=1)
def trackers() -> tuple[frozenset[str], tuple[str, ...]]:
    """Known beacon hosts (exact or parent domain) and URL substrings, from data/trackers.yaml."""
    text = resources.files(__package__).joinpath("data/trackers.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return frozenset(h.lower() for h in data["hosts"]), tuple(s.lower() for s in data["url_parts"])


@lru_cache(maxsize=2048)  # pure; images and links recur across passes
def is_tracker(url: str) -> bool:
    hosts, parts = trackers()
    fast = fast_host_path(url)
    if fast is not None:
        host = fast[0]
    else:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return False
    labels = host.split(".")
    if any(".".join(labels[i:]) in hosts for i in range(len(labels) - 1)):
        return True
    low = url.lower()
    return any(p in low for p in parts)


_WS_SPLIT = re.compile(r"[ \t\n\r\f\v]+")


@lru_cache(maxsize=1024)
def required_texts(pattern: SafePattern | re.Pattern[str]) -> tuple[str, ...] | None:
    """Strings one of which any text `pattern` finds must contain, so a document whose text holds
    none of them needs no block-by-block search; None when no such strings are known.

    Only whitespace-free literal runs count: block texts are searched with whitespace collapsed.
    """
    if pattern.flags & re.IGNORECASE:
        return None
    try:
        import re._constants as sre_constants  # the stdlib's own regex parser
        import re._parser as sre_parser

        return _required(sre_parser.parse(pattern.pattern, pattern.flags), sre_constants)
    except (ImportError, AttributeError, TypeError, ValueError, IndexError, re.error):  # a private API: when it
        # changes, just search every block as before
        return None


def _required(seq: object, c: Any) -> tuple[str, ...] | None:
    best: tuple[str, ...] | None = None
    run: list[str] = []

    def better(cand: tuple[str, ...] | None) -> None:
        nonlocal best
        if cand and all(cand) and (best is None or min(map(len, cand)) > min(map(len, best))):
            best = cand

    def flush() -> None:
        pieces = _WS_SPLIT.split("".join(run))
        better((max(pieces, key=len),))
        run.clear()

    for op, av in seq:  # type: ignore[attr-defined]
        if op is c.LITERAL:
            run.append(chr(av))
            continue
        flush()
        if op is c.SUBPATTERN:
            _group, add_flags, _del_flags, sub = av
            better(None if add_flags & c.SRE_FLAG_IGNORECASE else _required(sub, c))
        elif op is c.BRANCH:
            alternatives = [_required(branch, c) for branch in av[1]]
            if all(a is not None for a in alternatives):
                better(tuple(t for a in alternatives if a for t in a))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
            better(_required(av[2], c))
        elif op is getattr(c, "ATOMIC_GROUP", None):
            better(_required(av, c))
    flush()
    return best

