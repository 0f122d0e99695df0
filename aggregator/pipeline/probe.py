"""`check --online`: fetch every source once and process each body as a run would (parse, clean, filters),
with the state untouched and nothing stored or published."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from datetime import datetime

from aggregator.fetch import fetch_sources
from aggregator.model import Config, Source
from aggregator.pipeline.ingest import rules_for
from aggregator.worker_jobs import BodyJob, process_body


@dataclass(frozen=True)
class Probe:
    """What one source gave: an error (""= none), its HTTP status and format, how many items it lists
    and how many the filters would drop, and the parse's warnings."""

    source: Source
    error: str = ""
    status: int | None = None
    format: str = ""
    items: int = 0
    dropped: int = 0
    warnings: tuple[str, ...] = ()
    title: str = ""  # the feed's own title

    @property
    def name(self) -> str:
        """The source's `name:`, else its feed's title, else its URL (as runs name it)."""
        return self.source.name or self.title or self.source.url


def probe_sources(config: Config, now: datetime) -> list[Probe]:
    outcomes = asyncio.run(fetch_sources(config.sources, config.fetch, {}, now, force=True))
    probes = []
    for outcome in outcomes:
        if outcome.kind != "fetched":
            probes.append(Probe(outcome.source, outcome.error or outcome.kind))
            continue
        source = outcome.source
        processed = process_body(BodyJob(
            packed=zlib.compress(outcome.body, 1), headers=dict(outcome.headers), source=source,
            final_url=outcome.final_url, clean_config=config.clean, rules=rules_for(config, source), now=now))
        if processed.feed is None:
            probes.append(Probe(source, processed.error))
            continue
        feed = processed.feed
        probes.append(Probe(source, status=outcome.state.last_status, format=feed.meta.format,
                            items=len(feed.articles) + len(processed.dropped), dropped=len(processed.dropped),
                            warnings=feed.warnings, title=feed.meta.name))
    return probes
