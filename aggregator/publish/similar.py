"""The same story once (issue 22): a feed's entries from different sources that tell one story become one
entry that lists the others as related links. Pure: articles in, articles out; no I/O.

Two entries are the same story when all of these hold:

- they come from different sources (a source's own re-posts are the store's business: store/dedup.py);
- their titles are equal once normalized (text.title_key: NFKC, so full-width and half-width forms are
  one; case-folded; punctuation of either width, symbols and spaces removed);
- that title names a story, not a series: a title that is only generic words (digest, roundup, update,
  newsletter, weekly, links, 早报, 晚报, 精选, 周报, 日报, ...), dates, weekdays, numbers and issue numbers,
  or what is left of it is very short, never merges, whatever the lead text says (two sources' "Daily
  digest" are two digests);
- they were published within WINDOW_S (48 hours) of each other;
- their lead texts match: the start of each summary, normalized like the titles (the title left out when
  the summary begins with it), cut to the shorter of the two and to LEAD_CHARS, has character trigrams
  whose Jaccard similarity is at least LEAD_MIN_JACCARD. A lead shorter than LEAD_MIN_CHARS is not
  evidence enough: no merge. A false merge hides a story; a missed one only shows it twice.

Which entry is kept: the copy the store saw first (Article.first_seen), then the earliest published, then
the source URL, then the id: the order store/windows.py keeps one copy of a shared link by. A copy that
arrives later never displaces the one already published (a reader would get the story again under a new
id), and the same entries always give the same groups. Entries are taken in that order; each joins the
first kept entry it matches, else it is kept itself. Only kept entries are compared with, so a chain
A~B~C where A and C differ does not pull C into A's group.

    similar_groups(articles) -> [StoryGroup(kept, merged)]   what was merged into what (`aggregator why`)
    merge_similar(articles)  -> articles                     the merged ones left out, the kept ones with
                                                             their (link, source name) in Article.related
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property, lru_cache

from aggregator.model import Article
from aggregator.publish.formatting import published_of, source_name
from aggregator.text import LEAD_SOURCE_CHARS, title_key

WINDOW_S = 48 * 3600
LEAD_CHARS = 200  # normalized characters of lead text compared
LEAD_MIN_CHARS = 30
LEAD_MIN_JACCARD = 0.5
TITLE_MIN_WEIGHT = 12  # what is left of a title once generic words go; a wide (CJK) character counts 2

_WORD_GAPS = re.compile(r"[\W_]+")
_NUMBERS = r"\d+(?:st|nd|rd|th)?"
_LATIN_GENERIC = (
    r"weekly|daily|monthly|yearly|annual|nightly|digests?|round|roundups?|up|updates?|newsletters?|links?|"
    r"linkdump|news|briefings?|briefs?|recaps?|wrap|editions?|issues?|vol|volume|no|number|episodes?|ep|part|"
    r"week|weeks|weekend|day|days|today|tonight|yesterday|tomorrow|morning|evening|night|this|last|next|the|"
    r"a|an|of|for|in|on|at|and|to|from|s|top|highlights?|headlines?|what|new|reading|reads?|notes?|"
    r"changelog|picks?|open|thread|mailbag|summary|review|overview|special|"
    r"jan|january|feb|february|mar|march|apr|april|may|jun|june|jul|july|aug|august|sep|sept|september|"
    r"oct|october|nov|november|dec|december|mon|monday|tue|tues|tuesday|wed|wednesday|thu|thur|thurs|"
    r"thursday|fri|friday|sat|saturday|sun|sunday|am|pm|utc|gmt"
)
_CJK_GENERIC = (
    r"早报|晚报|午报|晨报|夜报|日报|周报|週報|月报|年报|周刊|週刊|日刊|月刊|精选|每日|每周|每週|每月|今日|今天|"
    r"昨日|本周|本週|一周|一週|简报|快讯|快報|要闻|汇总|速递|速览|合集|回顾|盘点|导读|新闻|资讯|早餐|直播|"
    r"更新|消息|热点|头条|链接|推荐|ニュース|まとめ|"
    r"第[\d一二三四五六七八九十百千零〇]+[期回集章话話篇号號]|[\d一二三四五六七八九十百千零〇]+[年月日号號期]|"
    r"(?:周|週|星期|礼拜)[一二三四五六日天]"
)
_GENERIC = re.compile(rf"\b(?:{_LATIN_GENERIC}|{_NUMBERS})\b|{_CJK_GENERIC}")


# An article is in its category's feed and in all.atom, and a publish groups headlines before it renders
# the changed feeds from whole articles: the same titles recur within a publish, rarely across a thousand.
_title_key = lru_cache(maxsize=4096)(title_key)


@dataclass(frozen=True, slots=True)
class StoryGroup:
    """One story told by several sources: the entry kept and the entries merged into it, in the order
    they were taken (see the module docstring)."""

    kept: Article
    merged: tuple[Article, ...]


def similar_groups(articles: Iterable[Article]) -> list[StoryGroup]:
    """The stories told more than once among `articles` (one feed's entries), each as the entry kept and
    the entries merged into it; in the order the kept entries were taken. Stories told once: not listed."""
    buckets: dict[str, list[Article]] = defaultdict(list)
    for article in articles:
        key = _title_key(article.title)
        if key:
            buckets[key].append(article)
    groups: list[tuple[_Entry, list[_Entry]]] = []
    for key, same in buckets.items():
        if len(same) > 1 and len({a.source_url for a in same}) > 1 and not any(is_generic_title(a.title) for a in same):
            groups.extend((kept, merged) for kept, merged in _group([_Entry(a, key) for a in same]) if merged)
    groups.sort(key=lambda group: group[0].rank)
    return [StoryGroup(kept.article, tuple(e.article for e in merged)) for kept, merged in groups]


def merge_similar(articles: Sequence[Article]) -> list[Article]:
    """`articles` with every merged entry left out and every kept one carrying the merged entries'
    (link, source name) in `related`; the order is kept."""
    groups = similar_groups(articles)
    if not groups:
        return list(articles)
    merged = {id(article) for group in groups for article in group.merged}
    kept = {id(group.kept): replace(group.kept, related=group.kept.related + tuple(
        (article.link, source_name(article)) for article in group.merged)) for group in groups}
    return [kept.get(id(article), article) for article in articles if id(article) not in merged]


def is_generic_title(title: str) -> bool:
    """True for a title that names a series rather than a story: once its generic words, dates and
    numbers are gone, what is left weighs less than TITLE_MIN_WEIGHT (wide characters count 2)."""
    spaced = " ".join(_WORD_GAPS.sub(" ", unicodedata.normalize("NFKC", title).casefold()).split())
    rest = title_key(_GENERIC.sub(" ", spaced))
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in rest) < TITLE_MIN_WEIGHT


def leads_match(a: str, b: str) -> bool:
    """Two normalized leads tell the same story: over the shorter one's length (at least LEAD_MIN_CHARS),
    their character trigrams overlap by LEAD_MIN_JACCARD or more."""
    length = min(len(a), len(b))
    if length < LEAD_MIN_CHARS:
        return False
    if a[:length] == b[:length]:  # syndicated copies mostly are: no trigrams needed
        return True
    grams_a, grams_b = _trigrams(a[:length]), _trigrams(b[:length])
    return len(grams_a & grams_b) >= LEAD_MIN_JACCARD * len(grams_a | grams_b)


def lead_key(article: Article, title: str) -> str:
    """The start of the summary as compared: normalized like titles, without the title it may open with."""
    lead = title_key(article.summary[:LEAD_SOURCE_CHARS])
    if title and lead.startswith(title):
        lead = lead[len(title):]
    return lead[:LEAD_CHARS]


def _trigrams(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(len(text) - 2)}


@dataclass(frozen=True)
class _Entry:
    article: Article
    title: str  # title_key of the article's title

    @cached_property
    def when(self) -> datetime:
        return published_of(self.article)

    @cached_property
    def rank(self) -> tuple[datetime, datetime, str, str]:
        """Which copy of a story is kept: the first seen, then the earliest published, source URL, id."""
        article = self.article
        return (article.first_seen or self.when, self.when, article.source_url, article.id)

    @cached_property
    def lead(self) -> str:
        return lead_key(self.article, self.title)


def _group(entries: list[_Entry]) -> list[tuple[_Entry, list[_Entry]]]:
    """Entries with one title, taken in rank order: each joins the first kept entry it matches."""
    groups: list[tuple[_Entry, list[_Entry]]] = []
    for entry in sorted(entries, key=lambda e: e.rank):
        for kept, merged in groups:
            if _same_story(kept, entry):
                merged.append(entry)
                break
        else:
            groups.append((entry, []))
    return groups


def _same_story(kept: _Entry, entry: _Entry) -> bool:
    return (
        kept.article.source_url != entry.article.source_url
        and abs((kept.when - entry.when).total_seconds()) <= WINDOW_S
        and leads_match(kept.lead, entry.lead)
    )
