"""The fetch stage: which sources are due, fetching them politely and safely, and what to remember.

Policy, in short (issue 3; FAULTS.md):
- A source is due when `next_due` has passed (`force` ignores that), never while a server's
  Retry-After holds (`retry_after_until`, even with `force`), and never once gone (410) unless
  `retry_gone`.
- Budgets: `concurrency` requests in flight overall, `per_host` per host (host:port), and
  `per_host_delay` (stretched by up to 50 % jitter) between two requests to a host, counted from
  when the previous one's response began (so the server, too, sees at least that gap between
  two requests). Time waiting for these never counts against a deadline.
- Deadlines: connect and per-read timeouts from httpx, plus `total_timeout` over each request
  (redirect hops share it) and `run_deadline` over the whole phase.
- Retries in a run: connect errors, timeouts, 408/425/5xx and 429, up to `retries` times with
  exponential backoff and jitter; a Retry-After up to `retry_after_cap` is waited for, a longer
  one (clamped to 7 days) reschedules the source.
- Retry-After binds the route (URL) that got it; when two routes of one host get 429/503 in a
  run, the whole host is left alone for the rest of the run and until the longest Retry-After.
- Failures back off from the source interval, doubling up to `max_backoff`, with jitter.
- Redirects are followed by hand (`max_redirects`, loops refused, http/https only, the
  private-address check on every hop). 301/308 chains seen on 3 consecutive fetches over at
  least a day set `moved_to`, which later fetches use; 302/307 never do.
- Bodies are read raw and decoded with a hard bound (`max_body`), gzip/deflate only.
- A "fetched" outcome leaves `failures` alone: the pipeline calls reschedule_after_parse (success)
  or mark_parse_failed (backoff, validators forgotten) once it knows whether the body parsed.
"""

from __future__ import annotations

from .client import FetchOutcome, default_user_agent, fetch_sources
from .schedule import mark_parse_failed, reschedule_after_parse
from .state import SourceState

__all__ = [
    "FetchOutcome",
    "SourceState",
    "default_user_agent",
    "fetch_sources",
    "mark_parse_failed",
    "reschedule_after_parse",
]
