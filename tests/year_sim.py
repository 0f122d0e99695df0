"""A simulated year (issue 20): feeds that are pure functions of the day, served over loopback with
conditional GET, and the real CLI (`aggregator.cli.main`, in-process) run once a simulated day under a
moved clock. Used by tests/test_year.py, tests/test_store_retention.py and bench/year.py; no assertions
here, only records of what happened, for the caller to check.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from conftest import RecordingServer, Route, _RecordingHandler

from aggregator.cli import main

START = datetime(2026, 1, 5, tzinfo=UTC)
RUN_HOUR = 6  # each simulated day's run happens at 06:00 UTC


def at(day: int) -> datetime:
    return START + timedelta(days=day, hours=RUN_HOUR)


class ConditionalHandler(_RecordingHandler):
    """The fixture's handler, answering 304 when the client's validators match the route's."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        route = self.server.routes.get(self.path)
        if route is not None and route.status == 200 and (
                (route.headers.get("ETag") and self.headers.get("If-None-Match") == route.headers["ETag"])
                or (route.headers.get("Last-Modified")
                    and self.headers.get("If-Modified-Since") == route.headers["Last-Modified"])):
            with self.server.lock:
                self.server.requests.append((self.path, dict(self.headers.items())))
            self.send_response(304)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


def serve_conditionally(server: RecordingServer) -> RecordingServer:
    server.RequestHandlerClass = ConditionalHandler
    return server


@dataclass(frozen=True)
class FeedModel:
    """One source over time. Items are numbered from 0 in the order posted; the feed lists its newest `keep`.

    every: a new item every this many days (from `first`); quiet: day ranges [a, b) without new items;
    down: day ranges answering 503; validators: "etag", "last-modified" or "" (the same bytes are then
    recognised by their hash); churn: "channel" (lastBuildDate changes daily: known items are skipped by
    the fast path) or "item" (a comment count in every item changes daily: every item is parsed again);
    dated: items carry pubDate (else they are dated when first seen).
    """

    name: str
    every: int
    keep: int
    validators: str = "etag"
    churn: str = ""
    dated: bool = True
    first: int = 0
    quiet: tuple[tuple[int, int], ...] = ()
    down: tuple[tuple[int, int], ...] = ()
    offset_min: int = 0  # minutes after midnight of its day an item is dated: no two sources tie

    @functools.cached_property
    def _posting_days(self) -> tuple[int, ...]:
        return tuple(d for d in range(self.first, 5000, self.every)
                     if not any(a <= d < b for a, b in self.quiet))

    def posted(self, day: int) -> int:
        """How many items were posted on or before `day`."""
        days = self._posting_days
        lo, hi = 0, len(days)
        while lo < hi:
            mid = (lo + hi) // 2
            if days[mid] <= day:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def listed(self, day: int) -> list[int]:
        """The items the feed lists on `day`, newest first."""
        count = self.posted(day)
        return list(range(count - 1, max(count - self.keep, 0) - 1, -1))

    def title(self, item: int) -> str:
        return f"{self.name} story {item}"

    def date(self, item: int) -> datetime:
        return START + timedelta(days=self._posting_days[item], minutes=self.offset_min)

    def is_down(self, day: int) -> bool:
        return any(a <= day < b for a, b in self.down)

    def body(self, day: int) -> bytes:
        items = []
        for n in self.listed(day):
            link = f"https://{self.name}.example/posts/{n}"
            date = f"<pubDate>{format_datetime(self.date(n), usegmt=True)}</pubDate>" if self.dated else ""
            comments = f"<slash:comments>{day - self._posting_days[n]}</slash:comments>" if self.churn == "item" else ""
            items.append(f"<item><guid>{link}</guid><title>{self.title(n)}</title><link>{link}</link>{date}"
                         f"<description><![CDATA[<p>Story {n} of {self.name}: "
                         f"{hashlib.sha1(f'{self.name}{n}'.encode()).hexdigest()}</p>]]></description>"
                         f"{comments}</item>")
        build = (f"<lastBuildDate>{format_datetime(at(day), usegmt=True)}</lastBuildDate>"
                 if self.churn == "channel" else "")
        return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
                'xmlns:slash="http://purl.org/rss/1.0/modules/slash/"><channel>'
                f"<title>{self.name}</title><link>https://{self.name}.example/</link>{build}"
                + "".join(items) + "</channel></rss>").encode()

    def route(self, day: int) -> Route:
        if self.is_down(day):
            return Route(503, {"Content-Type": "text/plain"}, b"down for maintenance")
        body = self.body(day)
        headers = {"Content-Type": "application/rss+xml"}
        if self.validators == "etag":
            headers["ETag"] = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        elif self.validators == "last-modified":
            listed = self.listed(day)
            changed = self._posting_days[listed[0]] if listed else 0
            headers["Last-Modified"] = format_datetime(START + timedelta(days=changed), usegmt=True)
        return Route(200, headers, body)


@dataclass
class Day:
    """What one simulated day's run did."""

    day: int
    exit_code: int
    new: int  # "articles: N new" as the CLI printed it
    expected_new: int  # items listed by a source answering today that no earlier answer had listed
    added: int  # items the feeds posted today
    fetched: tuple[str, ...]  # sources that were requested
    state_bytes: int  # state.db (its WAL, a journal whose size depends on commit timing, apart)
    wal_bytes: int
    rows: dict[str, int]
    feeds: dict[str, list[str]]  # output slug -> titles, newest first
    posts: dict[str, bytes]  # Hexo post file name -> bytes
    output: str = ""


@dataclass
class Simulation:
    """The CLI run once a simulated day over `models` (each its own category), with manual prunes."""

    server: RecordingServer
    folder: Path
    models: Sequence[FeedModel]
    retention: str = "3d"
    max_entries: int = 4
    prune_every: int = 30  # a manual `aggregator prune` every this many days (0: never)
    state: str = ""  # a postgresql:// URL; "" for the SQLite file state/state.db
    known: dict[str, set[int]] = field(default_factory=dict)  # items listed to a successful fetch
    first_seen: dict[tuple[str, int], datetime] = field(default_factory=dict)
    days: list[Day] = field(default_factory=list)

    def __post_init__(self) -> None:
        serve_conditionally(self.server)
        self.config = self.folder / "feeds.yaml"
        categories = "".join(f"  {m.name}: {{title: {m.name.title()}}}\n" for m in self.models)
        sources = "".join(f"  - {{url: '{self.server.url('/' + m.name + '.xml')}', category: {m.name}, "
                          f"name: {m.name}}}\n" for m in self.models)
        self.config.write_text(f"""\
output:
  dir: {self.folder / 'out'}
  base_url: 'https://news.example.org/feeds/'
  max_entries: {self.max_entries}
  index: false
  hexo: {{dir: {self.folder / 'posts'}}}
state: '{self.state or self.folder / 'state' / 'state.db'}'
retention: {self.retention}
fetch: {{interval: 12h, retries: 0, max_backoff: 12h}}
categories:
{categories}sources:
{sources}""", encoding="utf-8")
        self.known = {m.name: set() for m in self.models}

    def command(self, day: int, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([args[0], "--config", str(self.config), *args[1:]], clock=lambda: at(day))
        return code, out.getvalue()

    def run_day(self, day: int) -> Day:
        for m in self.models:
            self.server.routes[f"/{m.name}.xml"] = m.route(day)
        del self.server.requests[:]
        code, output = self.command(day, "run", "--no-progress")
        fetched = tuple(sorted({path.strip("/").removesuffix(".xml") for path, _headers in self.server.requests}))
        expected = 0
        for m in self.models:
            if m.name in fetched and not m.is_down(day):
                listed = set(m.listed(day))
                expected += len(listed - self.known[m.name])
                for n in listed - self.known[m.name]:
                    self.first_seen[(m.name, n)] = at(day)
                self.known[m.name] |= listed
        if self.prune_every and day and day % self.prune_every == 0:
            prune_code, prune_output = self.command(day, "prune")
            code, output = code or prune_code, output + prune_output
        match = re.search(r"articles: (\d+) new", output)
        record = Day(day=day, exit_code=code, new=int(match.group(1)) if match else -1, expected_new=expected,
                     added=sum(m.posted(day) - m.posted(day - 1) for m in self.models), fetched=fetched,
                     state_bytes=self.size("state.db"), wal_bytes=self.size("state.db-wal"), rows=self.rows(),
                     feeds=self.feeds(), posts=self.posts(), output=output)
        self.days.append(record)
        return record

    def size(self, name: str) -> int:
        path = self.folder / "state" / name
        return path.stat().st_size if path.exists() else 0

    def rows(self) -> dict[str, int]:
        tables = ("entries", "bodies", "keys", "fingerprints")
        if self.state:
            import psycopg

            with psycopg.connect(self.state) as pg:
                return {table: _count(pg.execute(f"SELECT count(*) FROM {table}").fetchone()) for table in tables}
        with contextlib.closing(sqlite3.connect(self.folder / "state" / "state.db")) as db:
            return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}

    def feeds(self) -> dict[str, list[str]]:
        return {path.stem: re.findall(r"<entry>.*?<title>(.*?)</title>", path.read_text(encoding="utf-8"), re.S)
                for path in sorted((self.folder / "out").glob("*.atom"))}

    def posts(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.folder / "posts").glob("*.md"))}

    def expected_feed(self, models: Sequence[FeedModel]) -> list[str]:
        """The newest max_entries of every item these sources ever listed to a successful fetch:
        publishing renders from the store, so items a feed rotated out stay until newer ones push them."""
        seen = [(self.item_date(m, n), m.title(n)) for m in models for n in self.known[m.name]]
        return [title for _date, title in sorted(seen, reverse=True)[:self.max_entries]]

    def item_date(self, model: FeedModel, item: int) -> datetime:
        if model.dated:
            return model.date(item)
        return self.first_seen[(model.name, item)]


def _count(row: tuple[int] | None) -> int:
    return row[0] if row else 0
