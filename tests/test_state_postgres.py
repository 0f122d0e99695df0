"""State on PostgreSQL (issue 23), against a real server (tests/pg.py): the same outputs as SQLite, the run
lock, schema creation by many at once, migrate-state both ways without a new item, and errors that name
the database but never its password."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import CORPUS, RecordingServer, Route, yaml_config
from test_outputs_frozen import FROZEN_NOW, assert_recorded, fixed_server, output_digests  # noqa: F401

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.errors import LockError, StateError
from aggregator.model import Article
from aggregator.pipeline import RunOptions, run
from aggregator.store import Store, postgres, schema

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEEDS = ("feeds/feedjira/TechCrunch.xml", "feeds/feedjira/CRE.xml", "feeds/rodel-reader/v2ex.xml",
         "feeds/miniflux/rdf_UTF8.xml", "hostile/xml/duplicate_guids.xml")


def test_the_corpus_renders_to_the_recorded_bytes_on_postgresql(
        tmp_path: Path, fixed_server: RecordingServer, postgres_url: str) -> None:  # noqa: F811
    """The whole corpus, stored in PostgreSQL, publishes exactly the bytes SQLite does (the record of
    test_outputs_frozen); a second run finds nothing new and changes no output."""
    digests = output_digests(tmp_path, fixed_server, state=postgres_url)
    assert len(digests) > 100
    assert_recorded(digests)
    again = run(load_config(tmp_path / "feeds.yaml"), RunOptions(force=True), now=FROZEN_NOW + timedelta(hours=1))
    assert [r.kind for r in again.sources if r.kind == "failed"] == []
    assert sum(r.new for r in again.sources) == 0
    assert sum(r.updated for r in again.sources) == 0
    assert_recorded(output_digests_of(tmp_path))


def output_digests_of(tmp_path: Path) -> dict[str, str]:
    import hashlib

    return {path.relative_to(tmp_path).as_posix():
            hashlib.sha256(path.read_bytes().replace(str(tmp_path).encode(), b"/TMP")).hexdigest()
            for folder in ("out", "posts") for path in sorted((tmp_path / folder).rglob("*")) if path.is_file()}


def _serve(server: RecordingServer) -> list[str]:
    """The corpus feeds with validators, and one source that fails (so it has a backoff to carry over)."""
    lines = []
    for n, name in enumerate(FEEDS):
        server.routes[f"/{n}"] = Route(200, {"Content-Type": "application/xml", "ETag": f'"v{n}"',
                                             "Last-Modified": "Sun, 01 Mar 2026 10:00:00 GMT"},
                                       (CORPUS / name).read_bytes())
        lines.append(f"  - {{url: '{server.url(f'/{n}')}', category: news}}")
    server.routes["/broken"] = Route(500, {"Content-Type": "text/plain"}, b"down")
    return [*lines, f"  - {{url: '{server.url('/broken')}', category: news}}"]


def _config(folder: Path, state: str, sources: list[str]) -> Path:
    return yaml_config(folder, ["output: {dir: out}", f"state: '{state}'", "categories: {news: {title: News}}",
                                "sources:", *sources])


def _states(state: str) -> tuple[dict[str, dict[str, object]], dict[str, int], int]:
    with Store.open_read_only(state) as store:
        return store.source_states(), store.article_counts(), store.generation()


def test_migrate_state_to_postgresql_and_back_makes_nothing_new(
        tmp_path: Path, http_server: RecordingServer, postgres_url: str) -> None:
    sources = _serve(http_server)
    config = _config(tmp_path, "state/state.db", sources)
    assert main(["run", "-q", "-c", str(config)], clock=lambda: NOW) == 0
    before = _states(str(tmp_path / "state" / "state.db"))
    assert sum(before[1].values()) > 100 and len(before[0]) == len(FEEDS) + 1
    feeds = (tmp_path / "out" / "news.atom").read_bytes()

    assert main(["migrate-state", "-q", "-c", str(config), "--to", postgres_url]) == 0
    assert _states(postgres_url) == before  # schedules, validators, backoff, articles, generation

    config = _config(tmp_path, postgres_url, sources)
    http_server.requests.clear()
    later = NOW + timedelta(days=1)
    assert main(["run", "-q", "-c", str(config)], clock=lambda: later) == 0
    sent = {path: headers for path, headers in http_server.requests}
    assert sent["/0"].get("if-none-match") == '"v0"'  # the validators came along
    summary = run(load_config(config), RunOptions(force=True), now=later)
    assert sum(r.new for r in summary.sources) == 0
    assert (tmp_path / "out" / "news.atom").read_bytes() == feeds
    on_postgres = _states(postgres_url)

    back = tmp_path / "back.db"
    assert main(["migrate-state", "-q", "-c", str(config), "--to", str(back)]) == 0
    assert _states(str(back)) == on_postgres
    config = _config(tmp_path, str(back), sources)
    summary = run(load_config(config), RunOptions(force=True), now=later + timedelta(hours=1))
    assert sum(r.new for r in summary.sources) == 0
    assert (tmp_path / "out" / "news.atom").read_bytes() == feeds


def test_migrate_state_refuses_a_target_that_holds_a_state(
        tmp_path: Path, http_server: RecordingServer, postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "state.db", _serve(http_server)[:1])
    assert main(["run", "-q", "-c", str(config)], clock=lambda: NOW) == 0
    assert main(["migrate-state", "-q", "-c", str(config), "--to", postgres_url]) == 0
    capsys.readouterr()
    assert main(["migrate-state", "-q", "-c", str(config), "--to", postgres_url]) == 1
    assert "already holds a state" in capsys.readouterr().err


def test_the_run_lock_is_the_databases(postgres_url: str) -> None:
    with Store.open(postgres_url):
        with pytest.raises(LockError, match=r"\(aggregator run pid \d+ on .*\) holds the database's run lock"):
            Store.open(postgres_url, lock_timeout_s=0.2)
        with pytest.raises(LockError, match="aggregator run pid"):  # a worker waits for a one-shot run too
            Store.open(postgres_url, lock_timeout_s=0.2, shared=True)
    Store.open(postgres_url, lock_timeout_s=0).close()  # released with the store


def test_workers_share_the_run_lock_and_a_one_shot_run_waits_for_them(postgres_url: str) -> None:
    with Store.open(postgres_url, shared=True), Store.open(postgres_url, shared=True, lock_timeout_s=0):
        with pytest.raises(LockError, match=r"\(aggregator worker pid \d+ .*, aggregator worker pid"):
            Store.open(postgres_url, lock_timeout_s=0.2)
    Store.open(postgres_url, lock_timeout_s=0).close()


def _at_once(calls: list[Callable[[], object]]) -> list[BaseException]:
    """Run each call in a thread of its own, all released together; what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> None:
        start.wait()
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_writers_sharing_the_state_take_turns(postgres_url: str) -> None:
    """Workers' stores write at once from many processes: each write transaction waits for the write lock,
    so the store's read-then-insert (next entry key, identity matching) never collides."""
    stores = [Store.open(postgres_url, shared=True) for _ in range(4)]

    def write(n: int, store: Store) -> None:
        for batch in range(5):
            articles = [_article(f"w{n}-{batch}-{i}", f"https://example.org/shared/{batch}-{i}") for i in range(10)]
            store.upsert_articles(f"https://source{n}.example/feed", articles, NOW)

    errors = _at_once([functools.partial(write, n, store) for n, store in enumerate(stores)])
    for store in stores:
        store.close()
    assert errors == []
    with Store.open(postgres_url) as store:
        counts = store.article_counts()
    assert counts == {f"https://source{n}.example/feed": 50 for n in range(4)}


def test_many_processes_starting_at_once_create_the_schema_once(postgres_url: str) -> None:
    connections = [postgres.connect(postgres_url) for _ in range(6)]
    try:
        errors = _at_once([functools.partial(postgres.prepare, conn, "test") for conn in connections])
    finally:
        for conn in connections:
            conn.close()
    assert errors == []
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM aggregator_schema").fetchall() == [(schema.VERSION,)]
        assert conn.execute("SELECT name, value FROM counters").fetchall() == [("generation", 0)]


def test_a_database_without_state_is_refused_when_earlier_runs_show(postgres_url: str) -> None:
    with pytest.raises(StateError, match="holds no state, but out/all.atom shows earlier runs"):
        Store.open(postgres_url, earlier_runs="out/all.atom")
    Store.open(postgres_url).close()  # a new state on purpose


def test_foreign_tables_are_left_alone(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE entries (x int)")
    with pytest.raises(StateError, match="tables named as the aggregator's"):
        Store.open(postgres_url)


def test_errors_name_the_database_but_never_its_password(
        postgres_server: object, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = postgres_url.replace("postgresql://postgres@/", "postgresql://postgres:s3cret-pw@/")
    missing = secret.replace("/t", "/nosuch_t", 1)
    with pytest.raises(StateError) as caught:
        Store.open(missing)
    assert "s3cret-pw" not in str(caught.value) and "postgres:***@" in str(caught.value)
    config = _config(tmp_path, secret, [])
    assert main(["check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "postgres:***@" in out


def test_a_lost_server_connection_is_a_state_error(postgres_url: str) -> None:
    with Store.open(postgres_url) as store:
        pid = store._conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StateError, match=r"state postgresql://postgres@/t"):
            store.source_states()


def test_nul_characters_in_a_feed_cost_no_item(tmp_path: Path, http_server: RecordingServer,
                                                state_location: str) -> None:
    """PostgreSQL's text cannot hold U+0000, which a JSON Feed can carry anywhere: the item is stored and
    published all the same, on both backends."""
    feed = ('{"version": "https://jsonfeed.org/version/1.1", "title": "Nul\\u0000s", "items": ['
            '{"id": "a\\u0000b", "url": "https://nul.example/1", "title": "Tit\\u0000le",'
            ' "content_html": "<p>bo\\u0000dy</p>", "tags": ["t\\u0000ag"], "authors": [{"name": "A\\u0000B"}],'
            ' "date_published": "2026-02-28T10:00:00Z"}]}')
    http_server.routes["/nul.json"] = Route(200, {"Content-Type": "application/feed+json"}, feed.encode())
    config = _config(tmp_path, state_location, [f"  - {{url: '{http_server.url('/nul.json')}', category: news}}"])
    summary = run(load_config(config), RunOptions(), now=NOW)
    assert [(r.kind, r.error, r.new) for r in summary.sources] == [("fetched", "", 1)]
    atom = (tmp_path / "out" / "news.atom").read_text(encoding="utf-8")
    assert "Title" in atom and "body" in atom


def test_dry_run_and_sources_report_read_a_database_state_without_changing_it(
        tmp_path: Path, http_server: RecordingServer, postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    sources = _serve(http_server)[:2]
    config = _config(tmp_path, postgres_url, sources)
    assert main(["run", "-q", "-c", str(config)], clock=lambda: NOW) == 0
    before = _states(postgres_url)
    http_server.routes["/1"] = Route(200, {"Content-Type": "application/xml"}, (CORPUS / FEEDS[2]).read_bytes())
    capsys.readouterr()
    assert main(["run", "--dry-run", "--force", "-c", str(config)], clock=lambda: NOW + timedelta(hours=1)) == 0
    out = capsys.readouterr().out
    assert "new" in out and "news" in out
    assert _states(postgres_url) == before  # the dry run worked on a copy
    assert main(["sources", "--json", "-c", str(config)], clock=lambda: NOW) == 0
    report = capsys.readouterr().out
    assert http_server.url("/0") in report and '"items": ' in report


@pytest.mark.parametrize(("state", "shown"), [
    ("postgresql://feeds:pa:ss@db.example:5432/feeds", "postgresql://feeds:***@db.example:5432/feeds"),
    ("postgres://feeds@db.example/feeds?password=x&sslmode=require",
     "postgres://feeds@db.example/feeds?password=***&sslmode=require"),
    ("POSTGRESQL://u:p@h/d", "postgresql://u:***@h/d"),
    ("/var/lib/aggregator/state.db", "/var/lib/aggregator/state.db"),
    ("state/postgresql://not-a-url", "state/postgresql://not-a-url"),
])
def test_a_state_is_named_without_its_password(state: str, shown: str) -> None:
    from aggregator.state_location import redacted

    assert redacted(state) == shown


def test_config_keeps_a_database_url_and_puts_local_files_beside_the_config(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "postgresql://feeds:${PW}@db.example/feeds", []), env={"PW": "pw"})
    assert config.state == "postgresql://feeds:pw@db.example/feeds"
    assert config.health == str(tmp_path.resolve() / "state" / "health.json")
    assert load_config(_config(tmp_path, "s/state.db", [])).state == str(tmp_path / "s" / "state.db")


def test_copying_pages_through_every_table_in_key_order(tmp_path: Path, postgres_url: str) -> None:
    """migrate-state reads each table a page at a time after the last key read: small pages (several per
    table, composite keys included) copy everything, both ways."""
    from test_store import CRE, TECHCRUNCH, load

    from aggregator.store import transfer

    urls = ["https://tc.example/feed", "https://cre.example/feed"]
    with Store.open(tmp_path / "a.db") as first:
        for url, path in zip(urls, (TECHCRUNCH, CRE)):
            first.upsert_articles(url, load(path, url), NOW)
        first.save_source_states({url: {"etag": f'"{n}"'} for n, url in enumerate(urls)})
        expected = first.articles_for(urls, now=NOW), first.source_states()
        with Store.open(postgres_url) as second:
            second._conn.execute("BEGIN")
            copied = transfer.copy_tables(first._conn, second._conn, batch=7)
            second._conn.execute("COMMIT")
            assert copied["entries"] == 50 and copied["keys"] > 50
            assert (second.articles_for(urls, now=NOW), second.source_states()) == expected
            with Store.open(tmp_path / "b.db") as third:
                third._conn.execute("BEGIN")
                assert transfer.copy_tables(second._conn, third._conn, batch=3) == copied
                third._conn.execute("COMMIT")
                assert (third.articles_for(urls, now=NOW), third.source_states()) == expected


def _article(guid: str, link: str) -> Article:
    return Article(id=guid, source_url="", source_name="", original_id=guid, title=f"Title {guid}", link=link,
                   content_html=f"<p>Body of {guid}</p>", published=NOW - timedelta(hours=1))
