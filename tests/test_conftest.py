"""Tests for the suite's own gate on optional system programs (``tests/conftest.py``)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from .conftest import system_program
from .runs import run_pytest

TESTS = Path(__file__).parent


def test_a_missing_program_skips_saying_what_it_is_and_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the program on PATH and outside CI, the test is skipped with the install hint."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        system_program("dot", "Graphviz", "apt-get install graphviz")
    assert str(skipped.value) == "needs Graphviz ('dot' is not on PATH; apt-get install graphviz)"


def test_a_missing_program_fails_in_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With CI set, a missing program fails the test instead: CI installs it, so it must run."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        system_program("dot", "Graphviz", "apt-get install graphviz")
    assert "needs Graphviz" in str(failed.value)
    assert "may not skip" in str(failed.value)


def test_a_program_on_path_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An executable of that name on PATH is returned, in CI or not."""
    program = tmp_path / "dot"
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    assert system_program("dot", "Graphviz", "apt-get install graphviz") == str(program)


def run_graphviz_tests(tmp_path: Path, ci: bool) -> str:
    """``pytest -m graphviz`` over the suite with nothing on PATH (so no ``dot``); its output."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(tmp_path)  # pytest runs as sys.executable by its full path
    if ci:
        env["CI"] = "true"
    # -n 0: in one process; the suite's own -n auto would start workers that each collect it all
    done = run_pytest(TESTS, "-m", "graphviz", "-rsfE", "-n", "0", env=env)
    assert done.returncode == (1 if ci else 0), done.stdout[-3000:]
    return done.stdout


def test_the_graphviz_tests_skip_without_dot_and_fail_without_it_in_ci(tmp_path: Path) -> None:
    """Every test marked graphviz skips with the reason when dot is missing; in CI each fails."""
    local = run_graphviz_tests(tmp_path, ci=False)
    skipped = re.findall(r"^SKIPPED \[\d+\] ([^:\s]+):\d+: (.*)$", local, flags=re.M)
    assert len(skipped) >= 6, local[-3000:]
    assert {reason for _, reason in skipped} == {
        "needs Graphviz ('dot' is not on PATH; apt-get install graphviz / brew install graphviz)"
    }
    assert "test_readme.py" in {Path(where).name for where, _ in skipped}
    assert re.search(rf"\b{len(skipped)} skipped\b", local)
    assert " passed" not in local
    in_ci = run_graphviz_tests(tmp_path, ci=True)
    assert re.search(rf"\b{len(skipped)} (failed|errors?)\b", in_ci), in_ci[-3000:]
    assert "may not skip" in in_ci
