"""`aggregator worker` (issue 23): long-running workers on a PostgreSQL state, any number on any machines.

The database is both the state and the job queue (procrastinate): nothing else is shared but the config
and, for the machines that publish, the output folder.

    tick (periodic, deduplicated in the database)
      └─ for each host with due sources: fetch job, queueing lock and lock = the host
           └─ fetch + parse + clean + store that host's due sources (the one-shot run's Ingest)
                └─ something changed: publish job (one queued at a time, run after a short delay)

One job per host at a time across the cluster (the job's lock), so a host's per_host budget, delay
and Retry-After/backoff hold cluster-wide as they do in one run. The store's writes are upserts keyed
by the articles' identities, each in a transaction under the database's write lock (store.postgres),
so a job run again after a crash stores nothing twice. due.py is pure (which hosts, which sources),
jobs.py does one job's work, app.py wires them to procrastinate and runs the worker.

The package imports nothing itself: procrastinate and psycopg (the postgres extra) load only when a
worker starts (aggregator.worker.app).
"""
