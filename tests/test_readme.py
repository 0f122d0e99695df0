"""The README's two commands are the truth: CI runs the test one word for word, and both install from the lock."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _first_commands() -> list[str]:
    return re.findall(r"```sh\n(python3 -m venv .venv[^\n]*)\n```", README)[:2]


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    run_command, test_command = _first_commands()
    assert run_command.endswith(".venv/bin/aggregator run")
    assert test_command.endswith(".venv/bin/python -m pytest -q")
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines
    assert not any("pip install" in line and "upgrade" in line for line in ci_lines)


def test_both_commands_install_the_hashed_lock() -> None:
    for command, lock in zip(_first_commands(), ("requirements.lock", "requirements-test.lock"), strict=True):
        assert f"pip install -q -r {lock}" in command
        text = (ROOT / lock).read_text(encoding="utf-8")
        pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", text, flags=re.M)
        assert len(pins) > 20
        assert text.count("--hash=sha256:") >= len(pins)
