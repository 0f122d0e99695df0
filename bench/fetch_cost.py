"""CPU per GET through each HTTP transport under httpx: httpx's own pool (one per host) against httpx-aiohttp.

Serve a farm first (bench/serve.py --dir FARM), then:
    .venv/bin/python bench/fetch_cost.py --urls FARM/urls.txt [--reps 3]
Every URL is fetched once per transport to learn its ETag; then each rep fetches all of them through
each transport in turn, alternately: once in full (200, the body read) and once with If-None-Match
(every answer a 304), and prints the process CPU and wall time of each.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aggregator.fetch.client import make_client
from aggregator.model import FetchConfig


async def fetch_all(client, urls: list[str], slots: asyncio.Semaphore, etags: dict[str, str] | None) -> None:
    async def one(url: str) -> None:
        headers = {"accept-encoding": "gzip"}
        if etags is not None and url in etags:
            headers["if-none-match"] = etags[url]
        async with slots:
            response = await client.stream_get(url, headers)
            async for _ in response.aiter_raw():
                pass
            await response.aclose()
            if etags is not None:
                assert response.status_code == 304, (url, response.status_code)
            else:
                learned[url] = response.headers.get("etag", "")

    learned: dict[str, str] = {}
    await asyncio.gather(*(one(u) for u in urls))
    if etags is not None and not etags:
        etags.update(learned)
    fetch_all.learned = learned  # type: ignore[attr-defined]


async def main(urls: list[str], reps: int, concurrency: int, backends: list[str]) -> None:
    slots = asyncio.Semaphore(concurrency)
    clients = {b: make_client(FetchConfig(concurrency=concurrency, http_backend=b, allow_private_addresses=True))[0]
               for b in backends}
    etags: dict[str, dict[str, str]] = {}
    for backend, client in clients.items():
        await fetch_all(client, urls, slots, None)
        etags[backend] = fetch_all.learned  # type: ignore[attr-defined]
    for rep in range(reps):
        for kind in ("200", "304"):
            for backend, client in clients.items():
                cpu, wall = time.process_time(), time.perf_counter()
                await fetch_all(client, urls, slots, None if kind == "200" else etags[backend])
                print(f"rep {rep} {kind} {backend:8} {len(urls)} requests: CPU {time.process_time() - cpu:.3f} s, "
                      f"wall {time.perf_counter() - wall:.3f} s", flush=True)
    for client in clients.values():
        await client.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--urls", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--backends", default="httpx,aiohttp")
    args = ap.parse_args()
    asyncio.run(main(args.urls.read_text().split(), args.reps, args.concurrency, args.backends.split(",")))
