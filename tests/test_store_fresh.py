"""Issue 20, item 4: a missing or zero-byte state file is refused when earlier runs show (the outputs,
the markers beside the state), so a lost state never silently republishes everything; `run --new-state`
starts over on purpose. Real CLI, real SQLite file, a real server on loopback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import RecordingServer
from year_sim import FeedModel, Simulation

from aggregator.store import Store


def _simulation(tmp_path: Path, http_server: RecordingServer) -> Simulation:
    sim = Simulation(http_server, tmp_path, [FeedModel("blog", every=1, first=-9, keep=10)], max_entries=5)
    assert sim.run_day(0).new == 10
    return sim


def _lose_state(state: Path, how: str) -> None:
    for extra in (state.with_name("state.db-wal"), state.with_name("state.db-shm")):
        extra.unlink(missing_ok=True)
    if how == "empty":
        state.write_bytes(b"")
    else:
        state.unlink()
    if how == "never written":  # e.g. by a command that opened it after it was lost
        Store.open(state).close()


@pytest.mark.parametrize("how", ["empty", "missing", "never written"])
@pytest.mark.parametrize("command", [("run", "--no-progress"), ("run", "--no-progress", "--dry-run"), ("prune",)])
def test_a_lost_state_is_refused_when_earlier_runs_show(tmp_path: Path, http_server: RecordingServer,
                                                        capsys: pytest.CaptureFixture[str], how: str,
                                                        command: tuple[str, ...]) -> None:
    sim = _simulation(tmp_path, http_server)
    state = tmp_path / "state" / "state.db"
    feed = (tmp_path / "out" / "blog.atom").read_bytes()
    _lose_state(state, how)
    capsys.readouterr()
    code, output = sim.command(1, *command)
    error = capsys.readouterr().err
    assert (code, output) == (1, "")
    assert error.count("\n") == 1 and str(state) in error and "--new-state" in error, error
    assert {"empty": "empty (0 bytes)", "missing": "missing", "never written": "never written by a run"}[how] in error
    assert (tmp_path / "out" / "blog.atom").read_bytes() == feed  # the feed keeps its 5 entries
    assert state.exists() == (how != "missing")  # a missing state is not created
    assert how != "empty" or state.stat().st_size == 0


def test_the_markers_beside_the_state_show_earlier_runs_too(tmp_path: Path, http_server: RecordingServer,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    sim = _simulation(tmp_path, http_server)
    shutil.rmtree(tmp_path / "out")
    _lose_state(tmp_path / "state" / "state.db", "empty")
    assert sim.command(1, "run", "--no-progress")[0] == 1
    assert "state.db.published shows earlier runs" in capsys.readouterr().err


def test_new_state_starts_over_on_purpose(tmp_path: Path, http_server: RecordingServer) -> None:
    sim = _simulation(tmp_path, http_server)
    _lose_state(tmp_path / "state" / "state.db", "empty")
    code, output = sim.command(1, "run", "--no-progress", "--new-state")
    assert code == 0 and "articles: 10 new" in output
    assert sim.run_day(2).exit_code == 0  # and from then on runs as usual


def test_a_first_run_needs_no_flag(tmp_path: Path, http_server: RecordingServer) -> None:
    sim = Simulation(http_server, tmp_path, [FeedModel("blog", every=1, keep=3)])
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.db").write_bytes(b"")  # created empty by hand, say
    assert sim.run_day(0).exit_code == 0


def test_a_config_without_sources_is_never_refused(tmp_path: Path) -> None:
    """Its runs write no source to the state, and there is nothing to lose."""
    from aggregator.cli import main

    config = tmp_path / "feeds.yaml"
    config.write_text(f"output: {{dir: {tmp_path / 'out'}}}\nstate: {tmp_path / 'state.db'}\n"
                      "categories:\n  a: {title: A}\nsources: []\n", encoding="utf-8")
    assert main(["run", "--config", str(config), "--no-progress", "-q"]) == 0
    assert (tmp_path / "out" / "all.atom").exists()
    assert main(["run", "--config", str(config), "--no-progress", "-q"]) == 0
