"""Helpers shared by the benchmarks: inputs, timing with medians, and a table printer."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

from deliverystate.simulate import simulated_events

__all__ = [
    "alternating_seconds",
    "machine",
    "median_seconds",
    "print_table",
    "simulated_events",
    "spread",
]


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


def alternating_seconds(
    runs: Mapping[str, Callable[[], object]],
    repeats: int,
    setup: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Wall times of each run over ``repeats`` rounds, the runs taking turns in every round.

    On a shared machine, load comes and goes: taking turns exposes every run to
    the same spells of it, which running one side's repeats first would not.
    ``setup`` runs untimed before each run.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            if setup is not None:
                setup()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def spread(count: int, times: list[float]) -> str:
    """``count`` per second at the median of ``times``, with the slowest and fastest run."""
    rates = sorted(count / t for t in times)
    return f"{statistics.median(rates):,.0f}/s ({rates[0]:,.0f}-{rates[-1]:,.0f})"


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
