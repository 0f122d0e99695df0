"""Unattended operation (issue 20, items 10 and 11): read-only state folders, a symlinked lock file,
a reader that closes the pipe, and a full disk, each met with one clear line and never a traceback.

Read-only folders and full disks are real: as root, a read-only bind mount and a tiny tmpfs (skipped
where mounting is not allowed); as a user, a folder without write permission."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import yaml_config

from aggregator.cli import main
from aggregator.errors import StateError, naming
from aggregator.store import Store

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "config" / "samples"


def write_config(tmp_path: Path, *, state: str = "state/state.db", out: str = "out", health: str = "") -> Path:
    lines = [f"output: {{dir: {out}}}", f"state: {state}", "categories: {news: {title: News}}", "sources:",
             f"  - {{url: '{SAMPLES / 'huffpost-canada.xml'}', category: news, name: huff}}",
             f"  - {{url: '{SAMPLES / 'tenderlovemaking.xml'}', category: news, name: tender}}"]
    if health:
        lines.insert(2, f"health: {health}")
    return yaml_config(tmp_path, lines)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aggregator.cli", *args], capture_output=True, text=True,
                          check=False, timeout=120)


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    mounted: list[Path] = []
    yield mounted
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def read_only(mounts: list[Path]) -> Iterator[Callable[[Path], None]]:
    """Makes a folder read-only for this process: a read-only bind mount as root, chmod otherwise."""
    chmodded: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            chmodded.append(folder)
            return
        if not _mount("--bind", str(folder), str(folder)):
            pytest.skip("root without permission to mount: cannot make a read-only folder")
        mounts.append(folder)
        if not _mount("-o", "remount,bind,ro", str(folder)):
            pytest.skip("cannot remount read-only")

    yield make
    for folder in chmodded:
        folder.chmod(0o755)


@pytest.fixture
def tiny_disk(mounts: list[Path]) -> Callable[[Path, int], None]:
    """Mounts a tmpfs of `size` bytes on a folder: a real full disk (ENOSPC), needs root."""

    def make(folder: Path, size: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
            pytest.skip("mounting a tmpfs needs root")
        mounts.append(folder)

    return make


# --- item 10: a read-only state folder ---------------------------------------------------------


def test_sources_reads_a_read_only_state_and_runs_refuse_it_in_one_line(
        tmp_path: Path, read_only: Callable[[Path], None], capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["run", "--config", str(config), "--no-progress", "-q"]) == 0
    capsys.readouterr()
    state = tmp_path / "state"
    read_only(state)

    assert main(["sources", "--config", str(config), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["huff"]["items"] > 0 and rows["tender"]["last_success"]

    for extra in ([], ["--dry-run"]):
        assert main(["run", "--config", str(config), "--no-progress", "--force", *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"state folder {state}: not writable" in err
    assert sorted(p.name for p in state.iterdir()) == ["health.json", "state.db", "state.db.lock",
                                                      "state.db.pruned", "state.db.published"]


def test_sources_before_any_run_lists_sources_and_creates_no_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["sources", "--config", str(config)]) == 0
    assert "huff" in capsys.readouterr().out
    assert not (tmp_path / "state" / "state.db").exists()


# --- item 11: the lock file ---------------------------------------------------------------------


def test_a_symlinked_lock_file_is_refused_and_its_target_left_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.db.lock").symlink_to(victim)

    with pytest.raises(StateError, match="symbolic link"):
        Store.open(tmp_path / "state" / "state.db")
    config = write_config(tmp_path)
    assert main(["run", "--config", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "state.db.lock is a symbolic link" in err and "Traceback" not in err
    assert victim.read_text(encoding="utf-8") == "keep me\n"


# --- item 11: a reader that leaves early ------------------------------------------------------


@pytest.mark.parametrize("command", [["sources"], ["sources", "--json"], ["export-opml"], ["check", "--schema"]])
def test_a_closed_stdout_pipe_ends_the_command_quietly(tmp_path: Path, command: list[str]) -> None:
    config = write_config(tmp_path)
    with subprocess.Popen([sys.executable, "-m", "aggregator.cli", *command, "--config", str(config)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # `| head -0`: every write meets a closed pipe
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 0
    assert err == ""


# --- item 11: a full disk names its file --------------------------------------------------------


def test_a_write_that_meets_a_full_disk_names_its_file() -> None:
    """/dev/full answers every write with ENOSPC: the narrowest real full disk there is."""
    with pytest.raises(OSError) as caught, naming("/srv/feeds/news.atom"), open("/dev/full", "wb") as sink:
        sink.write(b"x" * 65536)
        sink.flush()
    assert caught.value.filename == "/srv/feeds/news.atom" and "No space left" in str(caught.value)


def test_full_output_and_state_disks_are_named(tmp_path: Path, tiny_disk: Callable[[Path, int], None],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    tiny_disk(tmp_path / "out", 40 * 1024)
    config = write_config(tmp_path, health="health/health.json")
    assert main(["run", "--config", str(config), "--no-progress", "-q"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and f"{tmp_path / 'out'}/" in err and ".atom" in err
    assert "Traceback" not in err and err.count("\n") == 1

    tiny_disk(tmp_path / "small-state", 64 * 1024)
    config = write_config(tmp_path, state="small-state/state.db", out="out2", health="health/health.json")
    assert main(["run", "--config", str(config), "--no-progress", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"state {tmp_path / 'small-state' / 'state.db'}: disk full" in err and "Traceback" not in err

    tiny_disk(tmp_path / "health", 4096)
    config = write_config(tmp_path, state="state3/state.db", out="out3", health="health/full/health.json")
    with open(tmp_path / "health" / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
        while True:  # fill it to the last block
            filler.write(b"x" * 1024)
    assert main(["run", "--config", str(config), "--no-progress", "-q"]) == 0  # monitoring never fails a run
    err = capsys.readouterr().err
    assert f"health file {tmp_path / 'health' / 'full' / 'health.json'} not written" in err


def test_import_opml_onto_a_full_disk_names_the_config(tmp_path: Path, tiny_disk: Callable[[Path, int], None],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    outlines = "".join(f'<outline type="rss" text="Feed {i}" xmlUrl="https://f{i}.example/{"x" * 200}.xml"/>'
                       for i in range(200))
    opml = tmp_path / "subscriptions.opml"
    opml.write_text(f'<opml version="2.0"><head/><body>{outlines}</body></opml>', encoding="utf-8")
    tiny_disk(tmp_path / "conf", 8192)
    config = tmp_path / "conf" / "feeds.yaml"
    assert main(["import-opml", str(opml), "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err == f"aggregator: {config}.tmp: No space left on device\n"


def test_sources_on_a_state_of_an_older_schema_migrates_it_as_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_store_migrations import SOURCE, make_v1

    (tmp_path / "state").mkdir()
    make_v1(tmp_path / "state" / "state.db")
    config = yaml_config(tmp_path, ["state: state/state.db", "categories: {news: {title: News}}", "sources:",
                                    f"  - {{url: '{SOURCE}', category: news, name: sina}}"])
    assert main(["sources", "--config", str(config), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "sina" and row["items"] == 1
