"""The worker's jobs on procrastinate: the App, its four tasks, the queue's schema, and running it.

Tasks (queue in brackets):
- aggregator.tick [fetch], periodic every `tick_s` (one per period across the cluster: procrastinate
  records each periodic defer under a unique key): runs stalled jobs again, then enqueues one fetch job
  per host with due sources, skipping hosts that have one queued or running.
- aggregator.fetch_host [fetch], lock and queueing lock `host:<host:port>`: at most one runs per host in
  the whole cluster, and at most one waits.
- aggregator.publish [publish], lock and queueing lock `publish`, scheduled `publish_delay_s` after the
  change that asked for it: changes arriving meanwhile ride along (debounced); one publishes at a time.
- aggregator.publish_check [publish], periodic like the tick, on a machine that publishes: asks for a
  publish when its outputs are behind the store or the config (a config edit changes no article).

A worker whose store connection fails (the database restarted, say) stops with exit 1 rather than fail
every job: its service manager starts it again on fresh connections.

Give a machine `--queue fetch` to only fetch (no output folder needed there); the machines that also
take `publish` write the outputs, so the web server reads them from its own disk or a shared folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import procrastinate
from procrastinate.schema import SchemaManager

from aggregator.errors import AggregatorError, ConfigError, StateError
from aggregator.pipeline.housekeeping import check_output_dir, open_store
from aggregator.pipeline.workers import LazyPool
from aggregator.state_location import local_base
from aggregator.worker.jobs import (
    ConfigWatch,
    WorkerContext,
    fetch_host,
    outputs_stale,
    plan_tick,
    publish_if_changed,
)

log = logging.getLogger("aggregator")

QUEUES = ("fetch", "publish")
FETCH_TASK, PUBLISH_TASK, TICK_TASK = "aggregator.fetch_host", "aggregator.publish", "aggregator.tick"
PUBLISH_CHECK_TASK = "aggregator.publish_check"
# finished jobs are deleted as they end (a tick every 10 s is 3 million rows a year); failed and aborted
# ones are kept this long for `SELECT ... FROM procrastinate_jobs`, then deleted by a tick
KEEP_FAILED_JOBS_H = 7 * 24
CLEANUP_EVERY_S = 3600.0
TICK_PRIORITY = 10  # procrastinate's default is 0


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 20  # jobs (hosts) at once in this process
    tick_s: int = 10  # seconds between ticks; divides 60
    publish_delay_s: int = 5  # a publish waits this long for more changes to ride along
    queues: tuple[str, ...] = QUEUES
    stop_timeout_s: float = 30.0  # SIGTERM: running jobs get this long, then go back to the queue
    heartbeat_s: float = 10.0  # a worker silent for 3 heartbeats is dead: its jobs run again elsewhere
    workers: int = 0  # parser processes (0: one per core)

    def check(self) -> None:
        if not 1 <= self.tick_s <= 60 or 60 % self.tick_s:
            raise ConfigError(f"--tick {self.tick_s}: must divide a minute (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, "
                              "30 or 60 seconds)")
        unknown = set(self.queues) - set(QUEUES)
        if unknown or not self.queues:
            raise ConfigError(f"--queue {', '.join(sorted(unknown)) or '(none)'}: the queues are "
                              f"{' and '.join(QUEUES)}")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency {self.concurrency}: at least 1")

    @property
    def stalled_after_s(self) -> float:
        return 3 * self.heartbeat_s


def tick_cron(tick_s: int) -> str:
    """procrastinate's cron with its sixth field, seconds."""
    return "0 * * * * *" if tick_s == 60 else f"*/{tick_s} * * * * *"


def host_lock(host: str) -> str:
    return f"host:{host}"


class Worker:
    """One worker process: the context its jobs share, and the procrastinate App they are tasks of."""

    def __init__(self, url: str, ctx: WorkerContext, options: WorkerOptions) -> None:
        self.ctx, self.options = ctx, options
        self._last_cleanup = 0.0
        self.failure = ""  # why this worker stopped itself ("" while it runs, or stopped by a signal)
        connector = procrastinate.PsycopgConnector(
            conninfo=url, min_size=1, max_size=options.concurrency + 2,
            kwargs={"application_name": "aggregator worker queue"})
        self.app = app = procrastinate.App(connector=connector)

        # ticks and checks go before waiting fetch jobs (higher priority first): a busy queue must not delay them
        @app.periodic(cron=tick_cron(options.tick_s), periodic_id="tick", priority=TICK_PRIORITY)
        @app.task(name=TICK_TASK, queue="fetch")
        async def tick(timestamp: int) -> None:
            with self.stops_on_state_errors():
                await self.tick()

        @app.task(name=FETCH_TASK, queue="fetch")
        async def fetch(host: str, urls: list[str]) -> None:
            with self.stops_on_state_errors():
                await self.fetch(host, urls)

        @app.task(name=PUBLISH_TASK, queue="publish")
        async def publish() -> None:
            await asyncio.to_thread(publish_if_changed, self.ctx)  # its own connection each time

        @app.periodic(cron=tick_cron(options.tick_s), periodic_id="publish-check", queueing_lock="publish-check",
                      priority=TICK_PRIORITY)
        @app.task(name=PUBLISH_CHECK_TASK, queue="publish")
        async def publish_check(timestamp: int) -> None:
            with self.stops_on_state_errors():
                if outputs_stale(self.ctx):
                    await self.request_publish()

        self._fetch_task, self._publish_task = fetch, publish

    # --- the tasks ----------------------------------------------------------------------------------

    async def tick(self) -> int:
        """Enqueue a fetch job for each host with due sources and none queued or running; the number
        enqueued."""
        await self.run_stalled_again()
        busy = await self.busy_hosts()
        enqueued = 0
        for host, urls in plan_tick(self.ctx).items():
            if host in busy:
                continue
            if await self._defer(self._fetch_task, host_lock(host), {"host": host, "urls": urls}):
                enqueued += 1
        if time.monotonic() - self._last_cleanup >= CLEANUP_EVERY_S:
            self._last_cleanup = time.monotonic()
            await self.app.job_manager.delete_old_jobs(nb_hours=KEEP_FAILED_JOBS_H, include_failed=True,
                                                       include_cancelled=True, include_aborted=True)
        if enqueued:
            log.info("tick: %d hosts with due sources enqueued", enqueued)
        return enqueued

    async def fetch(self, host: str, urls: list[str]) -> None:
        result = await fetch_host(self.ctx, urls)
        log.info("host %s: %d sources fetched, %d failed, %d new, %d updated", host, result.fetched,
                 result.failed, result.new, result.updated)
        if result.changed:
            await self.request_publish()

    async def request_publish(self) -> None:
        await self._defer(self._publish_task, "publish", {}, delay_s=self.options.publish_delay_s)

    # --- the queue ----------------------------------------------------------------------------------

    async def _defer(self, task: procrastinate.tasks.Task[Any, Any, Any], lock: str, kwargs: dict[str, Any],
                     delay_s: float = 0) -> bool:
        """Enqueue unless a job of the same lock already waits (False then)."""
        try:
            await task.configure(lock=lock, queueing_lock=lock,
                                 schedule_in={"seconds": int(delay_s)} if delay_s else None).defer_async(**kwargs)
        except procrastinate.exceptions.AlreadyEnqueued:
            return False
        return True

    async def busy_hosts(self) -> set[str]:
        """Hosts with a fetch job waiting or running anywhere in the cluster."""
        rows = await self.app.connector.execute_query_all_async(
            "SELECT lock FROM procrastinate_jobs WHERE task_name = %(task)s AND status IN ('todo', 'doing')",
            task=FETCH_TASK)
        return {str(row["lock"]).removeprefix("host:") for row in rows if row["lock"]}

    async def run_stalled_again(self) -> None:
        """Jobs of a worker that stopped sending heartbeats (killed, its machine gone) go back to the queue:
        each is run again by whoever is free (its lock kept), and finds done what was stored before. When
        a job of the same lock already waits (a publish asked for since), the stalled one is only ended:
        the waiting one does its work."""
        stalled = await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=self.options.stalled_after_s)
        for job in stalled:
            what = f"job {job.id} ({job.task_name}{' ' + job.lock if job.lock else ''})"
            try:
                await self.app.job_manager.retry_job(job)
                log.warning("%s of a worker that stopped answering: queued again", what)
            except procrastinate.exceptions.UniqueViolation:
                await self.app.job_manager.finish_job(job, procrastinate.jobs.Status.ABORTED, delete_job=False)
                log.warning("%s of a worker that stopped answering: ended (the same job waits)", what)
            except procrastinate.exceptions.ConnectorException as exc:  # another tick got to it first
                log.debug("%s: not queued again: %s", what, exc)

    @contextlib.contextmanager
    def stops_on_state_errors(self) -> Iterator[None]:
        try:
            yield
        except StateError as exc:
            self.stop_failed(str(exc))
            raise

    def stop_failed(self, why: str) -> None:
        """Stop this worker as SIGTERM does (running jobs finish or go back), to exit with `why`."""
        if not self.failure:
            self.failure = why
            log.error("worker stopping: %s", why)
            os.kill(os.getpid(), signal.SIGTERM)

    async def serve(self) -> None:
        options = self.options
        watcher = _SideTaskFailures(self)
        logging.getLogger("procrastinate.worker").addHandler(watcher)
        async with self.app.open_async():
            await self.app.run_worker_async(
                queues=list(options.queues), concurrency=options.concurrency,
                name=f"aggregator:{','.join(options.queues)}",
                shutdown_graceful_timeout=options.stop_timeout_s, delete_jobs="successful",
                # a job deferred now wakes the workers (LISTEN/NOTIFY); a delayed publish comes due silently,
                # so this is how late it may start past --publish-delay (procrastinate's default: 5 s)
                fetch_job_polling_interval=1.0,
                update_heartbeat_interval=options.heartbeat_s, stalled_worker_timeout=options.stalled_after_s)


def _log_the_queue_as_ours() -> None:
    """procrastinate's log lines through our handler (format, --log-format json), its warnings and errors
    only (one line per job otherwise) unless -vv."""
    ours, queue = logging.getLogger("aggregator"), logging.getLogger("procrastinate")
    queue.handlers[:] = ours.handlers
    queue.propagate = False
    queue.setLevel(logging.DEBUG if ours.getEffectiveLevel() <= logging.DEBUG else logging.WARNING)


class _SideTaskFailures(logging.Handler):
    """procrastinate stops a worker whose side task (heartbeat, listener, periodic deferrer) failed, e.g. on
    a lost database, and returns as after a signal: its log record (action side_task_failed) tells them apart."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(logging.ERROR)
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", "") == "side_task_failed" and not self.worker.failure:
            self.worker.failure = record.getMessage()


def run_worker(config_path: str, options: WorkerOptions, clock: Callable[[], datetime]) -> None:
    """Run one worker until SIGTERM or SIGINT: its running jobs finish (or, past stop_timeout_s, go back
    to the queue), then it returns."""
    options.check()
    _log_the_queue_as_ours()
    watch = ConfigWatch(config_path)
    config = watch.current
    if "publish" in options.queues:  # the publish marker goes beside the config
        check_output_dir(str(Path(local_base(config.state, config.path)).parent), "state folder")
        check_output_dir(config.output.dir)
    with open_store(config, shared=True) as store, LazyPool(len(config.sources), options.workers) as pool:
        from aggregator.store import postgres

        postgres.create_once(config.state, "procrastinate_jobs", SchemaManager.get_schema())
        worker = Worker(config.state, WorkerContext(watch, store, pool, clock, options.workers), options)
        log.info("worker started: queues %s, concurrency %d, tick every %d s, %d sources",
                 " and ".join(options.queues), options.concurrency, options.tick_s, len(config.sources))
        asyncio.run(worker.serve())
    if worker.failure:
        raise AggregatorError(f"worker stopped: {worker.failure}")
