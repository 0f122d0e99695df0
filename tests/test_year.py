"""Issue 20, item 2: a simulated year. The real CLI runs once a simulated day for 400 days under a moved
clock (`main(clock=...)`), over loopback feeds that keep old items for months, rotate items out, change
unrelated fields, go quiet and come back, with a 3-day retention, the daily automatic prune and a
manual `aggregator prune` every 30 days, and Hexo posts on. bench/year.py runs longer spans."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import RecordingServer
from year_sim import FeedModel, Simulation

DAYS = 400

# Each its own category; `offset_min` keeps any two items' dates apart, so feed order is exact.
MODELS = (
    FeedModel("slow", every=30, keep=8, validators="etag", offset_min=60),  # a monthly blog: mostly 304s
    FeedModel("news", every=1, keep=10, validators="", offset_min=120),  # daily, rotates out after 10 days
    FeedModel("noisy", every=3, keep=10, validators="", churn="item", offset_min=180),  # items change daily
    FeedModel("builder", every=2, keep=6, validators="", churn="channel", offset_min=200),  # lastBuildDate
    FeedModel("dormant", every=4, keep=10, validators="last-modified", quiet=((40, 330),), offset_min=240),
    FeedModel("flaky", every=10, keep=15, validators="etag", down=((100, 250),), offset_min=300),
    FeedModel("undated", every=2, keep=5, validators="", dated=False),  # same bytes every other day
)
# The last day a listing grows as the aggregator sees it: slow reaches its 8 items on day 210, and flaky,
# down from day 100, comes back on day 250 listing its 15 (10 before). From then on feeds only rotate.
GROWING_UNTIL = 250


def test_a_simulated_year_publishes_every_item_once_and_the_state_stops_growing(
        tmp_path: Path, http_server: RecordingServer) -> None:
    sim = Simulation(http_server, tmp_path, MODELS, retention="3d", max_entries=4, prune_every=30)
    posts: dict[str, bytes] = {}
    titles_shown: set[str] = set()
    for day in range(DAYS):
        record = sim.run_day(day)
        assert record.exit_code == 0, (day, record.output)
        # every item is reported new exactly once: on the day a successful fetch first lists it
        assert record.new == record.expected_new, (day, record.output)
        # published feeds never lose an entry they should keep: each shows the newest of all ever listed
        for model in MODELS:
            assert record.feeds[model.name] == sim.expected_feed([model]), (day, model.name)
        assert record.feeds["all"] == sim.expected_feed(MODELS), day
        titles_shown.update(title for titles in record.feeds.values() for title in titles)
        # no Hexo post is written twice: a post, once written, keeps its name and bytes
        for name, body in posts.items():
            assert record.posts.get(name) == body, (day, name)
        posts = record.posts
    # every item listed to a successful fetch: all posted but flaky's first while down (gone by its return)
    assert sum(d.new for d in sim.days) == sum(len(seen) for seen in sim.known.values()) == 1014
    assert sum(m.posted(DAYS - 1) for m in MODELS) == 1015
    titles = [yaml.safe_load(body.split(b"---", 2)[1])["title"] for body in posts.values()]  # the front matter
    assert sorted(titles) == sorted(titles_shown)  # one post per item any feed showed, no two for one

    # the state stops growing once the feeds do: the rows a later day holds stay within what the days before
    # held, and so does the file but for a few pages. Those are the date samples kept per source for
    # time-zone detection (timezones.MAX_SAMPLES, 60 a source), which fill at the pace of the slowest feeds:
    # bench/year.py, 216 KB on day 300, 240 KB on day 1,500; and where freed pages are reused depends on
    # where a run's batched commits fall
    steady = [d for d in sim.days if d.day > GROWING_UNTIL]
    before = [d for d in sim.days if GROWING_UNTIL - 60 <= d.day <= GROWING_UNTIL]
    assert max(d.state_bytes for d in steady) <= max(d.state_bytes for d in before) + 8 * 4096
    for table in ("entries", "keys", "fingerprints"):
        assert max(d.rows[table] for d in steady) <= max(d.rows[table] for d in before) + 2, table
    assert max(d.rows["bodies"] for d in steady) <= len(MODELS) * 4 + 7  # what feeds show, and today's
