"""What is remembered per source between runs (SourceState); owns no I/O and no scheduling decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime


@dataclass(frozen=True)
class SourceState:
    """Everything fetch needs to remember about one source across runs. Datetimes are UTC."""

    last_fetch: datetime | None = None  # last attempt
    last_success: datetime | None = None
    last_status: int | None = None  # last HTTP status (None: no response)
    last_error: str = ""  # "" after a success
    failures: int = 0  # consecutive
    next_due: datetime | None = None  # None: due now
    etag: str = ""
    last_modified: str = ""
    body_hash: str = ""  # sha256 of the decoded body of the last 2xx
    redirect_target: str = ""  # where the leading 301/308 hops pointed on the last fetch
    redirect_count: int = 0  # consecutive fetches that saw that same permanent redirect
    redirect_since: datetime | None = None  # first of those fetches
    moved_to: str = ""  # URL used instead of the configured one after a confirmed permanent move
    gone: bool = False  # got 410: not polled until retry_gone or a config change
    retry_after_until: datetime | None = None  # a server asked us not to come back before this
    feed_ttl_s: int | None = None  # the feed's own ttl, remembered for scheduling after a 304
    title: str = ""  # the feed's own title at its last parse: names a source configured without `name:`
    items: int = 0  # items the feed listed at its last parse (what `aggregator sources` shows as ITEMS)
    # full_text sources: article id -> failed extractions so far, for articles stored with their teaser
    # (retried on later runs, up to FULL_TEXT_ATTEMPTS in all); a tuple of pairs, so the state stays hashable
    full_text_retries: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> SourceState:
        """Builds a state from a saved dict; unknown keys are ignored, bad or missing values default."""
        kwargs: dict[str, object] = {}
        for f in _FIELDS:
            if f.name not in d:
                continue
            value = _coerce(f.name, d[f.name], f.default)
            if value is not _INVALID:
                kwargs[f.name] = value
        return cls(**kwargs)  # type: ignore[arg-type]


# dataclasses.fields, computed once: it was a fifth of building 100,000 states (measured on a worker's tick,
# bench/tick_cost.py, before the tick read only the due ones); a run builds one per source
_FIELDS = fields(SourceState)
_INVALID = object()
_DATETIME_FIELDS = {"last_fetch", "last_success", "next_due", "redirect_since", "retry_after_until"}


def _coerce(name: str, value: object, default: object) -> object:
    if value is None:
        return None if default is None else _INVALID
    if name in _DATETIME_FIELDS:
        return _to_datetime(value)
    if isinstance(default, bool):
        return value if isinstance(value, bool) else _INVALID
    if isinstance(default, int):
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if isinstance(default, str):
        return value if isinstance(value, str) else _INVALID
    if name in ("last_status", "feed_ttl_s"):
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if name == "full_text_retries" and isinstance(value, list | tuple):
        pairs = tuple(tuple(p) for p in value if isinstance(p, list | tuple) and len(p) == 2)
        return tuple((i, n) for i, n in pairs if isinstance(i, str) and isinstance(n, int)) if pairs else ()
    return _INVALID


def _to_datetime(value: object) -> object:
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, str):
        try:
            return _utc(datetime.fromisoformat(value))
        except ValueError:
            return _INVALID
    return _INVALID


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
