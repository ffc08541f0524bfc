"""Helpers shared by the benchmarks: inputs, timing with medians, and a table printer."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

from deliverystate.simulate import simulated_events

__all__ = ["machine", "median_seconds", "print_table", "simulated_events"]


def median_seconds(
    run: Callable[[], object], repeats: int, setup: Callable[[], object] | None = None
) -> float:
    """The median wall time of ``run`` over ``repeats`` runs, ``setup`` untimed before each."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    """One line describing where the numbers were measured."""
    return (
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A plain-text table, so the output reads the same in CI logs and terminals."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)
