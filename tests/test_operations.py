"""Running it unattended: logs, health and metrics files, clear exits for unusable folders, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.store import Store
from conftest import RecordingServer, Route

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "config" / "samples" / "huffpost-canada.xml"


def config_with(tmp_path: Path, server: RecordingServer, **extra: str) -> Path:
    server.routes["/ok.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, SAMPLE.read_bytes())
    server.routes["/bad.xml"] = Route(503, {"Content-Type": "text/plain", "Retry-After": "3600"}, b"busy")
    lines = [f"output: {{dir: {extra.get('out', 'out')}}}", f"state: {extra.get('state', 'state/state.db')}",
             "metrics: metrics/aggregator.prom", "fetch: {retries: 0}", "categories: {news: {title: News}}",
             "sources:", f"  - {{url: '{server.url('/ok.xml')}', category: news, name: good}}",
             f"  - {{url: '{server.url('/bad.xml')}', category: news, name: busy}}"]
    path = tmp_path / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aggregator.cli", *args], capture_output=True, text=True,
                          check=False, env={**os.environ, **(env or {})}, timeout=120)


def test_health_and_metrics_files(tmp_path: Path, http_server: RecordingServer,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with(tmp_path, http_server)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    summary = capsys.readouterr().out
    assert "1 fetched" in summary and "1 failed" in summary and "took" in summary
    health = json.loads((tmp_path / "state" / "health.json").read_text(encoding="utf-8"))
    by_name = {s["name"]: s for s in health["sources"]}
    assert by_name["good"]["result"] == "fetched" and by_name["good"]["stale"] is False
    assert by_name["busy"]["result"] == "failed" and "503" in by_name["busy"]["error"]
    assert by_name["busy"]["failures"] == 1 and by_name["busy"]["stale"] is True
    assert health["summary"]["failed"] == 1 and health["summary"]["new"] > 0
    metrics = (tmp_path / "metrics" / "aggregator.prom").read_text(encoding="utf-8")
    assert 'aggregator_sources{result="failed"} 1' in metrics
    assert f'aggregator_source_failures{{url="{http_server.url("/bad.xml")}"}} 1' in metrics


def test_json_logs_and_journal_friendly_text(tmp_path: Path, http_server: RecordingServer) -> None:
    config = config_with(tmp_path, http_server)
    result = run_cli("run", "--config", str(config), "--log-format", "json", "--force")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1  # every source error once per run, one line
    assert "'busy'" in errors[0]["message"] and http_server.url("/bad.xml") in errors[0]["message"]

    fresh = config_with(tmp_path, http_server, state="state2/state.db")  # the busy source's Retry-After holds
    journal = run_cli("run", "--config", str(fresh), "--force", "--new-state", env={"JOURNAL_STREAM": "8:1234"})
    line = next(line for line in journal.stderr.splitlines() if "busy" in line)
    assert line.startswith("ERROR source 'busy'")  # no timestamp of our own under journald


def test_unwritable_output_and_state_folders_exit_1_with_a_clear_message(
        tmp_path: Path, http_server: RecordingServer, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    config = config_with(tmp_path, http_server, out="a-file/out")
    assert main(["run", "--config", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "output folder" in err and "a-file/out" in err and "not writable" in err and "Traceback" not in err
    assert http_server.requests == []  # nothing fetched

    config = config_with(tmp_path, http_server, state="a-file/state.db")
    assert main(["run", "--config", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "state" in err and "a-file" in err and "Traceback" not in err


def test_a_second_run_waits_then_exits_3(tmp_path: Path, http_server: RecordingServer) -> None:
    config = config_with(tmp_path, http_server)
    with Store.open(tmp_path / "state" / "state.db"):  # another run holds the lock
        result = run_cli("run", "--config", str(config), "--lock-timeout", "1")
    assert result.returncode == 3
    assert "lock" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.atom"))


def test_progress_bar_only_on_a_terminal(tmp_path: Path, http_server: RecordingServer) -> None:
    import pty

    config = config_with(tmp_path, http_server)
    plain = run_cli("run", "--config", str(config), "--force")
    assert "source/s" not in plain.stderr and "\r" not in plain.stderr  # a pipe: no bar

    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "aggregator.cli", "run", "--config", str(config), "--force"],
                               stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = output.decode("utf-8", "replace")
    assert "source/s" in text or "/2 [" in text, text  # tqdm drew a bar
    assert "articles:" in text


def test_check_online_reports_each_source(tmp_path: Path, http_server: RecordingServer,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with(tmp_path, http_server)
    http_server.routes["/page"] = Route(200, {"Content-Type": "text/html"},
                                        b'<html><head><link rel="alternate" type="application/rss+xml" '
                                        b'href="/feed.rss"></head></html>')
    text = config.read_text(encoding="utf-8") + f"  - {{url: '{http_server.url('/page')}', category: news}}\n"
    config.write_text(text, encoding="utf-8")
    assert main(["check", "--config", str(config), "--online"]) == 1  # some sources failed
    out = capsys.readouterr().out
    assert "OK    good" in out and "HTTP 200" in out and "rss20" in out and " items" in out
    assert "FAIL  busy" in out and "503" in out
    assert "not a feed" in out and http_server.url("/feed.rss") in out
    assert not (tmp_path / "state").exists()  # state untouched


def test_check_online_processes_each_body_as_a_run_would(tmp_path: Path, http_server: RecordingServer,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The probe runs the run's own parse, clean and filter step: the config's filters count, and the
    items it reports are those a run would see; nothing is stored."""
    config = config_with(tmp_path, http_server)
    plain = main(["check", "--config", str(config), "--online"])
    listed = capsys.readouterr().out
    config.write_text(config.read_text(encoding="utf-8") + "filters:\n  - drop: {title: '.'}\n", encoding="utf-8")
    assert plain == main(["check", "--config", str(config), "--online"]) == 1  # busy fails both times
    filtered = capsys.readouterr().out
    items = listed.split("OK    good", 1)[1].split(" items", 1)[0].rsplit(", ", 1)[1]
    assert int(items) > 0
    assert f"{items} items ({items} dropped by filters)" in filtered
    assert not (tmp_path / "state").exists() and not (tmp_path / "out").exists()


def test_sources_table_and_json(tmp_path: Path, http_server: RecordingServer,
                                capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with(tmp_path, http_server)
    assert main(["run", "--config", str(config), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sources", "--config", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["NAME", "CATEGORY", "STATUS"]
    good = next(line for line in table if line.startswith("good"))
    busy = next(line for line in table if line.startswith("busy"))
    assert "200" in good and "failing" in busy and "503" in busy
    assert main(["sources", "--config", str(config), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["good"]["items"] > 0 and rows["busy"]["failures"] == 1 and rows["busy"]["next_due"]


def test_a_burst_of_old_items_is_held_until_accepted(tmp_path: Path, http_server: RecordingServer,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def feed(items: range) -> bytes:
        body = "".join(f"<item><guid>https://b.example/{i}</guid><title>Story number {i}</title>"
                       f"<link>https://b.example/{i}</link><pubDate>{'06 Jun' if i >= 100 else '01 Jan'} 2024 "
                       f"{i % 24:02d}:00:00 GMT</pubDate>"
                       "</item>" for i in items)
        return f'<rss version="2.0"><channel><title>b</title>{body}</channel></rss>'.encode()

    http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, feed(range(100, 103)))
    path = tmp_path / "feeds.yaml"
    path.write_text(f"output: {{dir: out, max_entries: 0, max_per_source: 0}}\nstate: s.db\nburst_threshold: 5\n"
                    f"categories: {{news: {{title: News}}}}\nsources:\n"
                    f"  - {{url: '{http_server.url('/b.xml')}', category: news, name: bursty}}\n", encoding="utf-8")
    assert main(["run", "--config", str(path), "--no-progress"]) == 0
    http_server.routes["/b.xml"] = Route(200, {"Content-Type": "application/rss+xml"}, feed(range(0, 103)))
    assert main(["run", "--config", str(path), "--no-progress", "--force"]) == 0
    out = capsys.readouterr().out
    assert "100 held back" in out and "--accept-burst 'bursty'" in out
    assert len(list((tmp_path / "out" / "news.atom").read_text(encoding="utf-8").split("<entry>"))) - 1 == 3
    assert main(["run", "--config", str(path), "--no-progress", "--force", "--accept-burst", "bursty"]) == 0
    assert "100 new" in capsys.readouterr().out
    assert len((tmp_path / "out" / "news.atom").read_text(encoding="utf-8").split("<entry>")) - 1 == 103
