"""Per-run budgets: global and per-host slots, the per-host delay, host-wide rate-limit backoff; no HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from ..model import FetchConfig
from . import schedule
from .transport import Client

# Whole-host backoff starts when this many distinct routes of one host got 429/503 in a run (issue 3);
# without a Retry-After, such a host is left alone for the configured min_interval.
HOST_BACKOFF_ROUTES = 2
HOST_JITTER = 0.5  # the per-host delay is stretched by up to this fraction


class HostBackedOff(Exception):
    """Several routes of this host were rate-limited in this run: leave the whole host alone."""


@dataclass
class Host:
    slots: asyncio.Semaphore
    next_start: float = 0.0  # monotonic time before which no request to this host may start
    limited_routes: set[str] = field(default_factory=set)
    backoff_until: datetime | None = None
    sending: bool = False  # a request holds the host's turn until it is answered
    sent: asyncio.Event = field(default_factory=asyncio.Event)

    async def until_sent(self) -> None:
        while self.sending:
            self.sent.clear()
            await self.sent.wait()

    @property
    def is_backed_off(self) -> bool:
        return len(self.limited_routes) >= HOST_BACKOFF_ROUTES


class Run:
    """Shared per-run machinery: the client, the global and per-host budgets, the random source."""

    def __init__(
        self,
        client: Client,
        config: FetchConfig,
        now: datetime,
        rng: random.Random,
        retry_base_s: float,
    ) -> None:
        self.client = client
        self.config = config
        self.now = now
        self.rng = rng
        self.retry_base_s = retry_base_s
        self.global_slots = asyncio.Semaphore(max(config.concurrency, 1))
        self.hosts: dict[str, Host] = {}

    def host(self, url: str) -> Host:
        key = host_key(url)
        if key not in self.hosts:
            self.hosts[key] = Host(asyncio.Semaphore(max(self.config.per_host, 1)))
        return self.hosts[key]

    @contextlib.asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[Callable[[], None]]:
        """Host slot first (so a global slot is never held while waiting on a busy host), then the
        host's minimum delay, then a global slot. Yields `mark_answered`, to call when the response
        headers arrive: the host's delay counts from then, so the server sees at least that gap
        between two requests however long connecting and sending took."""
        host = self.host(url)
        async with self._host_turn(host) as mark_answered:
            yield mark_answered

    @contextlib.asynccontextmanager
    async def _host_turn(self, host: Host) -> AsyncIterator[Callable[[], None]]:
        async with host.slots:
            if host.is_backed_off:
                raise HostBackedOff
            while True:
                await host.until_sent()
                wait = host.next_start - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self.global_slots.acquire()
                if time.monotonic() >= host.next_start and not host.sending:
                    break
                self.global_slots.release()  # another request to this host started meanwhile
            delay = self.config.per_host_delay
            sent = delay <= 0
            host.sending = not sent

            def mark_answered() -> None:
                nonlocal sent
                if not sent:
                    sent = True
                    host.next_start = time.monotonic() + delay * (1.0 + HOST_JITTER * self.rng.random())
                    host.sending = False
                    host.sent.set()

            try:
                yield mark_answered
            finally:
                mark_answered()
                self.global_slots.release()

    def note_rate_limited(self, url: str, retry_after_s: float | None) -> None:
        host = self.host(url)
        host.limited_routes.add(url)
        wait = retry_after_s if retry_after_s is not None else float(self.config.min_interval)
        until = self.now + timedelta(seconds=min(wait, schedule.MAX_RETRY_AFTER_S))
        if host.backoff_until is None or until > host.backoff_until:
            host.backoff_until = until


def host_key(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{(parts.hostname or '').lower()}:{port or ''}"
