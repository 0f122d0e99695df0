"""Where aggregator's CPU goes on farm feeds: per-stage cost per item, in one process, no network.

Stages: lxml parse (the lower bound), feedparser (defaults / sanitizing off), aggregator's
parse_feed, clean_article (restructure + nh3), nh3.clean alone (the reference for "cleaning
<= 3x nh3"), store upsert (SQLite, batch per feed) and publish (render every category).
Runs with the aggregator's venv (it imports aggregator):

    /work/venv/bin/python bench/profile_stages.py --farm-dir /tmp/bench-farm --feeds 40
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import nh3
from lxml import etree

from aggregator.clean import clean_article
from aggregator.config import load_config
from aggregator.parse import parse_feed
from aggregator.pipeline import publish
from aggregator.store import Store


def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--farm-dir", type=Path, default=Path("/tmp/bench-farm"))
    ap.add_argument("--feeds", type=int, default=40, help="the first N feeds of the farm")
    args = ap.parse_args()
    meta = json.loads((args.farm_dir / "farm.json").read_text())
    hosts, base = meta["hosts"], meta["base_port"]
    feeds = []
    for i in range(min(args.feeds, meta["n"])):
        url = f"http://127.0.0.1:{base + i % hosts}/feeds/{i}.xml"
        feeds.append((url, (args.farm_dir / "www" / str(base + i % hosts) / "feeds" / f"{i}.xml").read_bytes()))
    headers = {"content-type": "application/xml"}
    now = datetime.now(UTC)
    t: dict[str, float] = {}
    t["lxml"], _ = cpu(lambda: [etree.fromstring(b) for _, b in feeds])
    t["feedparser_defaults"], _ = cpu(lambda: [feedparser.parse(b) for _, b in feeds])
    t["feedparser_no_sanitize"], _ = cpu(lambda: [feedparser.parse(b, sanitize_html=False, resolve_relative_uris=False)
                                                  for _, b in feeds])
    t["parse_feed"], parsed = cpu(lambda: [parse_feed(b, headers, u, f"feed-{i}", u) for i, (u, b) in enumerate(feeds)])
    articles = [a for p in parsed for a in p.articles]
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "c.yaml"
        cfg_path.write_text("output: {dir: out}\nstate: s.db\ncategories:\n  c0: {title: c}\nsources:\n"
                            + "".join(f"  - {{url: '{u}', category: c0}}\n" for u, _ in feeds))
        config = load_config(cfg_path)
        t["clean_article"], cleaned = cpu(lambda: [clean_article(replace(a, source_name="x"), config.clean, ())
                                                   for a in articles])
        t["nh3_alone"], _ = cpu(lambda: [nh3.clean(a.content_html) for a in articles])
        per_feed, k = [], 0
        for (url, _), p in zip(feeds, parsed):
            per_feed.append((url, cleaned[k:k + len(p.articles)]))
            k += len(p.articles)
        with Store.open(config.state) as store:
            t["store_upsert"], _ = cpu(lambda: [store.upsert_articles(u, arts, now) for u, arts in per_feed])
            t["publish"], _ = cpu(lambda: publish(config, store, now))
    n = len(articles)
    print(json.dumps({"feeds": len(feeds), "items": n, "bytes": sum(len(b) for _, b in feeds)}))
    print("| stage | CPU s | ms per item | x nh3 |")
    print("|---|---:|---:|---:|")
    for k, v in t.items():
        print(f"| {k} | {v:.2f} | {v / n * 1000:.3f} | {v / t['nh3_alone']:.1f} |")


if __name__ == "__main__":
    main()
