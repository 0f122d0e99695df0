"""Regenerate the golden pairs: python tests/data/clean/make_golden.py (then REVIEW every diff by eye).

Each case is one real corpus item: NAME.input.json (the Article fields as parsed) beside
NAME.expected.json (what clean_article must return for them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[2]), str(HERE.parents[1])]

from test_clean_support import CORPUS, article_to_json, articles_of

from aggregator.clean import clean_article
from aggregator.model import CleanConfig

# (case name, corpus file, item index): one item per publisher, chosen for the junk each shows
CASES = [
    ("sina-finance", "rsshub/sina-finance.xml", 2),
    ("36kr", "rsshub/36kr-news.xml", 4),
    ("ithome", "rsshub/ithome-it.xml", 1),
    ("sspai", "rsshub/sspai-matrix.xml", 0),
    ("zhihu-daily", "rsshub/zhihu-daily.xml", 0),
    ("zhihu-hotlist", "rsshub/zhihu-hotlist.xml", 0),
    ("3dm", "rsshub/3dm-news.xml", 1),
    ("mydrivers", "rsshub/mydrivers-new.xml", 0),
    ("stcn", "rsshub/stcn-kuaixun.xml", 0),
    ("juejin", "rsshub/juejin-frontend.xml", 0),
    ("dribbble", "rsshub/dribbble-popular.xml", 0),
    ("mastodon", "rsshub/mastodon-pawoo.xml", 0),
    ("gamersky", "rsshub/gamersky-today.xml", 0),
    ("techcrunch-feedflare", "feeds/feedjira/TechCrunch.xml", 0),
    ("paul-dix-feedflare", "feeds/feedjira/PaulDixExplainsNothing.xml", 0),
    ("medium-stat-pixel", "feeds/rss-parser/content-encoded.rss", 0),
    ("typepad", "feeds/feedjira/TypePadNews.xml", 0),
    ("natasha-wordpress", "feeds/rsparser/natasha.xml", 0),
    ("russcox-atom", "feeds/rodel-reader/russcox.atom", 0),
]


def main() -> None:
    for name, rel, index in CASES:
        path = CORPUS / rel
        if not path.exists():
            path = next(CORPUS.rglob(Path(rel).name))
        article = articles_of(path)[index]
        cleaned = clean_article(article, CleanConfig())
        source = {"corpus_file": str(path.relative_to(CORPUS)), "index": index, **article_to_json(article)}
        HERE.joinpath(f"{name}.input.json").write_text(json.dumps(source, ensure_ascii=False, indent=1) + "\n", "utf-8")
        expected = {
            "title": cleaned.title, "link": cleaned.link, "summary": cleaned.summary, "image": cleaned.image,
            "content_html": cleaned.content_html,
        }
        HERE.joinpath(f"{name}.expected.json").write_text(
            json.dumps(expected, ensure_ascii=False, indent=1) + "\n", "utf-8"
        )
        print(name, len(article.content_html), "->", len(cleaned.content_html))


if __name__ == "__main__":
    main()
