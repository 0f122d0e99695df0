"""Filters: the config contract, the keep/drop order, regex safety, on articles from real corpus feeds."""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator import filters, patterns
from aggregator.errors import ConfigError
from aggregator.filters import NO_KEEP_MATCH, Rule, apply_filters, compile_filters, guess_cjk_language
from aggregator.model import Article, FeedMeta

from conftest import CORPUS

WHERE = "config/feeds.yaml: sources[3].filters"
NOW = datetime(2024, 3, 12, tzinfo=UTC)


def load_articles(path: Path) -> list[Article]:
    """Articles built straight from feedparser's view of a real feed (parse.py belongs to another stage)."""
    parsed = feedparser.parse(path.read_bytes())
    meta = FeedMeta(title=parsed.feed.get("title", ""), language=parsed.feed.get("language", "") or "")
    articles = []
    for index, entry in enumerate(parsed.entries):
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        content = entry.get("content", [{}])[0].get("value", "") or entry.get("summary", "")
        articles.append(
            Article(
                id=f"urn:test:{path.name}:{index}",
                source_url=str(path),
                source_name=meta.title,
                title=entry.get("title", ""),
                link=entry.get("link", ""),
                authors=tuple(a.get("name", "") for a in entry.get("authors", []) if a.get("name")),
                published=datetime.fromtimestamp(calendar.timegm(stamp), UTC) if stamp else None,
                content_html=content,
                tags=tuple(t.get("term", "") for t in entry.get("tags", [])),
                feed=meta,
            )
        )
    return articles


@pytest.fixture(scope="module")
def blog() -> list[Article]:
    # dustri.org (English blog): tags sysadmin/security/web, author jvoisin, full HTML content.
    return load_articles(CORPUS / "feeds/miniflux/large_rss.xml")


@pytest.fixture(scope="module")
def ithome() -> list[Article]:
    # IT 之家 via RSSHub: Chinese titles, no language element.
    return load_articles(CORPUS / "rsshub/ithome-it.xml")


def kept(articles: list[Article], rules: tuple[Rule, ...], now: datetime = NOW) -> list[str]:
    return [a.title for a in articles if apply_filters(a, rules, now) is None]


# --- the contract ----------------------------------------------------------------------------------


def test_compile_accepts_every_rule_kind() -> None:
    rules = compile_filters(
        [
            {"drop": {"title": "sponsored"}},
            {"keep": {"tags": "security|web", "author": "jvoisin"}},
            {"max_age": "7d"},
            {"min_length": 200},
            {"keep": {"language": "zh|en"}},
        ],
        WHERE,
    )
    assert [(r.action, r.field) for r in rules] == [
        ("drop", "title"),
        ("keep", "tags"),
        ("keep", "author"),
        ("max_age", ""),
        ("min_length", ""),
        ("keep", "language"),
    ]
    assert rules[3].limit == 7 * 86400
    assert rules[0].label == f"drop title /sponsored/ ({WHERE}[0])"


def test_compile_lists_every_problem_with_its_position() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_filters(
            [
                {"drop": {"title": "ok"}},
                {"drop": {"body": "x"}},
                {"keep": {"title": "(unclosed"}},
                {"max_age": "soon"},
                {"min_length": -3},
                {"frobnicate": 1},
                "just a string",
                {"keep": {"link": ""}},
            ],
            WHERE,
        )
    problems = caught.value.problems
    assert len(problems) == 7
    assert all(p.startswith(WHERE + "[") for p in problems)
    assert problems[0].startswith(f"{WHERE}[1].drop.body: unknown field 'body'")
    assert problems[1].startswith(f"{WHERE}[2].keep.title: invalid regular expression '(unclosed'")
    assert "missing )" in problems[1]
    assert problems[2].startswith(f"{WHERE}[3].max_age:")
    assert problems[3].startswith(f"{WHERE}[4].min_length:")
    assert "unknown rule 'frobnicate'" in problems[4]
    assert problems[5].startswith(f"{WHERE}[6]: expected one of")
    assert problems[6].startswith(f"{WHERE}[7].keep.link: expected a non-empty")


def test_compile_rejects_a_mapping_instead_of_a_list() -> None:
    with pytest.raises(ConfigError, match=r"sources\[3\]\.filters: expected a list"):
        compile_filters({"drop": {"title": "x"}}, WHERE)  # type: ignore[arg-type]


# --- the decision ----------------------------------------------------------------------------------


def test_no_rules_keep_everything(blog: list[Article]) -> None:
    assert len(kept(blog, ())) == len(blog) == 25


def test_drop_title_keyword_is_case_insensitive(blog: list[Article]) -> None:
    rules = compile_filters([{"drop": {"title": "VIM"}}], WHERE)
    titles = kept(blog, rules)
    assert "Using vale with vim" not in titles
    assert len(titles) == len(blog) - sum("vim" in a.title.lower() for a in blog)
    dropped = next(a for a in blog if a.title == "Using vale with vim")
    assert apply_filters(dropped, rules, NOW) == f"drop title /VIM/ ({WHERE}[0])"


def test_keep_tags_requires_a_match(blog: list[Article]) -> None:
    rules = compile_filters([{"keep": {"tags": "^security$"}}], WHERE)
    titles = kept(blog, rules)
    assert titles and set(titles) == {a.title for a in blog if "security" in a.tags}
    other = next(a for a in blog if "security" not in a.tags)
    assert apply_filters(other, rules, NOW) == NO_KEEP_MATCH


def test_drop_wins_over_keep(blog: list[Article]) -> None:
    rules = compile_filters([{"keep": {"tags": "security"}}, {"drop": {"title": "carrot"}}], WHERE)
    carrot = next(a for a in blog if a.title == "Carrot disclosure")
    assert "security" in carrot.tags
    assert apply_filters(carrot, rules, NOW) == f"drop title /carrot/ ({WHERE}[1])"


def test_any_keep_rule_is_enough(blog: list[Article]) -> None:
    rules = compile_filters([{"keep": {"tags": "^web$"}}, {"keep": {"link": "carrot"}}], WHERE)
    titles = kept(blog, rules)
    assert "Carrot disclosure" in titles
    assert "Youtube video embedding harm reduction" in titles
    assert "Using vale with vim" not in titles


def test_content_author_and_link_fields(blog: list[Article]) -> None:
    vale = next(a for a in blog if a.title == "Using vale with vim")
    # Text across inline tags matches ("an <em>editorial style</em> linter"); markup and hrefs do not.
    assert apply_filters(
        vale, compile_filters([{"drop": {"content": "an editorial style linter"}}], WHERE), NOW
    )
    assert apply_filters(vale, compile_filters([{"drop": {"content": "<em>"}}], WHERE), NOW) is None
    assert (
        apply_filters(vale, compile_filters([{"drop": {"content": "lwn.net/Articles"}}], WHERE), NOW) is None
    )
    assert apply_filters(vale, compile_filters([{"drop": {"author": "^jvoisin$"}}], WHERE), NOW)
    assert apply_filters(vale, compile_filters([{"drop": {"link": r"dustri\.org/b/"}}], WHERE), NOW)
    assert apply_filters(vale, compile_filters([{"drop": {"link": r"example\.com"}}], WHERE), NOW) is None


def test_max_age_uses_now_and_the_article_date(blog: list[Article]) -> None:
    rules = compile_filters([{"max_age": "14d"}], WHERE)
    titles = kept(blog, rules)
    expected = {a.title for a in blog if a.published and NOW - a.published <= timedelta(days=14)}
    assert titles and set(titles) == expected and len(titles) < len(blog)
    # A year later everything is too old; an article without any date is new by definition.
    assert kept(blog, rules, NOW + timedelta(days=365)) == []
    undated = Article(id="urn:x", source_url="x", source_name="x", title="no date")
    assert apply_filters(undated, rules, NOW) is None


def test_min_length_counts_text_not_markup(blog: list[Article], ithome: list[Article]) -> None:
    short = compile_filters([{"min_length": 50}], WHERE)
    assert len(kept(blog, short)) == len(blog)
    huge = compile_filters([{"min_length": 100_000}], WHERE)
    assert kept(blog, huge) == []
    # Chinese text: characters, not bytes or words.
    article = ithome[0]
    text = filters.html_to_text(article.content_html)
    at_length = compile_filters([{"min_length": len(text)}], WHERE)
    one_more = compile_filters([{"min_length": len(text) + 1}], WHERE)
    assert apply_filters(article, at_length, NOW) is None
    assert apply_filters(article, one_more, NOW) == f"min_length {len(text) + 1} ({WHERE}[0])"


def test_chinese_keyword_on_title(ithome: list[Article]) -> None:
    rules = compile_filters([{"drop": {"title": "宕机"}}], WHERE)
    titles = kept(ithome, rules)
    assert all("宕机" not in t for t in titles)
    assert len(titles) == len(ithome) - sum("宕机" in a.title for a in ithome) < len(ithome)


def test_language_rules(ithome: list[Article]) -> None:
    techcrunch = load_articles(CORPUS / "feeds/feedjira/TechCrunch.xml")  # language "en"
    cre = load_articles(CORPUS / "feeds/feedjira/CRE.xml")  # "de-DE"
    meituan = load_articles(CORPUS / "feeds/rodel-reader/meituan.xml")  # "zh-cn"
    assert (techcrunch[0].feed.language, cre[0].feed.language, meituan[0].feed.language) == (
        "en",
        "de-DE",
        "zh-cn",
    )
    zh_or_en = compile_filters([{"keep": {"language": "zh|en"}}], WHERE)
    assert len(kept(techcrunch, zh_or_en)) == len(techcrunch) > 0
    assert len(kept(meituan, zh_or_en)) == len(meituan) > 0
    assert kept(cre, zh_or_en) == []
    assert apply_filters(cre[0], zh_or_en, NOW) == NO_KEEP_MATCH
    # The whole tag or its primary subtag: "de-DE" matches "de" and "de-de", not "d" or "e".
    assert kept(cre, compile_filters([{"drop": {"language": "de-de"}}], WHERE)) == []
    assert len(kept(cre, compile_filters([{"drop": {"language": "d"}}], WHERE))) == len(cre)
    # ithome states no language: the CJK guess says zh.
    assert ithome[0].language == "" and ithome[0].feed.language == ""
    zh_only = compile_filters([{"keep": {"language": "zh"}}], WHERE)
    assert len(kept(ithome, zh_only)) == len(ithome)
    assert kept(ithome, compile_filters([{"drop": {"language": "zh"}}], WHERE)) == []


def test_unknown_language_passes_language_keep_rules(blog: list[Article]) -> None:
    from dataclasses import replace

    german = replace(blog[0], feed=FeedMeta(), title="Ein Titel", content_html="<p>Ein deutscher Text</p>")
    rules = compile_filters([{"keep": {"language": "zh"}}], WHERE)
    assert apply_filters(german, rules, NOW) is None
    assert apply_filters(german, compile_filters([{"drop": {"language": "de"}}], WHERE), NOW) is None


def test_guess_cjk_language() -> None:
    assert guess_cjk_language("七彩虹推出 GTX 1630 显卡") == "zh"
    assert guess_cjk_language("テスト フィード") == "ja"
    assert guess_cjk_language("테스트 피드") == "ko"
    assert guess_cjk_language("Using vale with vim") == ""


# --- regex safety ----------------------------------------------------------------------------------


def test_catastrophic_pattern_runs_in_linear_time(blog: list[Article]) -> None:
    # (a|aa)+$ backtracks exponentially in `re` and `regex`; on RE2 this returns at once.
    hostile = blog[0].__class__(
        id="urn:x", source_url="x", source_name="x", title="a" * 5000 + "!", content_html="a" * 100_000 + "!"
    )
    rules = compile_filters([{"drop": {"title": "(a|aa)+$"}}, {"drop": {"content": "(a+)+$"}}], WHERE)
    assert apply_filters(hostile, rules, NOW) is None
    assert apply_filters(blog[0], rules, NOW) is None


def test_pattern_re2_cannot_run_falls_back_with_a_timeout(blog: list[Article]) -> None:
    # Look-arounds and back-references are outside RE2: they run on `regex` with a per-search timeout.
    patterns.start_run("fallback", patterns.Budget(search_s=0.05, pattern_s=5, run_s=5), ticking(0.0))
    backref = compile_filters([{"drop": {"title": r"\b(\w)\1"}}], WHERE)  # a doubled letter at a word start
    assert apply_filters(blog[0], backref, NOW) is None
    assert apply_filters(
        blog[0].__class__(id="u", source_url="x", source_name="x", title="llama"), backref, NOW
    )
    hostile_text = Article(id="urn:x", source_url="x", source_name="x", title="a" * 40)
    rules = compile_filters([{"drop": {"title": "(a|aa)+(?=b)"}}], WHERE)
    assert apply_filters(hostile_text, rules, NOW) is None  # timed out: counted as no match
    assert patterns.ledger().disabled == set()


def ticking(step: float = 0.25) -> Callable[[], float]:
    """A clock that moves `step` seconds each time it is read: every search is charged exactly `step`."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_a_hostile_fallback_pattern_is_disabled_for_the_run_with_one_notice() -> None:
    """Issue 20: 400 items x one look-around rule took 176 s. Its searches together get a budget; past
    it the rule matches nothing for the rest of the run, and says so once."""
    budget = patterns.Budget(search_s=0.01, pattern_s=1.0, run_s=5.0)
    patterns.start_run("hostile", budget, ticking())
    hostile = compile_filters([{"drop": {"title": "(a|aa)+(?=b)"}}], WHERE)
    matching = Article(id="urn:ab", source_url="x", source_name="x", title="aab")
    assert apply_filters(matching, hostile, NOW) is not None  # at first it works
    articles = [Article(id=f"urn:{i}", source_url="x", source_name="x", title="a" * 40) for i in range(400)]
    assert all(apply_filters(a, hostile, NOW) is None for a in articles)  # each search times out
    assert apply_filters(matching, hostile, NOW) is None  # disabled: it matches nothing now
    book = patterns.ledger()
    assert book.disabled == {"(a|aa)+(?=b)"} and book.spent["(a|aa)+(?=b)"] == 1.0  # 4 searches, then none
    notices = patterns.take_notices()
    assert len(notices) == 1 and "'(a|aa)+(?=b)' disabled for the rest of this run" in notices[0]
    assert "its own time budget" in notices[0] and patterns.take_notices() == []
    # another fallback pattern keeps its own budget
    honest = compile_filters([{"drop": {"title": "(?<=x)y"}}], WHERE)
    assert apply_filters(Article(id="urn:xy", source_url="x", source_name="x", title="xy"), honest, NOW)
    # the next run starts with fresh budgets
    patterns.start_run("next run", budget, ticking())
    assert apply_filters(matching, hostile, NOW) is not None


def test_the_run_budget_bounds_every_fallback_pattern_together() -> None:
    patterns.start_run("run budget", patterns.Budget(search_s=0.01, pattern_s=10.0, run_s=1.0), ticking())
    hostile = Article(id="urn:x", source_url="x", source_name="x", title="a" * 40)
    for i in range(20):
        rules = compile_filters([{"drop": {"title": f"(a|aa)+(?=b{i})"}}], WHERE)
        assert all(apply_filters(hostile, rules, NOW) is None for _ in range(5))
    book = patterns.ledger()
    assert book.total == 1.0 and len(book.disabled) == 20  # 4 searches in all, then every pattern refused
    notices = patterns.take_notices()
    assert len(notices) == 20 and all("this run's time budget" in n for n in notices)


def test_rules_concatenate_across_levels(blog: list[Article]) -> None:
    global_rules = compile_filters([{"drop": {"tags": "sysadmin"}}], "config.yaml: filters")
    category_rules = compile_filters([{"keep": {"author": "jvoisin"}}], "config.yaml: categories.sec.filters")
    source_rules = compile_filters([{"max_age": "30d"}], "config.yaml: sources[0].filters")
    rules = global_rules + category_rules + source_rules
    labels = {apply_filters(a, rules, NOW) for a in blog}
    assert "drop tags /sysadmin/ (config.yaml: filters[0])" in labels
    assert "max_age 30d (config.yaml: sources[0].filters[0])" in labels
    assert None in labels
