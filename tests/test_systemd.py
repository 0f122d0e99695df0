"""The shipped systemd units pass `systemd-analyze verify` (CI installs systemd)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "contrib" / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (.ci/run installs it)")


def _copy_units(src: Path, dst: Path) -> list[Path]:
    """Copy the units, pointing ExecStart at an executable that exists here (verify checks it)."""
    dst.mkdir(parents=True)
    copies = []
    for unit in sorted(src.glob("aggregator*.*")):  # aggregator.service, .timer, aggregator-worker.service
        text = unit.read_text(encoding="utf-8")
        text = text.replace("/opt/aggregator/venv/bin/aggregator", "/bin/true").replace("%h/.local/bin/aggregator",
                                                                                         "/bin/true")
        copy = dst / unit.name
        copy.write_text(text, encoding="utf-8")
        copies.append(copy)
    return copies


@needs_systemd
def test_system_units_verify(tmp_path: Path) -> None:
    units = _copy_units(UNITS, tmp_path / "system")
    assert {unit.name for unit in units} == {"aggregator.service", "aggregator.timer", "aggregator-worker.service"}
    result = subprocess.run([ANALYZE, "verify", *map(str, units)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "aggregator" not in result.stderr  # no warnings about our units


@needs_systemd
def test_user_units_verify(tmp_path: Path) -> None:
    units = _copy_units(UNITS / "user", tmp_path / "user")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    result = subprocess.run([ANALYZE, "--user", "verify", *map(str, units)], capture_output=True, text=True,
                            check=False, env=env)
    assert result.returncode == 0, result.stderr


def test_service_is_hardened_oneshot() -> None:
    service = (UNITS / "aggregator.service").read_text(encoding="utf-8")
    # a fixed system user, not DynamicUser: a dynamic user cannot own an output folder made ahead of the
    # first run, and its state lives under /var/lib/private (0700), where no web server can read outputs
    assert "DynamicUser" not in service
    for line in ("Type=oneshot", "User=aggregator", "StateDirectory=aggregator", "StateDirectoryMode=0700",
                 "EnvironmentFile=-/etc/aggregator/env", "ReadWritePaths=/srv/news/feeds", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "ReadWritePaths=",
                 "RestrictAddressFamilies=", "TimeoutStartSec="):
        assert line in service, line
    timer = (UNITS / "aggregator.timer").read_text(encoding="utf-8")
    for line in ("OnCalendar=*:0/15", "RandomizedDelaySec=", "Persistent=true"):
        assert line in timer, line


def test_worker_service_is_hardened_and_stops_gracefully() -> None:
    """The worker runs like the timer's service (same user, config, env file, sandbox), but long-lived:
    restarted when it exits, SIGTERM to the main process only (its parser processes must outlive the jobs
    finishing), and more time to stop than the worker's --stop-timeout (30 s by default)."""
    worker = _directives(UNITS / "aggregator-worker.service")
    oneshot = _directives(UNITS / "aggregator.service")
    assert worker["Type"] == ["simple"]
    assert worker["ExecStart"] == ["/opt/aggregator/venv/bin/aggregator worker --config /etc/aggregator/feeds.yaml"]
    assert worker["Restart"][0] in ("always", "on-failure") and "RestartSec" in worker
    assert worker["KillSignal"] == ["SIGTERM"] and worker["KillMode"] == ["mixed"]
    assert _seconds(worker["TimeoutStopSec"][0]) > 30
    assert "DynamicUser" not in worker
    for same in ("User", "Group", "EnvironmentFile", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
                 "NoNewPrivileges", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                 "RestrictAddressFamilies", "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute",
                 "SystemCallArchitectures", "UMask"):
        assert worker.get(same) == oneshot[same], same
    # optional ("-"): a machine that only fetches has neither folder; one that publishes writes both
    assert worker["ReadWritePaths"] == ["-/srv/news/feeds", "-/etc/aggregator/state"]


def _directives(unit: Path) -> dict[str, list[str]]:
    """A unit's Key=value lines (comments and section headers left out), each key's values in order."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def _seconds(span: str) -> float:
    units = {"s": 1, "min": 60}
    for suffix, factor in units.items():
        if span.endswith(suffix) and span[:-len(suffix)].isdigit():
            return int(span[:-len(suffix)]) * factor
    return float(span)


def test_readme_walkthrough_matches_the_units() -> None:
    """The README's steps make what the units expect: the user, an output folder that user owns, the
    env file, the config path; the user units' program and config paths are spelled out."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Running under systemd"):readme.index("### Serving the output")]
    assert "useradd --system" in section and " aggregator" in section
    assert "install -d -o aggregator -g aggregator" in section and "/srv/news/feeds" in section
    assert "mkdir -p /srv" not in section  # a root-owned output folder is what broke the first run
    assert "/etc/aggregator/env" in section and "EnvironmentFile" in section
    assert "pipx install" in section and "~/.config/aggregator/feeds.yaml" in section
    service = (UNITS / "aggregator.service").read_text(encoding="utf-8")
    assert "/etc/aggregator/feeds.yaml" in service and "/etc/aggregator/feeds.yaml" in section
