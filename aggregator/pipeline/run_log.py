"""What a run tells the log as it goes: with -v one INFO line per source (status, bytes, time, items new,
updated and unchanged), with -vv DEBUG lines saying what each stage decided. Every line carries its values
as `fields` too, which `--log-format json` writes as keys (logs.JsonFormatter). Nothing here changes a
run; each function checks the level first, so a run without -v builds no message at all.
"""

from __future__ import annotations

import logging

from aggregator.fetch import FetchOutcome
from aggregator.pipeline.results import SourceReport
from aggregator.publish import PublishReport

log = logging.getLogger("aggregator")

# what each fetch outcome is called in a -v line
_RESULTS = {"fetched": "fetched", "not_modified": "not modified (304)", "unchanged": "unchanged (same bytes)",
            "not_due": "not due", "failed": "failed", "gone": "gone"}


def log_source(report: SourceReport, outcome: FetchOutcome) -> None:
    """The -v line of one finished source, then (-vv) what each stage decided for it."""
    if not log.isEnabledFor(logging.INFO):
        return
    state = report.state
    items, unchanged = report.articles, report.unchanged
    if report.kind in ("not_modified", "unchanged") and state:  # the feed as last parsed: every item unchanged
        items = unchanged = state.items
    fields: dict[str, object] = {
        "event": "source", "source": report.name, "url": report.source.url, "result": report.kind,
        "status": state.last_status if state else None, "bytes": report.size,
        "elapsed_s": round(report.elapsed_s, 3), "items": items, "new": report.new,
        "updated": report.updated, "unchanged": unchanged, "held_back": report.held_back,
        "dropped": sum(report.dropped.values()), "error": report.error,
    }
    if report.kind == "not_due":  # nothing was asked of the server this run: its last status is old news
        fields["status"] = None
        due = state.next_due.isoformat(timespec="seconds") if state and state.next_due else "now"
        text = f"{report.name}: not due until {due}"
    else:
        status = f"HTTP {fields['status']}" if fields["status"] else "no HTTP status"
        text = (f"{report.name}: {_RESULTS.get(report.kind, report.kind)}, {status}, {report.size} bytes, "
                f"{report.elapsed_s:.2f} s")
    if report.kind in ("fetched", "not_modified", "unchanged"):
        text += f"; {items} items: {report.new} new, {report.updated} updated, {unchanged} unchanged"
        if report.held_back:
            text += f", {report.held_back} held back"
    if report.error:
        text += f"; error: {report.error}"
    log.info("%s", text, extra={"fields": fields})
    if log.isEnabledFor(logging.DEBUG):
        for stage, decision in stage_decisions(report, outcome):
            log.debug("%s: %s: %s", report.name, stage, decision,
                      extra={"fields": {"event": "stage", "source": report.name, "url": report.source.url,
                                        "stage": stage, "decision": decision}})


def stage_decisions(report: SourceReport, outcome: FetchOutcome) -> list[tuple[str, str]]:
    """(stage, what it decided) for one source, in stage order: fetch, parse, clean, filters, store."""
    decisions = [("fetch", line) for line in _fetch_decisions(report, outcome)]
    if report.parser:
        decisions.append(("parse", f"{report.parser} parser, {report.articles} items, "
                                   f"{len(report.warnings)} warnings"))
        decisions += [("parse", f"warning: {w}") for w in report.warnings]
    for line in report.explain:  # cleaning's notes, then the filters' (recorded at -vv, see ingest)
        decisions.append(("filters" if line.startswith("filtered by ") else "clean", line))
    for label, count in sorted(report.dropped.items()):
        decisions.append(("filters", f"{count} dropped by {label}"))
    if report.parser:
        decisions.append(("store", f"{report.new} new, {report.updated} updated, {report.unchanged} unchanged "
                                   f"(known or duplicates), {report.held_back} held back, {report.capped} capped"))
    return decisions


def _fetch_decisions(report: SourceReport, outcome: FetchOutcome) -> list[str]:
    state, lines = outcome.state, []
    if outcome.kind == "not_modified":
        lines.append("conditional GET answered 304: the validators (ETag / Last-Modified) still hold")
    elif outcome.kind == "unchanged":
        lines.append("same body as last time (hash match): not parsed")
    elif outcome.kind == "not_due":
        due = state.next_due.isoformat(timespec="seconds") if state.next_due else "now"
        lines.append(f"not due until {due}" + (f" ({outcome.error})" if outcome.error else ""))
    if outcome.final_url and outcome.final_url != report.source.url and not report.source.is_local:
        lines.append(f"redirected to {outcome.final_url}")
    if state.moved_to:
        lines.append(f"moved permanently: fetched from {state.moved_to}")
    if outcome.kind in ("failed", "gone") and state.failures:
        due = state.next_due.isoformat(timespec="seconds") if state.next_due else "now"
        lines.append(f"backing off: {state.failures} failures in a row, next try {due}")
    if state.retry_after_until:
        lines.append(f"Retry-After: not before {state.retry_after_until.isoformat(timespec='seconds')}")
    return lines


def log_publish(publish: PublishReport | None, output_dir: str) -> None:
    """-vv: which output files the run wrote and which it left as they were."""
    if publish is None or not log.isEnabledFor(logging.DEBUG):
        return
    for what, paths in (("written", publish.written), ("unchanged", publish.unchanged)):
        for path in paths:
            log.debug("publish: %s %s", what, path,
                      extra={"fields": {"event": "publish", "stage": "publish", "decision": what, "file": str(path),
                                        "dir": output_dir}})
    if not (publish.written or publish.unchanged):
        log.debug("publish: nothing changed since the last run: no file rendered",
                  extra={"fields": {"event": "publish", "stage": "publish", "decision": "nothing changed"}})

