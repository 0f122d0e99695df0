"""Issue 20, item 1: an item keeps its identity while its source's last successful fetch listed it,
however that fetch was answered, so `retention` never brings old items back as new. Real CLI, real
SQLite file and a real PostgreSQL database, a real server on loopback, a moved clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RecordingServer
from year_sim import FeedModel, Simulation


@pytest.mark.parametrize("how", ["304", "same bytes", "known items skipped", "items parsed again", "failing"])
def test_old_items_never_come_back_as_new_after_retention(tmp_path: Path, http_server: RecordingServer,
                                                          how: str, state_location: str) -> None:
    """The issue's reproduction: retention 1d, max_entries 2, a 5-item feed that then lists the same items
    for 19 days (answered as `how`), daily automatic and a manual prune, then one new item: 1 new, not 4."""
    quiet = ((1, 20),)
    model = {
        "304": FeedModel("blog", every=1, first=-4, keep=6, quiet=quiet, validators="etag"),
        "same bytes": FeedModel("blog", every=1, first=-4, keep=6, quiet=quiet, validators=""),
        "known items skipped": FeedModel("blog", every=1, first=-4, keep=6, quiet=quiet, validators="",
                                         churn="channel"),
        "items parsed again": FeedModel("blog", every=1, first=-4, keep=6, quiet=quiet, validators="",
                                        churn="item"),
        "failing": FeedModel("blog", every=1, first=-4, keep=6, quiet=quiet, down=((1, 20),)),
    }[how]
    state = state_location if state_location.startswith("postgresql:") else ""  # (SQLite: the default file)
    sim = Simulation(http_server, tmp_path, [model], retention="1d", max_entries=2, prune_every=10, state=state)
    assert sim.run_day(0).new == 5
    for day in range(1, 20):
        record = sim.run_day(day)
        assert (record.exit_code, record.new) == (0, 0), record.output
    assert sim.days[10].rows["bodies"] == 2  # the three no feed shows were pruned to their identity
    last = sim.run_day(20)
    assert (last.exit_code, last.new) == (0, 1), last.output
    assert last.feeds["blog"] == ["blog story 5", "blog story 4"]
    # one Hexo post per item a feed showed (4 and 3 on day 0, 5 now), none written twice
    assert sorted(name.split("-")[5] for name in last.posts) == ["3", "4", "5"]
