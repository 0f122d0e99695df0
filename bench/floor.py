"""Raw fetch floor: fetch every URL with aiohttp, read whole bodies, nothing else; no parsing.

With a state file it sends the validators it saw last time (If-None-Match / If-Modified-Since),
so the noop phase is all 304 and steady fetches only changed bodies. Concurrency limits match
what the aggregator is given, so the floor is the best that fetch schedule could do.

    python bench/floor.py --urls farm/urls.txt --state /tmp/floor.json --concurrency 100 --per-host 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import aiohttp


async def fetch_all(urls: list[str], state: dict[str, dict[str, str]], concurrency: int,
                    per_host: int) -> tuple[Counter[int], int]:
    statuses: Counter[int] = Counter()
    total = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(url: str) -> None:
            nonlocal total
            headers = {}
            seen = state.get(url, {})
            if "etag" in seen:
                headers["If-None-Match"] = seen["etag"]
            if "modified" in seen:
                headers["If-Modified-Since"] = seen["modified"]
            async with session.get(url, headers=headers) as resp:
                body = await resp.read()
                statuses[resp.status] += 1
                total += len(body)
                if resp.status == 200:
                    state[url] = {k: v for k, v in (("etag", resp.headers.get("ETag")),
                                                    ("modified", resp.headers.get("Last-Modified"))) if v}

        await asyncio.gather(*(one(u) for u in urls))
    return statuses, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--urls", type=Path, required=True)
    ap.add_argument("--state", type=Path, required=True, help="JSON file of validators (created if absent)")
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--per-host", type=int, default=2)
    args = ap.parse_args()
    urls = args.urls.read_text().split()
    state = json.loads(args.state.read_text()) if args.state.exists() else {}
    start = time.perf_counter()
    statuses, total = asyncio.run(fetch_all(urls, state, args.concurrency, args.per_host))
    fetch_s = time.perf_counter() - start
    args.state.write_text(json.dumps(state))
    print(json.dumps({"fetch_s": round(fetch_s, 4), "statuses": dict(statuses), "body_bytes": total}))


if __name__ == "__main__":
    main()
