"""`aggregator why URL_OR_ID`: what happened to one article; reads the store, writes nothing, prints nothing.

    investigate(config, store, query, now) -> Answer
      Store.find_article               stored entries and filter decisions by id, guid or canonical link
      publishing.feed_windows          each feed's rows as publishing selects them, at `now`
      placements: per feed of the entry's source, shown at which position, or why not (cut_reason)
      explain_entry / explain_filtered  pure: facts -> Finding (verdict, one line, detail lines)
    format_answer(answer) -> text; answer_json(answer) -> the same as JSON-ready values (stable keys)

Verdicts, most telling first (an answer's verdict is its first finding's): published, held, duplicate,
beyond_max_age, beyond_max_per_source, beyond_max_entries, not_cleaned, not_shown (no reason found: a bug), source_removed,
pruned, filtered; never_seen when nothing matched.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aggregator.filters import NO_KEEP_MATCH, describe_rule
from aggregator.limits import cap_per_key
from aggregator.model import Article, Config, OutputConfig, Source
from aggregator.pipeline.ingest import rules_for
from aggregator.pipeline.publishing import feed_specs, feed_windows
from aggregator.publish.formatting import feed_files
from aggregator.publish.similar import similar_groups
from aggregator.store import Store
from aggregator.store.db import FeedRow
from aggregator.store.dedup import canonical_link
from aggregator.store.filtered import FilteredMatch
from aggregator.store.lookup import StoredMatch

VERDICTS = ("published", "held", "duplicate", "beyond_max_age", "beyond_max_per_source", "beyond_max_entries",
            "not_cleaned",
            "not_shown", "source_removed", "pruned", "filtered", "never_seen")
# why a published entry is not in one feed -> the verdict when no feed shows it
_REASON_VERDICT = {"duplicate": "duplicate", "same_story": "duplicate", "max_age": "beyond_max_age", "max_per_source": "beyond_max_per_source",
                   "max_entries": "beyond_max_entries", "cleaning": "not_cleaned"}


@dataclass(frozen=True)
class Placement:
    """One feed an entry's source is published in: where the entry stands in it, or why it is left out."""

    feed: str  # the category slug, or "all"
    paths: tuple[str, ...]  # the files of this feed
    position: int  # 1-based among the entries the feed shows; 0 = not shown
    shown: int  # entries the feed shows
    reason: str = ""  # when not shown: "duplicate", "max_age", "max_per_source", "max_entries", "cleaning", "unknown"
    rank: int = 0  # when cut by a limit on entries: its place among the feed's (or, for max_per_source, its
    # source's) entries within max_age
    duplicate_of: Mapping[str, str] = field(default_factory=dict)  # id, source, title of the copy shown


@dataclass(frozen=True)
class Standing:
    """Where an entry ranks in a feed's rows once max_age is applied (before the other limits cut)."""

    rank: int  # 1-based among the feed's rows that max_per_source leaves in
    source_rank: int  # 1-based among the rows of the entry's own source


@dataclass(frozen=True)
class Finding:
    """What happened to one stored entry or one recorded filter decision."""

    verdict: str
    line: str  # the verdict in words, one line
    details: tuple[str, ...]
    source_url: str
    source_name: str
    id: str
    guid: str
    link: str
    title: str
    first_seen: datetime
    feeds: tuple[Placement, ...] = ()
    rule: str = ""
    duplicate_of: Mapping[str, str] = field(default_factory=dict)
    pruned_at: datetime | None = None


@dataclass(frozen=True)
class Answer:
    query: str
    findings: tuple[Finding, ...]  # most telling first

    @property
    def verdict(self) -> str:
        return self.findings[0].verdict if self.findings else "never_seen"


# --- gathering (reads the store) -------------------------------------------------------------------------


def investigate(config: Config, store: Store, query: str, now: datetime) -> Answer:
    """Everything the store knows about the article whose id, guid or link is `query`, at `now`."""
    query = query.strip()
    entries, decisions = store.find_article(query)
    sources = {s.url: s for s in config.sources}
    windows = _Windows(config, store, now)
    findings = [explain_entry(e, windows.placements(e) if e.status == "published" else (), sources,
                              config.output) for e in entries]
    findings = [explain_merged(f, e) if e.alias else f for f, e in zip(findings, entries)]
    # a decision about an article its source stored since (a rule changed) is history: the entry tells
    stored = {(e.source_url, e.id) for e in entries} | {(e.source_url, e.link_key) for e in entries if e.link_key}
    findings += [explain_filtered(d, sources.get(d.source_url), config) for d in decisions
                 if (d.source_url, d.id) not in stored and (d.source_url, canonical_link(d.link)) not in stored]
    return Answer(query, tuple(sorted(findings, key=lambda f: VERDICTS.index(f.verdict))))


class _Windows:
    """The feeds' rows as publishing selects them at `now` (read once), and each feed's rows without
    the entry limit, read only for an entry a feed leaves out."""

    def __init__(self, config: Config, store: Store, now: datetime) -> None:
        self.config, self.store, self.now = config, store, now
        self.urls = dict((spec.slug, urls) for spec, urls in feed_specs(config))
        self.aged: dict[str, list[FeedRow]] = {}
        self.stories: dict[str, dict[str, Article]] = {}

    @functools.cached_property
    def windows(self) -> dict[str, list[FeedRow]]:
        """Read only when a published entry is asked about (not for one never seen, held or pruned)."""
        return {spec.slug: rows for spec, rows in feed_windows(self.config, self.store, self.now)}

    def placements(self, entry: StoredMatch) -> tuple[Placement, ...]:
        return tuple(self.placement(slug, entry) for slug, urls in self.urls.items() if entry.source_url in urls)

    def placement(self, slug: str, entry: StoredMatch) -> Placement:
        shown = [r for r in self.windows[slug] if not r.needs_cleaning]  # publishing leaves those out
        folder = Path(self.config.output.dir)
        paths = tuple(str(folder / name) for name in feed_files(self.config.output, slug))
        position = next((i for i, r in enumerate(shown, 1) if r.key == entry.key), 0)
        left_out = Placement(slug, paths, 0, len(shown))
        if position:
            kept = self.same_story_kept(slug, shown).get(entry.id)
            if kept is None:
                return Placement(slug, paths, position, len(shown))
            return replace(left_out, reason="same_story",
                           duplicate_of={"id": kept.id, "source": kept.source_url, "title": kept.title})
        owner = self.store.entry_shown_for_link(entry.link_key, self.urls[slug]) if entry.link_key else None
        if owner is not None and owner != entry.key:
            return replace(left_out, reason="duplicate", duplicate_of=self.describe(owner))
        if any(r.key == entry.key for r in self.windows[slug]):
            return replace(left_out, reason="cleaning")
        standing = self.standing(slug, entry)
        reason = cut_reason(entry.updated, standing, self.config.output, self.now) or "unknown"
        rank = 0 if standing is None else standing.source_rank if reason == "max_per_source" else standing.rank
        return replace(left_out, rank=rank, reason=reason)

    def same_story_kept(self, slug: str, shown: list[FeedRow]) -> dict[str, Article]:
        """Entry id -> the entry it is published as, for the copies `dedup.similar` merges in this feed
        (publishing merges the same rows: publish.selection)."""
        if not self.config.dedup.similar:
            return {}
        if slug not in self.stories:
            groups = similar_groups(self.store.headlines_of(shown))
            self.stories[slug] = {copy.id: group.kept for group in groups for copy in group.merged}
        return self.stories[slug]

    def standing(self, slug: str, entry: StoredMatch) -> Standing | None:
        if slug not in self.aged:
            self.aged[slug] = self.store.feed_rows(self.urls[slug], max_age_s=self.config.output.max_age,
                                                   now=self.now)
        rows = self.aged[slug]
        index = next((i for i, r in enumerate(rows) if r.key == entry.key), None)
        if index is None:
            return None
        head = rows[:index + 1]  # as the windows count: each source's rows past the cap leave no trace
        kept, _over = cap_per_key(head, lambda row: row.source_url, self.config.output.max_per_source)
        return Standing(len(kept), sum(row.source_url == entry.source_url for row in head))

    def describe(self, key: int) -> dict[str, str]:
        rows = self.store.rows_by_key([key])
        heads = self.store.headlines_of(rows)
        return {"id": rows[0].id, "source": rows[0].source_url, "title": heads[0].title} if rows else {}


# --- the decisions (pure) --------------------------------------------------------------------------------


def explain_merged(finding: Finding, kept: StoredMatch) -> Finding:
    """An entry found only through a guid or link the store recorded for it (`finding` is its own verdict):
    the item asked about was folded into it."""
    line = (f"merged as a duplicate of {kept.id} ({kept.title!r}) from the same source: the store took it for "
            "a re-post (the same title within hours) or the same article under a new guid or link")
    return replace(finding, verdict="duplicate", line=line,
                   details=(f"that entry: {finding.line}", *finding.details),
                   duplicate_of={"id": kept.id, "source": kept.source_url, "title": kept.title})


def cut_reason(updated: datetime, standing: Standing | None, output: OutputConfig, now: datetime) -> str:
    """Which output limit leaves an entry out of a feed ("" for none): one branch per limit, in the order
    the feed windows apply them (store.windows). `standing`: None when max_age already left it out."""
    if standing is None or (output.max_age and updated < now - timedelta(seconds=output.max_age)):
        return "max_age"
    if output.max_per_source and standing.source_rank > output.max_per_source:
        return "max_per_source"
    if output.max_entries and standing.rank > output.max_entries:
        return "max_entries"
    return ""


def explain_entry(entry: StoredMatch, feeds: Sequence[Placement], sources: Mapping[str, Source],
                  output: OutputConfig) -> Finding:
    """The verdict on one stored entry, from where it stands in each feed of its source."""
    source = sources.get(entry.source_url)
    base = Finding("", "", (), entry.source_url, entry.source_name or (source.label if source else ""),
                   entry.id, entry.original_id, entry.link, entry.title, entry.first_seen, tuple(feeds),
                   pruned_at=entry.pruned_at)
    facts = _entry_facts(entry, base.source_name)
    if entry.status == "held":
        return replace(base, verdict="held", details=facts, line=(
            f"held back: one of a burst of new articles dated before the source's newest; "
            f"`aggregator run --accept-burst {entry.source_url}` publishes them"))
    if entry.status == "pruned":
        when = f" on {_day(entry.pruned_at)}" if entry.pruned_at else ""
        return replace(base, verdict="pruned", details=facts, line=(
            f"pruned{when}: retention removed it (its identity is remembered, so it will not come back as new)"))
    if source is None:
        return replace(base, verdict="source_removed", details=facts,
                       line="stored, but its source is no longer in the config: no feed shows it")
    shown = [p for p in feeds if p.position]
    details = facts + tuple(_placement_line(p) for p in feeds)
    if shown:
        return replace(base, verdict="published", details=details,
                       line=f"published in {', '.join(p.feed for p in shown)}: {entry.title!r}")
    reason = next((r for r in _REASON_VERDICT if r in {p.reason for p in feeds}), "unknown")
    dup = next((p.duplicate_of for p in feeds if p.reason in ("duplicate", "same_story")), {})
    line = {
        "duplicate": f"a duplicate of {dup.get('id')} from {dup.get('source')} (the same link, seen there "
                     "first): the feeds show that copy, not this one",
        "same_story": f"the same story as {dup.get('id')} ({dup.get('title')!r}) from {dup.get('source')} "
                      "(dedup.similar): the feeds show that entry, with this one as a related link",
        "max_age": f"beyond max_age: dated {_day(entry.updated)}, older than output.max_age "
                   f"({_duration(output.max_age)}), so in no feed",
        "max_per_source": f"beyond max_per_source: in no feed, as its source's newer entries fill "
                          f"output.max_per_source ({output.max_per_source})",
        "max_entries": f"beyond max_entries: in no feed, as newer entries fill each one's "
                       f"output.max_entries ({output.max_entries})",
        "cleaning": "in no feed: its cleaning failed (see the run's log); it is tried again on the next run",
    }.get(reason, "in no feed, for no reason this command knows (please report it)")
    return replace(base, verdict=_REASON_VERDICT.get(reason, "not_shown"), details=details, line=line,
                   duplicate_of=dup)


def explain_filtered(decision: FilteredMatch, source: Source | None, config: Config) -> Finding:
    """The verdict on one article a filter rule dropped."""
    details = [f"source: {source.label if source else decision.source_url} ({decision.source_url})",
               *_ids(decision.id, decision.original_id, decision.link),
               f"dropped whenever its feed was read: first {_day(decision.first_seen)}, last "
               f"{_day(decision.last_seen)}"]
    if decision.rule == NO_KEEP_MATCH and source is not None:
        keep = [describe_rule(r) for r in rules_for(config, source) if r.action == "keep"]
        details.append("keep rules now: " + ("; ".join(keep) if keep else "none (it would pass now)"))
    return Finding("filtered", f"filtered: dropped by {decision.rule}", tuple(details), decision.source_url,
                   source.label if source else "", decision.id, decision.original_id, decision.link,
                   decision.title, decision.first_seen, rule=decision.rule)


def _entry_facts(entry: StoredMatch, source_name: str) -> tuple[str, ...]:
    return (f"source: {source_name or entry.source_url} ({entry.source_url})",
            *_ids(entry.id, entry.original_id, entry.link),
            f"first seen {_day(entry.first_seen)}; dated {_day(entry.updated)}")


def _ids(entry_id: str, guid: str, link: str) -> list[str]:
    return [f"id: {entry_id}", *([f"guid: {guid}"] if guid else []), *([f"link: {link}"] if link else [])]


def _placement_line(p: Placement) -> str:
    where = ", ".join(p.paths)
    if p.position:
        return f"{p.feed}: entry {p.position} of {p.shown} in {where}"
    return f"{p.feed}: not in {where}: {_reason_text(p)}"


def _reason_text(p: Placement) -> str:
    return {
        "duplicate": f"it shows the copy from {p.duplicate_of.get('source')}",
        "same_story": f"the same story as the entry from {p.duplicate_of.get('source')}, shown once with "
                      "this copy as a related link",
        "max_age": "older than output.max_age",
        "max_per_source": f"its source's number {p.rank}, past output.max_per_source",
        "max_entries": f"number {p.rank}, and it shows the newest {p.shown}",
        "cleaning": "its cleaning failed",
    }.get(p.reason, "not selected (please report this)")


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


# --- output ----------------------------------------------------------------------------------------------


def format_answer(answer: Answer) -> str:
    """The answer for a person: the verdict line, its details, then any other finding."""
    if not answer.findings:
        return (f"never seen: no stored article, remembered identity or filter decision has the id, guid or link "
                f"{answer.query!r} (links match without tracking parameters, http/https or a trailing slash)")
    lines: list[str] = []
    for index, finding in enumerate(answer.findings):
        if index == 1:
            lines.append("also:")
        indent = "  " * min(index, 1)
        lines.append(indent + finding.line)
        lines.extend(f"{indent}  {detail}" for detail in finding.details)
    return "\n".join(lines)


def answer_json(answer: Answer) -> dict[str, Any]:
    """The answer as JSON-ready values; these keys are stable."""
    return {"query": answer.query, "verdict": answer.verdict,
            "findings": [_finding_json(f) for f in answer.findings]}


def _finding_json(f: Finding) -> dict[str, Any]:
    return {
        "verdict": f.verdict, "text": f.line, "source": {"url": f.source_url, "name": f.source_name},
        "id": f.id, "guid": f.guid, "link": f.link, "title": f.title, "first_seen": f.first_seen.isoformat(),
        "rule": f.rule or None, "duplicate_of": dict(f.duplicate_of) or None,
        "pruned_at": f.pruned_at.isoformat() if f.pruned_at else None,
        "feeds": [{"feed": p.feed, "paths": list(p.paths), "position": p.position or None, "shown": p.shown,
                   "reason": p.reason or None, "rank": p.rank or None, "duplicate_of": dict(p.duplicate_of) or None} for p in f.feeds],
    }
