"""An SQLite store a test can fill up or make read-only while it runs, and a tmpfs to fill.

``ConfinedStore`` is ``SQLiteStore`` with two switches on its own connection:
``confine`` stops the file from growing (``PRAGMA max_page_count``: writes that
need a new page fail with SQLITE_FULL, as on a full disk, anywhere the tests
run), and ``read_only`` reopens the file with ``mode=ro`` (SQLITE_READONLY, as
for a file that may not be written, even by root).  ``small_disk`` mounts a
real tmpfs of a few MiB, where the test may mount one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deliverystate import SQLiteStore

__all__ = ["ConfinedStore", "small_disk"]


class ConfinedStore(SQLiteStore):
    """``SQLiteStore`` whose file a test can stop from growing, or make read-only, and free."""

    def confine(self) -> None:
        """Let the file grow no more: a write that needs a new page fails (SQLITE_FULL)."""
        with self._lock:
            (pages,) = self._conn.execute("PRAGMA page_count").fetchone()
            self._conn.execute(f"PRAGMA max_page_count = {int(pages)}")

    def free(self) -> None:
        """Let the file grow again (as far as SQLite lets any file grow)."""
        with self._lock:
            self._conn.execute("PRAGMA max_page_count = 4294967294")

    def read_only(self, on: bool) -> None:
        """Reopen the file read-only (``mode=ro``: SQLITE_READONLY on a write), or read-write."""
        with self._lock:
            self._conn.close()
            mode = "ro" if on else "rw"
            self._conn = sqlite3.connect(
                f"file:{self.path}?mode={mode}",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute("PRAGMA busy_timeout = 30000")


@contextlib.contextmanager
def small_disk(under: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` (``2m``) mounted under ``under``; skip where none may be mounted.

    Needs root (or CAP_SYS_ADMIN) and ``mount``: a container or a developer's
    machine usually has neither, and the test is skipped saying so.  Unmounted
    after the test (lazily, should a file there still be open).
    """
    point = under / f"disk-{uuid.uuid4().hex[:8]}"
    point.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("a full-disk test mounts a tmpfs, and there is no mount program here")
    if mounted.returncode != 0:
        pytest.skip(f"a full-disk test mounts a tmpfs, which failed here: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
