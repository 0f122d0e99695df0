"""Keep/drop rules for articles: validation of the `filters` contract and the pure decision; no I/O, no state.

Contract (a `filters` list at the top level, in a category or in a source; the caller concatenates
global + category + source lists, in that order):

    - drop: {title: "sponsored|advert"}     # FIELD: title, content, author, tags, link, language
    - keep: {tags: "python"}                # a plain keyword is a regex too
    - max_age: 7d                           # a duration, see aggregator.text.parse_duration
    - min_length: 200                       # characters of content text

Matching: a regex *searches* the field, case-insensitively. content = the text of content_html (tags
stripped), or the summary when there is no content; author = authors joined with ", "; tags = each tag
on its own (a match on any tag counts); language = the article's or its feed's language tag (e.g.
"zh-CN"), the pattern must match the whole tag or its primary subtag ("zh"). When neither gives a
language, a CJK script guess is used; an article whose language is still unknown is left alone by
language rules (a keep-language rule lets it pass). One mapping with several fields is one rule per field.

Order, first hit decides:
  1. drop-rules, max_age and min_length, in the order given: the first that matches drops the article
     (drop wins over keep);
  2. if any keep-rule exists, the article must match at least one of them, else it is dropped with
     the label NO_KEEP_MATCH;
  3. otherwise the article is kept.

Regex safety (aggregator.patterns): patterns run on RE2 (linear time, so `(a+)+$` cannot hang a run).
A pattern RE2 rejects (back-references, look-arounds) runs on the `regex` module within time budgets:
a timed-out search counts as no match, and a pattern past its budget is disabled for the rest of the
run (it matches nothing: a drop rule drops nothing, a keep rule keeps nothing) with one notice.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import regex

from aggregator.errors import ConfigError
from aggregator.model import Article, FilterSpec
from aggregator.patterns import compile_pattern
from aggregator.text import collapse_whitespace, parse_duration

Action = Literal["keep", "drop", "max_age", "min_length"]
FIELDS = ("title", "content", "author", "tags", "link", "language")
NO_KEEP_MATCH = "no keep-rule matched"

_TAG = re.compile(r"<[^>]*>")  # linear: a cheap strip, the content is already sanitized HTML
_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")

Matcher = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule. `pattern` is the regex (keep/drop) or the raw value (max_age/min_length)."""

    action: Action
    field: str  # one of FIELDS for keep/drop; "" for max_age/min_length
    pattern: str
    label: str  # what the run summary counts and --dry-run prints, with the rule's origin
    limit: float = 0.0  # max_age in seconds, min_length in characters
    origin: str = ""  # where the config says it: "feeds.yaml:42" (or the list and index when not from a file)


# --- validation ----------------------------------------------------------------------------------


def compile_filters(rules: Sequence[Mapping[str, object] | FilterSpec], where: str) -> tuple[Rule, ...]:
    """Validate a `filters` list; `where` names the list (e.g. "config/feeds.yaml: sources[3].filters").

    A rule given as a FilterSpec is known by its origin ("feeds.yaml:42"), a plain mapping by `where[i]`.
    Raises one ConfigError listing every problem, each message starting with that name.
    """
    compiled: list[Rule] = []
    problems: list[str] = []
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
        raise ConfigError(f"{where}: expected a list of rules, got {type(rules).__name__}")
    for index, raw in enumerate(rules):
        here = f"{where}[{index}]"
        if isinstance(raw, FilterSpec):
            here, raw = raw.origin or here, raw.body
        try:
            compiled.extend(replace(rule, origin=here) for rule in _compile_rule(raw, here))
        except ValueError as exc:
            problems.extend(f"{here}{line}" for line in str(exc).split("\n"))
    if problems:
        raise ConfigError(problems)
    return tuple(compiled)


def _compile_rule(raw: object, here: str) -> list[Rule]:
    """Raises ValueError whose lines are suffixes of `here` (": ..." or ".keep.title: ...")."""
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ValueError(
            ": expected one of {keep: {FIELD: REGEX}}, {drop: {FIELD: REGEX}}, {max_age: DURATION},"
            f" {{min_length: N}}, got {raw!r}"
        )
    ((action, value),) = raw.items()
    if action in ("keep", "drop"):
        return _compile_match(action, value, here)
    if action == "max_age":
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ValueError(f".max_age: {exc}") from None
        if seconds <= 0:
            raise ValueError(f".max_age: expected a positive duration, got {value!r}")
        return [Rule("max_age", "", str(value), f"max_age {value} ({here})", seconds)]
    if action == "min_length":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f".min_length: expected a non-negative whole number of characters, got {value!r}"
            )
        return [Rule("min_length", "", str(value), f"min_length {value} ({here})", float(value))]
    raise ValueError(f": unknown rule {action!r}; expected keep, drop, max_age or min_length")


def _compile_match(action: Literal["keep", "drop"], value: object, here: str) -> list[Rule]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(
            f".{action}: expected a mapping {{FIELD: REGEX}} with FIELD one of {', '.join(FIELDS)}"
        )
    rules: list[Rule] = []
    problems: list[str] = []
    for field_name, pattern in value.items():
        at = f".{action}.{field_name}"
        if field_name not in FIELDS:
            problems.append(f"{at}: unknown field {field_name!r}; expected one of {', '.join(FIELDS)}")
            continue
        if isinstance(pattern, bool) or not isinstance(pattern, (str, int, float)) or str(pattern) == "":
            problems.append(f"{at}: expected a non-empty keyword or regular expression, got {pattern!r}")
            continue
        text = str(pattern)
        try:
            _matcher(text)
        except regex.error as exc:
            problems.append(f"{at}: invalid regular expression {text!r}: {_error_text(exc)}")
            continue
        rules.append(Rule(action, str(field_name), text, f"{action} {field_name} /{text}/ ({here})"))
    if problems:
        raise ValueError("\n".join(problems))
    return rules


def _error_text(exc: Exception) -> str:
    message = exc.args[0] if exc.args else exc
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)


def _matcher(pattern: str) -> Matcher:
    """A case-insensitive search function (aggregator.patterns: RE2, else `regex` within budgets).

    Raises regex.error when neither engine accepts the pattern (the `regex` message is the clearer one).
    """
    return compile_pattern(pattern, ignore_case=True).search


# --- decision ------------------------------------------------------------------------------------


def describe_rule(rule: Rule) -> str:
    """How a rule is named wherever its decisions are told: the run summary, --explain, and the store's
    record of what it dropped (`aggregator why`). The one place that says it, so a better name (the
    config file and line) changes every one of them."""
    return rule.label


def apply_filters(article: Article, rules: Sequence[Rule], now: datetime) -> str | None:
    """None to keep the article, else describe_rule of the rule that dropped it, or NO_KEEP_MATCH (see the
    module docstring)."""
    view = _ArticleView(article)
    for rule in rules:
        if rule.action == "drop" and _matches(rule, view) is True:
            return describe_rule(rule)
        if rule.action == "max_age" and _is_too_old(article, now, rule.limit):
            return describe_rule(rule)
        if rule.action == "min_length" and len(view.content) < rule.limit:
            return describe_rule(rule)
    keep_rules = [rule for rule in rules if rule.action == "keep"]
    if keep_rules and not any(_matches(rule, view) is not False for rule in keep_rules):
        return NO_KEEP_MATCH
    return None


def _matches(rule: Rule, view: _ArticleView) -> bool | None:
    """True/False; None when the field is unknown (an article of unknown language)."""
    search = _matcher(rule.pattern)
    if rule.field == "tags":
        return any(search(tag) for tag in view.article.tags)
    if rule.field == "language":
        language = view.language
        if not language:
            return None
        primary = re.split(r"[-_]", language)[0]  # "en_US" happens in the wild
        full = _matcher(f"^(?:{rule.pattern})$")
        return full(language) or full(primary)
    return search(view.field(rule.field))


def _is_too_old(article: Article, now: datetime, max_age_s: float) -> bool:
    date = article.published or article.updated
    # No date: the store gives it the first-seen time, so it is new by definition.
    return date is not None and now - date > timedelta(seconds=max_age_s)


class _ArticleView:
    """Field texts of one article, computed once and only when a rule asks for them."""

    __slots__ = ("_content", "_language", "article")

    def __init__(self, article: Article) -> None:
        self.article = article
        self._content: str | None = None
        self._language: str | None = None

    def field(self, name: str) -> str:
        if name == "title":
            return self.article.title
        if name == "link":
            return self.article.link
        if name == "author":
            return ", ".join(self.article.authors)
        return self.content

    @property
    def content(self) -> str:
        if self._content is None:
            self._content = html_to_text(self.article.content_html) or collapse_whitespace(
                self.article.summary
            )
        return self._content

    @property
    def language(self) -> str:
        if self._language is None:
            stated = self.article.language or self.article.feed.language
            self._language = stated.strip().lower() or guess_cjk_language(
                self.article.title + " " + self.content
            )
        return self._language


def html_to_text(fragment: str) -> str:
    """Cheap text of an HTML fragment for matching: tags become spaces, entities are decoded."""
    if not fragment:
        return ""
    return collapse_whitespace(html.unescape(_TAG.sub(" ", fragment)))


def guess_cjk_language(text: str) -> str:
    """'ja', 'ko' or 'zh' when CJK script dominates the letters; '' when unsure (no guess for Latin text)."""
    han, kana, hangul = len(_HAN.findall(text)), len(_KANA.findall(text)), len(_HANGUL.findall(text))
    letters = sum(ch.isalpha() for ch in text)
    if letters == 0 or (han + kana + hangul) * 2 < letters:
        return ""
    if kana:
        return "ja"
    if hangul > han:
        return "ko"
    return "zh"
