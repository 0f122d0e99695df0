"""The naive peer: fetch each source in turn with feedparser (its defaults), then write one Atom feed
per category with feedgen. Keeps validators, seen ids and the newest 50 entries per category in a JSON file.

    python bench/naive.py --sources sources.json --state /tmp/naive.json --out /tmp/naive-feeds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import feedparser
from feedgen.feed import FeedGenerator

MAX_ENTRIES = 50


def entry_record(entry: Any) -> dict[str, str]:
    content = entry.get("content", [{}])[0].get("value", "") or entry.get("summary", "")
    updated = entry.get("updated_parsed") or entry.get("published_parsed")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", updated) if updated else "1970-01-01T00:00:00Z"
    return {"id": entry.get("id") or entry.get("link", ""), "title": entry.get("title", ""),
            "link": entry.get("link", ""), "updated": stamp, "content": content}


def write_category(slug: str, entries: list[dict[str, str]], out: Path) -> None:
    fg = FeedGenerator()
    fg.id(f"urn:naive:{slug}")
    fg.title(slug)
    fg.link(href=f"http://localhost/{slug}.atom", rel="self")
    for rec in reversed(entries):  # feedgen prepends: add oldest first
        fe = fg.add_entry()
        fe.id(rec["id"])
        fe.title(rec["title"] or "(untitled)")
        fe.link(href=rec["link"])
        fe.updated(rec["updated"].replace("Z", "+00:00"))
        fe.content(rec["content"], type="html")
    fg.atom_file(str(out / f"{slug}.atom"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=Path, required=True, help='JSON list of {"url", "category"}')
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    sources = json.loads(args.sources.read_text())
    state = (json.loads(args.state.read_text()) if args.state.exists()
             else {"validators": {}, "entries": {}, "seen": {}})
    counts = {"fetched": 0, "not_modified": 0, "failed": 0, "new": 0}
    for src in sources:
        url, slug = src["url"], src["category"]
        seen = state["validators"].get(url, {})
        d = feedparser.parse(url, etag=seen.get("etag"), modified=seen.get("modified"))
        if d.get("status") == 304:
            counts["not_modified"] += 1
            continue
        if d.get("status") != 200:
            counts["failed"] += 1
            continue
        counts["fetched"] += 1
        state["validators"][url] = {k: v for k, v in (("etag", d.get("etag")), ("modified", d.get("modified"))) if v}
        bucket = state["entries"].setdefault(slug, [])
        known = state["seen"].setdefault(url, [])
        known_set = set(known)
        fresh = [rec for rec in map(entry_record, d.entries) if rec["id"] not in known_set]
        known.extend(rec["id"] for rec in fresh)
        counts["new"] += len(fresh)
        bucket.extend(fresh)
        bucket.sort(key=lambda rec: rec["updated"], reverse=True)
        del bucket[MAX_ENTRIES:]
    args.out.mkdir(parents=True, exist_ok=True)
    for slug, entries in state["entries"].items():
        write_category(slug, entries, args.out)
    args.state.write_text(json.dumps(state))
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
