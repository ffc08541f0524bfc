"""Running pytest on a test file of its own, in a process of its own, as a user's project would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["run_pytest"]


def run_pytest(
    test_file: Path, *options: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest -q OPTIONS TEST_FILE`` in the file's folder; its output as text.

    The cache plugin is off unless an option names another plugin to switch
    off; ``env`` replaces the environment (default: this one).
    """
    command = [sys.executable, "-m", "pytest", "-q", *options, str(test_file)]
    if not any(option.startswith("no:") for option in options):
        command[4:4] = ["-p", "no:cacheprovider"]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=test_file.parent,
        timeout=600,
        check=False,
        env=dict(os.environ if env is None else env),
    )
