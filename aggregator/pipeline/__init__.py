"""The run, as a package: stages.py keeps run() and the stage order readable top to bottom; each other module is one
part of a run named for what it does (ingest, full_text, workers, deferred_cleaning, publishing,
housekeeping, dry_run); results.py holds the values a run takes and gives."""

from aggregator.errors import AggregatorError
from aggregator.pipeline.housekeeping import check_output_dir, earlier_runs, migrate_state, open_store, prune
from aggregator.pipeline.publishing import categories_by_source, feed_contents, feed_rows, feed_specs, publish
from aggregator.pipeline.results import RunOptions, RunSummary, SourceReport
from aggregator.pipeline.stages import feed_titles, run, select_sources
from aggregator.pipeline.workers import POOL_THRESHOLD

__all__ = [
    "POOL_THRESHOLD", "AggregatorError", "RunOptions", "RunSummary", "SourceReport", "categories_by_source",
    "check_output_dir", "earlier_runs", "feed_titles", "feed_contents", "feed_rows", "feed_specs", "migrate_state", "open_store", "prune",
    "publish", "run", "select_sources",
]
