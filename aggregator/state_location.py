"""Where the state lives: a SQLite file path or a PostgreSQL URL (issue 23); naming it without its password.

Outside store/ so that reading a config does not import the store."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DATABASE_SCHEMES = ("postgresql", "postgres")


def is_database_url(state: str) -> bool:
    """Whether `state` names a PostgreSQL database (a libpq URL) rather than a SQLite file."""
    scheme, sep, _rest = state.partition("://")
    return bool(sep) and scheme.lower() in DATABASE_SCHEMES


def may_hold_state(state: str) -> bool:
    """Whether a run may have left a state there: a database always may (only opening it tells); a
    SQLite file only once it exists. Reports and `why` answer "nothing yet" when it cannot."""
    return is_database_url(state) or Path(state).exists()


def redacted(state: str) -> str:
    """`state` fit for a message or a log: a URL's password (and any password= parameter) replaced by ***."""
    if not is_database_url(state):
        return state
    parts = urlsplit(state)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = "&".join("password=***" if p.lower().startswith("password=") else p for p in parts.query.split("&"))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def local_base(state: str, config_path: str) -> str:
    """The path the files a run keeps beside its state begin with (state.db.published, state.db.pruned):
    the state file itself, or for a database state/postgresql in the config's folder (what the database
    cannot hold: markers of this machine's outputs)."""
    if not is_database_url(state):
        return state
    return str(Path(config_path).resolve().parent / "state" / "postgresql")
