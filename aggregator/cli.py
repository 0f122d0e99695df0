"""argv -> pipeline; the only module that prints or exits.

Exit codes: 0 done (`run`: some sources may have failed), 1 fatal (and `check --online`: some source
failed to fetch or parse; `why`: an article never seen), 2 config or usage error, 3 another run holds
the lock.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from aggregator import __version__
from aggregator.config import DEFAULT_CONFIG, config_schema, load_config
from aggregator.errors import AggregatorError, ConfigError, LockError
from aggregator.logs import setup_logging
from aggregator.patterns import is_pattern_notice
from aggregator.state_location import may_hold_state, redacted
from aggregator.report import SOURCE_COLUMNS_HELP

if TYPE_CHECKING:
    from aggregator.pipeline import SourceReport

EXIT_OK, EXIT_FATAL, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 3
EXIT_SOURCES_FAILED = 1  # check --online: the config is valid but some source failed
EXIT_NEVER_SEEN = 1  # `why`: nothing is known about that article
log = logging.getLogger("aggregator")


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with a one-line hint, like config errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aggregator",
        description="Poll RSS/Atom/JSON feeds, clean them, and republish one Atom feed per category.",
        epilog="Example: aggregator run --config config/feeds.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    _add_global_options(parser, suppress=False)
    common = _Parser(add_help=False)  # the same options after the subcommand: `aggregator run -c x.yaml -v`
    _add_global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str, example: str, more: str = "") -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text,
                              epilog=f"{more}\n\nExample: {example}" if more else f"Example: {example}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    run = command("run", "fetch the due sources and republish the feeds",
                  "aggregator run --config config/feeds.yaml --only finance --dry-run")
    run.add_argument("--force", action="store_true", help="fetch every source now, ignoring schedules and backoff")
    run.add_argument("--retry-gone", action="store_true", help="also retry sources marked gone (HTTP 410)")
    run.add_argument("--only", action="append", default=[], metavar="SOURCE_OR_CATEGORY",
                     help="only this source (name or URL) or category slug; repeatable")
    run.add_argument("--dry-run", action="store_true",
                     help="fetch and process, write nothing; print new, updated and removed entries per feed")
    run.add_argument("--accept-burst", action="append", default=[], metavar="SOURCE",
                     help="let a held-back burst of old-dated new items from SOURCE through; repeatable")
    run.add_argument("--explain", action="store_true", help="list what cleaning and filters removed, per article")
    run.add_argument("--workers", type=int, default=0, help="parser processes (default: one per core)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    run.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                     help="how long to wait for another run's lock (default: config lock_timeout, 60 s)")
    run.add_argument("--new-state", action="store_true",
                     help="start over with a missing or empty state file although earlier runs left outputs "
                          "(every article is new again)")

    check = command("check", "validate the config and exit", "aggregator check --online")
    check.add_argument("--online", action="store_true", help="also fetch each source once and report on it")
    check.add_argument("--schema", action="store_true", help="print the config's JSON Schema and exit")

    sources = command("sources", "show every source with its status and schedule",
                      "aggregator sources --config config/feeds.yaml --json", SOURCE_COLUMNS_HELP)
    sources.add_argument("--json", action="store_true", help="machine-readable output")
    sources.add_argument("--html", default="", metavar="FILE",
                         help="write a self-contained status page (states, errors, a 30-day chart per source) to FILE")

    imp = command("import-opml", "add the feeds of an OPML file to the config",
                  "aggregator import-opml subscriptions.opml --config config/feeds.yaml")
    imp.add_argument("file", help="the OPML file to import")
    imp.add_argument("--category", default="", help="category slug for feeds outside any folder (default: imported)")

    add = command("add", "add a feed, or the feed a web page advertises, to the config",
                  "aggregator add https://example.org/ --category tech --name 'Example blog'")
    add.add_argument("url", metavar="URL", help="a feed's address, or a web page's (its feeds are found)")
    add.add_argument("--category", default="", metavar="SLUG",
                     help="the category to add it to (needed when the config has more than one)")
    add.add_argument("--name", default="", help="the source's name (default: the feed's own title)")

    command("export-opml", "print the configured sources as OPML 2.0",
            "aggregator export-opml --config config/feeds.yaml > subscriptions.opml")

    why = command("why", "what happened to one article: published, filtered, merged, held back, cut or pruned",
                  "aggregator why https://example.org/2026/some-story")
    why.add_argument("article", metavar="URL_OR_ID", type=_non_empty,
                     help="the article's link, its feed's guid, or the id we publish")
    why.add_argument("--json", action="store_true", help="machine-readable output")

    prune = command("prune", "remove state older than the retention period", "aggregator prune --older-than 90d")
    prune.add_argument("--older-than", default="", metavar="DURATION", help="override config's retention (e.g. 90d)")
    worker = command("worker", "run a long-lived worker on a PostgreSQL state: start any number, on any machines",
                     "aggregator worker --config /etc/aggregator/feeds.yaml --concurrency 20",
                     "Needs `state: postgresql://...` and pip install 'aggregator[postgres]'. Stops on SIGTERM or\n"
                     "SIGINT: running jobs finish, or after --stop-timeout go back to the queue.")
    worker.add_argument("--concurrency", type=int, default=20, metavar="N",
                        help="hosts fetched at once by this worker (default: 20)")
    worker.add_argument("--queue", action="append", choices=("fetch", "publish"), default=[], dest="queues",
                        help="only take these jobs: fetch, publish; repeatable (default: both)")
    worker.add_argument("--tick", type=int, default=10, metavar="SECONDS",
                        help="how often due sources are enqueued; divides a minute (default: 10)")
    worker.add_argument("--publish-delay", type=int, default=5, metavar="SECONDS",
                        help="a publish waits this long for more changes to ride along (default: 5)")
    worker.add_argument("--stop-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="on SIGTERM, how long running jobs get before they go back to the queue (default: 30)")
    worker.add_argument("--heartbeat", type=float, default=10.0, metavar="SECONDS",
                        help="how often this worker tells the database it lives; after 3 missed, its jobs run "
                             "again elsewhere (default: 10)")
    worker.add_argument("--workers", type=int, default=0, help="parser processes (default: one per core)")

    migrate = command("migrate-state", "copy the state into a new SQLite file or PostgreSQL database",
                      "aggregator migrate-state --to 'postgresql://aggregator@db.example/feeds'")
    migrate.add_argument("--to", required=True, metavar="PATH_OR_URL",
                         help="a new SQLite file, or a postgresql:// URL of a database without aggregator state")
    return parser


# Global options: (flags, dest, argparse keywords). Given after the subcommand they land in "sub_<dest>"
# (default: absent), so a subcommand never overwrites what was given before it; main() merges the two.
_GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], str, dict[str, Any]], ...] = (
    (("-c", "--config"), "config", {"default": DEFAULT_CONFIG, "metavar": "PATH",
                                    "help": f"config file (default: {DEFAULT_CONFIG})"}),
    (("-v", "--verbose"), "verbose", {"action": "count", "default": 0,
                                      "help": "-v: one line per source; -vv: what each stage decided"}),
    (("-q", "--quiet"), "quiet", {"action": "store_true", "default": False, "help": "only warnings and errors"}),
    (("--log-format",), "log_format", {"choices": ("text", "json"), "default": "text",
                                       "help": "log line format: text, or json (one object per line)"}),
)


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    for flags, dest, keywords in _GLOBAL_OPTIONS:
        if suppress:
            keywords = {**keywords, "default": argparse.SUPPRESS}
        parser.add_argument(*flags, dest=f"sub_{dest}" if suppress else dest, **keywords)


def _merge_global_options(args: argparse.Namespace) -> None:
    """Options after the subcommand win over the same ones before it; -v counts on both sides."""
    for _flags, dest, _keywords in _GLOBAL_OPTIONS:
        if not hasattr(args, f"sub_{dest}"):
            continue
        later = getattr(args, f"sub_{dest}")
        delattr(args, f"sub_{dest}")
        setattr(args, dest, args.verbose + later if dest == "verbose" else later)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a link, guid or id, got nothing")
    return text


def main(argv: Sequence[str] | None = None, *, clock: Callable[[], datetime] | None = None) -> int:
    """The CLI. `clock` gives the time a command runs at (default: the system clock), read once here:
    the one place the program reads the time, so tests and bench/year.py move it (issue 20)."""
    args = build_parser().parse_args(argv)
    _merge_global_options(args)
    args.clock = clock or _system_time  # a long-lived command (worker) reads it again for each job
    args.now = args.clock()
    setup_logging(args.verbose, args.quiet, args.log_format)
    try:
        return int(_COMMANDS[args.command](args))
    except ConfigError as exc:
        print(_config_error_text(exc), file=sys.stderr)
        return EXIT_CONFIG
    except LockError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except AggregatorError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("aggregator: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `aggregator sources | head -3`: the reader has what it wanted
        _detach_stdout()
        return EXIT_OK
    except OSError as exc:
        if exc.filename is None:  # no file to blame: treat it as the bug it probably is
            log.exception("aggregator crashed; please report this with the traceback")
        else:  # a full disk, a vanished mount: the environment, named in one line
            print(f"aggregator: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FATAL
    except Exception:  # noqa: BLE001 - a bug: show it, exit 1
        log.exception("aggregator crashed; please report this with the traceback")
        return EXIT_FATAL


def _system_time() -> datetime:
    return datetime.now(UTC)


def entry() -> NoReturn:
    """The console script: main(), then the exit handlers (logging, multiprocessing's finalizers) and
    a flush, then an exit that skips tearing down the interpreter object by object, a noticeable part
    of a short run's time (bench/RESULTS.md)."""
    code = main()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the rest of the output was still buffered when the reader left
        _detach_stdout()
    sys.stderr.flush()
    os._exit(code)


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so no later flush raises on the closed pipe again (the recipe in
    Python's signal docs, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    os.close(devnull)


def _config_error_text(exc: ConfigError) -> str:
    count = len(exc.problems)
    head = "configuration error" if count == 1 else f"{count} configuration errors"
    return f"aggregator: {head}:\n" + "\n".join(f"  {line}" for line in exc.problems)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # before anything else: a config error fetches and writes nothing
    from aggregator.pipeline import RunOptions, run
    from aggregator.report import format_summary, progress_bar, write_health

    options = RunOptions(force=args.force, retry_gone=args.retry_gone, only=tuple(args.only),
                         dry_run=args.dry_run, accept_burst=tuple(args.accept_burst), explain=args.explain,
                         workers=args.workers, lock_timeout_s=args.lock_timeout, new_state=args.new_state)
    if args.only and not _matches_any(config, args.only):
        raise ConfigError(f"--only {' '.join(args.only)}: no source or category by that name")
    with progress_bar(len(config.sources), enabled=not (args.no_progress or args.quiet)) as advance:
        summary = run(config, options, now=args.now, on_progress=advance)
    told: set[str] = set()  # each worker process disables a pattern on its own: say it once a run
    for report in summary.sources:
        if report.kind in ("failed", "gone"):
            log.error("%s: %s", _source_ref(report), report.error)
        for warning in report.warnings:
            if is_pattern_notice(warning):
                if warning in told:
                    continue
                told.add(warning)
            log.warning("%s: %s", _source_ref(report), warning)
        if args.explain:
            for line in report.explain:
                print(f"{report.name}: {line}")
    if not args.dry_run:
        try:
            write_health(config, summary)
        except OSError as exc:  # monitoring output must not turn a good run into a failed one
            log.warning("health file %s not written: %s", config.health, exc.strerror or exc)
    if not args.quiet:
        print(format_summary(config, summary))
    return EXIT_OK


def _source_ref(report: SourceReport) -> str:
    """How log lines name a source: its name (or feed title) and URL, or the URL alone when it has neither."""
    name, url = report.name, report.source.url
    return f"source {name!r} ({url})" if name != url else f"source {url}"


def _matches_any(config: Any, names: Sequence[str]) -> bool:
    from aggregator.pipeline import feed_titles, select_sources
    from aggregator.report import read_source_states

    if select_sources(config, names) or any(n in config.categories for n in names):
        return True
    return bool(select_sources(config, names, feed_titles(read_source_states(config)[0])))  # a feed's title


def cmd_check(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(config_schema(), indent=2, ensure_ascii=False))
        return EXIT_OK
    config = load_config(args.config)
    print(f"{args.config}: OK — {len(config.categories)} categories, {len(config.sources)} sources; "
          f"output to {config.output.dir}, state in {redacted(config.state)}")
    if args.online:
        from aggregator.report import check_online

        text, failed = check_online(config, args.now)
        print(text)
        if failed:
            print(f"aggregator: {failed} of {len(config.sources)} sources failed", file=sys.stderr)
            return EXIT_SOURCES_FAILED
    return EXIT_OK


def cmd_sources(args: argparse.Namespace) -> int:
    from aggregator.report import format_sources_table, source_rows

    config = load_config(args.config)
    rows = source_rows(config, args.now)
    if args.html:
        _write_status_page(config, rows, args.now, Path(args.html))
        print(f"{args.html}: status page of {len(rows)} sources written")
    elif args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
    else:
        print(format_sources_table(rows))
    return EXIT_OK


def _write_status_page(config: Any, rows: list[dict[str, Any]], now: datetime, path: Path) -> None:
    from aggregator.publish import write_atomically
    from aggregator.report import source_activity, stale_after
    from aggregator.status_page import CHART_DAYS, render_status_page, source_statuses

    per_day, held = source_activity(config, now, CHART_DAYS)
    statuses = source_statuses(rows, per_day, held, now, stale_after(config).total_seconds())
    write_atomically(path, render_status_page(statuses, now))


def cmd_import_opml(args: argparse.Namespace) -> int:
    from aggregator.opml import import_opml

    added, skipped = import_opml(Path(args.file), Path(args.config), default_category=args.category or "imported")
    print(f"{args.config}: added {len(added)} sources, skipped {len(skipped)}")
    for line in skipped:
        print(f"  skipped: {line}")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    from aggregator.subscribe import AddRefused, add_source, format_added

    try:
        added = add_source(args.config, args.url, args.category, args.name, args.now)
    except AddRefused as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(format_added(added))
    return EXIT_OK


def cmd_export_opml(args: argparse.Namespace) -> int:
    from aggregator.opml import export_opml

    sys.stdout.write(export_opml(load_config(args.config)))
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    from aggregator.pipeline import open_store, prune
    from aggregator.text import parse_duration

    config = load_config(args.config)
    try:
        keep_s = parse_duration(args.older_than) if args.older_than else config.retention
    except ValueError as exc:
        raise ConfigError(f"--older-than: {exc}") from exc
    with open_store(config) as store:
        removed = prune(config, store, args.now, keep_s)
    print(f"pruned {removed} rows older than {keep_s / 86400:g} days from {redacted(config.state)}")
    return EXIT_OK


def cmd_migrate_state(args: argparse.Namespace) -> int:
    from aggregator.pipeline import migrate_state

    config = load_config(args.config)
    copied = migrate_state(config, args.to)
    counts = ", ".join(f"{rows} {table}" for table, rows in copied.rows.items())
    print(f"copied the state from {redacted(config.state)} to {redacted(copied.target)}: {counts}; "
          f"set `state: {redacted(copied.target)}` in {args.config} to use it")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    try:
        from aggregator.worker.app import QUEUES, WorkerOptions, run_worker
    except ImportError as exc:  # the [postgres] extra is not installed
        raise AggregatorError(f"aggregator worker needs the PostgreSQL extra ({exc}): "
                              "pip install 'aggregator[postgres]'") from exc

    options = WorkerOptions(concurrency=args.concurrency, tick_s=args.tick, publish_delay_s=args.publish_delay,
                            queues=tuple(dict.fromkeys(args.queues)) or QUEUES, stop_timeout_s=args.stop_timeout,
                            heartbeat_s=args.heartbeat, workers=args.workers)
    run_worker(args.config, options, args.clock)
    return EXIT_OK


def cmd_why(args: argparse.Namespace) -> int:
    from aggregator.errors import StateError
    from aggregator.store import Store
    from aggregator.why import Answer, answer_json, format_answer, investigate

    config = load_config(args.config)
    try:  # read-only and without the lock: asking never waits for a run, nor changes the state
        with Store.open_read_only(config.state) as store:
            answer = investigate(config, store, args.article, args.now)
    except StateError:
        if may_hold_state(config.state):
            raise
        answer = Answer(args.article.strip(), ())  # no run stored anything yet
    print(json.dumps(answer_json(answer), indent=2, ensure_ascii=False) if args.json else format_answer(answer))
    return EXIT_OK if answer.findings else EXIT_NEVER_SEEN


_COMMANDS = {
    "run": cmd_run, "check": cmd_check, "sources": cmd_sources, "import-opml": cmd_import_opml, "add": cmd_add,
    "export-opml": cmd_export_opml, "prune": cmd_prune, "why": cmd_why, "migrate-state": cmd_migrate_state,
    "worker": cmd_worker,
}

if __name__ == "__main__":  # pragma: no cover
    entry()

__all__ = ["main", "build_parser"]
