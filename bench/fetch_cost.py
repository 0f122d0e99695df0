"""CPU per GET through each HTTP transport under httpx: httpx's own pool against httpx-aiohttp (the one we ship).

Serve a farm first (bench/serve.py --dir FARM), then:
    .venv/bin/python bench/fetch_cost.py --urls FARM/urls.txt [--reps 3]
Every URL is fetched once per transport to learn its ETag; then each rep fetches all of them through
each transport in turn, alternately: once in full (200, the body read) and once with If-None-Match
(every answer a 304), and prints the process CPU and wall time of each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import httpx

from aggregator.fetch.client import make_client
from aggregator.fetch.transport import Client, shared_ssl_context
from aggregator.model import FetchConfig


def httpx_own_pool_client(concurrency: int) -> Client:
    """The alternative we measured and dropped: the same client over httpx's own connection pool."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(verify=shared_ssl_context(), limits=limits, retries=0)
    return Client(transport=transport, timeout=httpx.Timeout(30.0), follow_redirects=False, trust_env=False)


async def fetch_all(client: Client, urls: list[str], slots: asyncio.Semaphore,
                    etags: dict[str, str] | None) -> dict[str, str]:
    """GET every URL (conditional when `etags` is given); the ETags learned on unconditional GETs."""
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
    return learned


async def main(urls: list[str], reps: int, concurrency: int, backends: list[str]) -> None:
    slots = asyncio.Semaphore(concurrency)
    makers = {"aiohttp": lambda: make_client(FetchConfig(concurrency=concurrency, allow_private_addresses=True)),
              "httpx": lambda: httpx_own_pool_client(concurrency)}
    clients = {b: makers[b]() for b in backends}
    etags: dict[str, dict[str, str]] = {}
    for backend, client in clients.items():
        etags[backend] = await fetch_all(client, urls, slots, None)
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
