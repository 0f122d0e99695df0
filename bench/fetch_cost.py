"""CPU per conditional GET: httpx's client layers (build_request + send) against Client.stream_get.

Serve a farm first (bench/serve.py --dir FARM), then:
    /work/venv/bin/python bench/fetch_cost.py --urls FARM/urls.txt [--reps 3]
Every URL is fetched once to learn its ETag; then each rep sends all of them again with If-None-Match
(every answer a 304) through both paths, alternately, and prints the process CPU and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aggregator.fetch.client import make_client
from aggregator.model import FetchConfig


async def main(urls: list[str], reps: int, concurrency: int) -> None:
    client, _transport = make_client(FetchConfig(concurrency=concurrency))
    slots = asyncio.Semaphore(concurrency)
    etags: dict[str, str] = {}

    async def learn(url: str) -> None:
        async with slots:
            response = await client.stream_get(url, {"accept-encoding": "gzip"})
            async for _ in response.aiter_raw():
                pass
            await response.aclose()
            etags[url] = response.headers.get("etag", "")

    async def through_client(url: str, headers: dict[str, str]) -> httpx.Response:
        return await client.send(client.build_request("GET", url, headers=headers), stream=True)

    async def conditional(url: str, get: Callable[[str, dict[str, str]], Awaitable[httpx.Response]]) -> None:
        async with slots:
            response = await get(url, {"accept-encoding": "gzip", "if-none-match": etags[url]})
            async for _ in response.aiter_raw():
                pass
            await response.aclose()
            assert response.status_code == 304, (url, response.status_code)

    async with client:
        await asyncio.gather(*(learn(u) for u in urls))
        for rep in range(reps):
            for name, get in (("client.send", through_client), ("stream_get", client.stream_get)):
                cpu, wall = time.process_time(), time.perf_counter()
                await asyncio.gather(*(conditional(u, get) for u in urls))
                print(f"rep {rep} {name:12} {len(urls)} requests: CPU {time.process_time() - cpu:.3f} s, "
                      f"wall {time.perf_counter() - wall:.3f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--urls", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=100)
    args = ap.parse_args()
    asyncio.run(main(args.urls.read_text().split(), args.reps, args.concurrency))
