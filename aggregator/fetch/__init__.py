"""The fetch stage: which sources are due, fetching them politely and safely, and what to remember."""

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
