"""What people and monitors see: run summary, progress bar, sources table, health and metrics files.

Formats values only; the CLI decides what to print.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator.model import Config

if TYPE_CHECKING:  # `--help` reads SOURCE_COLUMNS from here: it must not import the pipeline
    from aggregator.pipeline import RunSummary, SourceReport
    from aggregator.store import Store

KINDS = ("fetched", "not_modified", "unchanged", "not_due", "failed", "gone")


@contextlib.contextmanager
def progress_bar(total: int, *, enabled: bool) -> Iterator[Callable[[SourceReport], None]]:
    """A tqdm bar on an interactive terminal; nothing under systemd or in a pipe."""
    if not enabled or not sys.stderr.isatty() or total == 0:
        yield lambda _report: None
        return
    from tqdm import tqdm

    size = shutil.get_terminal_size((80, 24))  # a pty may report 0x0, and tqdm hides bars past row 0
    with tqdm(total=total, unit="source", file=sys.stderr, leave=False, ncols=min(size.columns or 80, 120),
              nrows=size.lines or 24) as bar:
        def advance(report: SourceReport) -> None:
            bar.set_postfix_str(report.name[:30], refresh=False)
            bar.update(1)

        yield advance


def format_summary(config: Config, summary: RunSummary) -> str:
    counts = {kind: summary.count(kind) for kind in KINDS}
    fetched = counts["fetched"]
    parsed_failed = sum(1 for r in summary.sources if r.kind == "failed")
    lines = [
        f"sources: {fetched} fetched, {counts['not_modified'] + counts['unchanged']} not modified, "
        f"{counts['not_due']} not due, {parsed_failed} failed, {counts['gone']} gone",
        f"articles: {summary.new} new, {summary.updated} updated, {summary.held_back} held back",
    ]
    dropped = summary.dropped
    if dropped:
        lines.append("filtered: " + ", ".join(f"{count} by {label}" for label, count in sorted(dropped.items())))
    for report in summary.failures:
        lines.append(f"  failed: {report.name} ({report.source.url}): {report.error}")
    for report in summary.sources:
        if report.moved_to:
            lines.append(f"  moved: {report.name} ({report.source.url}) now lives at {report.moved_to}; "
                         "update the config")
        if report.held_back:
            lines.append(f"  held back: {report.held_back} old-dated new articles from {report.name}; "
                         f"pass --accept-burst {report.source.name or report.source.url!r} to publish them")
    if summary.dry_run:
        lines.append("dry run: nothing written. Changes the run would make:")
        for slug, change in sorted(summary.changes.items()):
            for what in ("new", "updated", "removed"):
                for title in change[what]:
                    lines.append(f"  {slug}.atom {what}: {title}")
        if not summary.changes:
            lines.append("  (none)")
    elif summary.publish is not None and not (summary.publish.written or summary.publish.unchanged):
        lines.append(f"feeds: nothing changed in {config.output.dir}")
    elif summary.publish is not None:
        lines.append(f"feeds: {len(summary.publish.written)} written, {len(summary.publish.unchanged)} unchanged "
                     f"in {config.output.dir}")
    if summary.publish is not None and summary.publish.removed:
        lines.append(f"  removed (ended 30 days ago): {', '.join(summary.publish.removed)}")
    lines.append(f"took {summary.seconds:.1f} s")
    return "\n".join(lines)


# --- sources table ---------------------------------------------------------------------------

# Each column of `aggregator sources`, in order, with what it means (the README and `sources --help` say the same).
SOURCE_COLUMNS = (
    ("name", "the source's `name:`, else its feed's own title (from its last successful fetch), else its URL"),
    ("category", "its category slugs"),
    ("status", "HTTP status of its last fetch (- for a local file or no answer)"),
    ("last_success", "when a fetch last succeeded (UTC)"),
    ("items", "items its feed listed at its last successful parse (a 304 keeps the count; before a "
              "run of this version saved it: the articles the state holds)"),
    ("next_due", "when it is next fetched (UTC); - means now"),
    ("flags", "failing (its last fetch failed), redirected, gone (HTTP 410), tz-corrected (its dates were shifted)"),
)
SOURCE_COLUMNS_HELP = "Columns:\n" + "\n".join(f"  {c.upper():<13}{text}" for c, text in SOURCE_COLUMNS) + (
    "\n  (the last error, in full, on its own line below a failing source)")


def source_rows(config: Config, now: datetime) -> list[dict[str, Any]]:
    states, stored = read_source_states(config)
    return [_row(s.name, s.url, s.categories, states.get(s.url, {}), stored.get(s.url, 0), now)
            for s in config.sources]


def read_source_states(config: Config) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Every source's saved state, and the articles the state holds for each (published ones);
    ({}, {}) before the first run."""
    with _report_store(config) as store:
        if store is None:
            return {}, {}
        return store.source_states(), store.article_counts()


@contextlib.contextmanager
def _report_store(config: Config) -> Iterator[Store | None]:
    """The state file opened for a report (None before the first run)."""
    from aggregator.errors import StateError
    from aggregator.state_location import may_hold_state
    from aggregator.store import Store

    if not may_hold_state(config.state):
        yield None
        return
    try:  # read-only, without the lock: a report must work in a read-only folder
        store = Store.open_read_only(config.state)
    except StateError:  # e.g. an older schema: opened as a run would (locked, migrated)
        store = Store.open(config.state)
    with store:
        yield store


def source_activity(config: Config, now: datetime, days: int) -> tuple[dict[str, dict[int, int]], dict[str, int]]:
    """For the status page: articles first seen per source and UTC day (days since the epoch) over the
    `days` days up to `now`'s, and articles held back per source."""
    since = datetime.combine(now.astimezone(UTC).date() - timedelta(days=days - 1), time(), UTC)
    with _report_store(config) as store:
        if store is None:
            return {}, {}
        return store.first_seen_per_day(since), store.held_counts()


def _row(name: str, url: str, categories: tuple[str, ...], state: dict[str, Any], stored: int,
         now: datetime) -> dict[str, Any]:
    failures = int(state.get("failures") or 0)
    flags = [flag for flag, on in (
        ("failing", failures > 0), ("redirected", bool(state.get("moved_to") or state.get("redirect_target"))),
        ("gone", bool(state.get("gone"))), ("tz-corrected", bool(state.get("tz_offset_s"))),
    ) if on]
    return {
        "name": name or str(state.get("title") or "") or url, "url": url, "category": ",".join(categories),
        "status": state.get("last_status") or "", "last_success": state.get("last_success") or "",
        "last_error": state.get("last_error") or "", "failures": failures, "items": int(state.get("items") or 0) if "items" in state else stored,
        "stored": stored, "next_due": state.get("next_due") or "", "moved_to": state.get("moved_to") or "",
        "tz_offset_s": state.get("tz_offset_s") or 0, "flags": flags,
    }


def format_sources_table(rows: list[dict[str, Any]]) -> str:
    """Aligned columns however wide their text (CJK counts two cells a character); nothing cut: a
    failing source's last error follows on its own line."""
    columns = [c for c, _text in SOURCE_COLUMNS]
    table = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [display_width(r[i]) for r in table]) for i, c in enumerate(columns)]
    out = [_line([c.upper() for c in columns], widths)]
    for row, cells in zip(rows, table, strict=True):
        out.append(_line(cells, widths))
        if row["last_error"]:
            out.append(f"    error: {' '.join(str(row['last_error']).split())}")
    return "\n".join(out)


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(pad(cell, width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def display_width(text: str) -> int:
    """Terminal cells `text` takes: East Asian Wide and Fullwidth characters two, combining marks and
    other zero-width characters none, the rest one."""
    return sum(_char_width(ch) for ch in text)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def pad(text: str, width: int) -> str:
    """`text` followed by spaces to fill `width` terminal cells."""
    return text + " " * max(0, width - display_width(text))


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "-"
    # one line: a name or title with a newline or tab would break the table
    text = " ".join(str(value).split()) if value != "" else "-"
    return text[:16].replace("T", " ") if len(text) >= 19 and text[4:5] == "-" and text[10:11] == "T" else text


# --- health and metrics --------------------------------------------------------------------------


def write_health(config: Config, summary: RunSummary) -> None:
    """health.json (and the optional Prometheus textfile) so monitoring needs no daemon."""
    from aggregator.publish import write_atomically

    now = summary.started
    sources = []
    for report in summary.sources:
        sources.append({"name": report.name, "url": report.source.url, "result": report.kind,
                        "error": report.error, "new": report.new, "articles_in_feed": report.articles})
    for entry, report in zip(sources, summary.sources, strict=True):
        # the run's own states: reopening the store to read them back would cost every run a connection
        last = report.state.last_success if report.state else None
        entry["last_success"] = last.isoformat() if last else ""
        entry["failures"] = report.state.failures if report.state else 0
        entry["stale"] = last is None or last < now - stale_after(config)
    health = {
        "version": 1, "finished": (now + timedelta(seconds=summary.seconds)).isoformat(),
        "seconds": round(summary.seconds, 3),
        "summary": {kind: summary.count(kind) for kind in KINDS} | {
            "new": summary.new, "updated": summary.updated, "held_back": summary.held_back},
        "sources": sources,
    }
    path = Path(config.health)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(health, indent=2, ensure_ascii=False).encode())
    if config.metrics:
        write_atomically(Path(config.metrics), _prometheus(health).encode())


def stale_after(config: Config) -> timedelta:
    """A source without a success for this long is stale (health.json, the status page)."""
    return timedelta(seconds=config.fetch.max_interval * 2)


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _prometheus(health: dict[str, Any]) -> str:
    lines = ["# HELP aggregator_run_seconds Duration of the last run.", "# TYPE aggregator_run_seconds gauge",
             f"aggregator_run_seconds {health['seconds']}",
             "# HELP aggregator_sources Sources by result in the last run.", "# TYPE aggregator_sources gauge"]
    for kind in KINDS:
        lines.append(f'aggregator_sources{{result="{kind}"}} {health["summary"][kind]}')
    lines += ["# HELP aggregator_articles_new New articles in the last run.", "# TYPE aggregator_articles_new gauge",
              f"aggregator_articles_new {health['summary']['new']}",
              "# HELP aggregator_source_failures Consecutive failures per source.",
              "# TYPE aggregator_source_failures gauge"]
    for source in health["sources"]:
        url = source["url"].replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'aggregator_source_failures{{url="{url}"}} {source.get("failures", 0)}')
    lines.append(f"aggregator_last_run_timestamp_seconds {_parse_time(health['finished']).timestamp():.0f}")
    return "\n".join(lines) + "\n"


# --- check --online ------------------------------------------------------------------------------


def check_online(config: Config, now: datetime) -> tuple[str, int]:
    """Fetch every source once (state untouched), process it as a run would, and say what each gave;
    with the number of sources that failed."""
    from aggregator.pipeline.probe import probe_sources

    lines, failed = [], 0
    for probe in probe_sources(config, now):
        label = probe.source.url if probe.name == probe.source.url else f"{probe.name} ({probe.source.url})"
        if probe.error:
            lines.append(f"FAIL  {label}: {probe.error}")
            failed += 1
            continue
        dropped = f" ({probe.dropped} dropped by filters)" if probe.dropped else ""
        problems = f"; {len(probe.warnings)} warnings: {probe.warnings[0]}" if probe.warnings else ""
        lines.append(f"OK    {label}: HTTP {probe.status or '-'}, {probe.format or '?'}, "
                     f"{probe.items} items{dropped}{problems}")
    return "\n".join(lines), failed
