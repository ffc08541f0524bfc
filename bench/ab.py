"""An A/B of the write path against earlier commits, every side taking turns in one run.

Whoever touches the write path shows this (DEVELOPERS.md): the same
measurements of this checkout and of one or more earlier commits, in rounds
where each side runs once, so that a busy spell of a shared machine slows
every side alike; medians and ratios to the first side.  Each commit is
checked out into a temporary git worktree with a virtual environment of its
own (``pip install -e '.[test]'``, as that commit's README says); ``.`` is
this checkout with the interpreter running the script.

Only calls every version has are used: ``deliverystate replay FILE --db``,
``Tracker.apply_many``, ``PostgresStore(url)`` (its default schema, in a
database of the benchmark's own, ``ds_ab``, dropped and made again each
run), and ``serve(db, host, port, access_log=False)``, loaded by the client of
``bench/web.py`` (16 keep-alive connections) while the server's CPU is read
from ``/proc``.

* ``replay``: ``deliverystate replay`` of the stream into a fresh SQLite file, lines/s;
* ``apply_sqlite``, ``apply_pg``: ``Tracker.apply_many`` of the stream's events in
  batches of 5,000 into a fresh store, events/s;
* ``recv_sqlite``, ``recv_pg``: the receiver, callbacks/s and server CPU per callback.

Run ``python bench/ab.py cb1a0c7 8fe9b0b . [--measures replay,apply_pg] [--rounds 3]
[--messages 20000]``; PostgreSQL from ``--postgres URL`` or
``$DELIVERYSTATE_TEST_POSTGRES_DSN``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, print_table

ROOT = Path(__file__).resolve().parent.parent

MEASURES = ("replay", "apply_sqlite", "apply_pg", "recv_sqlite", "recv_pg")
_DATABASE = "ds_ab"

#: One measurement with whatever deliverystate its interpreter has; prints a JSON line.
_HARNESS = r"""
import json, os, socket, subprocess, sys, tempfile, time
from pathlib import Path

kind, stream, dsn, root = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
bindir = Path(sys.executable).parent


def fresh_schema():
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS deliverystate CASCADE")


def valid_bodies():
    from deliverystate import parse_callback
    bodies = []
    for line in stream.read_text().splitlines():
        try:
            bodies.append((line, parse_callback(line)))
        except Exception:
            pass
    return bodies


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if kind == "replay":
    lines = sum(1 for _ in stream.open())
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        subprocess.run(
            [str(bindir / "deliverystate"), "replay", str(stream), "--db", f"{workdir}/r.sqlite3"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - start
    print(json.dumps({"rate": lines / seconds}))
elif kind.startswith("apply"):
    from deliverystate import SQLiteStore, Tracker
    events = [event for _, parsed in valid_bodies() for event in parsed]
    with tempfile.TemporaryDirectory() as workdir:
        if kind == "apply_pg":
            from deliverystate.postgres import PostgresStore
            fresh_schema()
            store = PostgresStore(dsn)
        else:
            store = SQLiteStore(f"{workdir}/a.sqlite3")
        tracker = Tracker(store)
        start = time.perf_counter()
        for at in range(0, len(events), 5000):
            tracker.apply_many(events[at:at + 5000])
        seconds = time.perf_counter() - start
        store.close()
    print(json.dumps({"rate": len(events) / seconds}))
else:
    sys.path.insert(1, root)
    from bench import web
    requests = web.requests_for([line for line, _ in valid_bodies()][:12000])
    with tempfile.TemporaryDirectory() as workdir:
        port = web.free_port()
        if kind == "recv_pg":
            fresh_schema()
        db = dsn if kind == "recv_pg" else f"{workdir}/w.sqlite3"
        code = ("import logging; logging.disable(logging.WARNING); "
                "from deliverystate.web import serve; "
                f"serve({db!r}, '127.0.0.1', {port}, access_log=False)")
        server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                        probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: ab\r\n\r\n")
                        if probe.recv(64).startswith(b"HTTP/1.1 200"):
                            break
                except OSError:
                    time.sleep(0.1)
            web._run(web._load(port, list(requests[:20]), 2))
            before = cpu_seconds(server.pid)
            seconds, _, bad = web._run(web._load(port, requests, 16))
            cpu = cpu_seconds(server.pid) - before
        finally:
            server.terminate()
            server.wait(20)
    if bad:
        raise SystemExit(f"{len(bad)} callbacks not answered 200, e.g. {bad[0]}")
    print(json.dumps({"rate": len(requests) / seconds, "cpu_us": cpu / len(requests) * 1e6}))
"""


def checkout(ref: str, workdir: Path) -> Path:
    """The interpreter of ``ref`` installed in a worktree under ``workdir`` (``.``: this one)."""
    if ref == ".":
        return Path(sys.executable)
    tree = workdir / ref.replace("/", "_")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), ref], check=True
    )
    subprocess.run([sys.executable, "-m", "venv", str(tree / ".venv")], check=True)
    python = tree / ".venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-e", f"{tree}[test]"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return python


def database(dsn: str) -> str:
    """The URL of the benchmark's own database on the server at ``dsn``, created if missing."""
    import psycopg  # noqa: PLC0415 - the postgres extra

    with psycopg.connect(dsn, autocommit=True) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (_DATABASE,)
        ).fetchone()
        if found is None:
            connection.execute(f"CREATE DATABASE {_DATABASE}")
        user, host, port = connection.info.user, connection.info.host, connection.info.port
    return f"postgresql://{user}@{host}:{port}/{_DATABASE}"


def measure(python: Path, kind: str, stream: Path, dsn: str, harness: Path) -> dict[str, float]:
    """One run of ``kind`` with ``python``'s deliverystate."""
    done = subprocess.run(
        [str(python), str(harness), kind, str(stream), dsn, str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{kind} failed with {python}: {done.stderr[-1500:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure every side in turns; print each measure's medians and ratios to the first side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("refs", nargs="+", help="commits to compare; . is this checkout")
    parser.add_argument("--measures", default=",".join(MEASURES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args(argv)
    measures = args.measures.split(",")
    dsn = args.postgres or os.environ.get("DELIVERYSTATE_TEST_POSTGRES_DSN", "")
    if any(m.endswith("_pg") for m in measures) and not dsn:
        parser.error("the PostgreSQL measures need --postgres URL")
    with tempfile.TemporaryDirectory(prefix="ds-ab-") as temporary:
        workdir = Path(temporary)
        harness = workdir / "harness.py"
        harness.write_text(_HARNESS, encoding="utf-8")
        stream = workdir / "stream.jsonl"
        with stream.open("w") as out:
            subprocess.run(
                [
                    Path(sys.executable).parent / "deliverystate",
                    "simulate",
                    "-n",
                    str(args.messages),
                ],
                stdout=out,
                check=True,
            )
        own = database(dsn) if dsn else ""
        pythons = {}
        try:
            pythons = {ref: checkout(ref, workdir) for ref in args.refs}
            results = _rounds(pythons, measures, stream, own, harness, args.rounds)
        finally:
            for ref in pythons:
                if ref != ".":
                    subprocess.run(
                        [
                            "git",
                            "-C",
                            str(ROOT),
                            "worktree",
                            "remove",
                            "--force",
                            str(workdir / ref.replace("/", "_")),
                        ],
                        check=False,
                    )
    print(f"{machine()}; {args.messages:,} simulated messages; medians of {args.rounds} rounds")
    _print(results, args.refs, measures)
    return 0


def _rounds(
    pythons: dict[str, Path],
    measures: list[str],
    stream: Path,
    dsn: str,
    harness: Path,
    rounds: int,
) -> dict[tuple[str, str], list[dict[str, float]]]:
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for kind in measures:
            for ref, python in pythons.items():  # taking turns
                results.setdefault((kind, ref), []).append(
                    measure(python, kind, stream, dsn, harness)
                )
    return results


def _print(
    results: dict[tuple[str, str], list[dict[str, float]]], refs: list[str], measures: list[str]
) -> None:
    rows = []
    for kind in measures:
        first = statistics.median(r["rate"] for r in results[(kind, refs[0])])
        for ref in refs:
            runs = results[(kind, ref)]
            rate = statistics.median(r["rate"] for r in runs)
            cpu = [r["cpu_us"] for r in runs if "cpu_us" in r]
            rows.append(
                [
                    kind,
                    ref,
                    f"{rate:,.0f}/s",
                    f"{rate / first:.2f}",
                    f"{statistics.median(cpu):,.0f} us" if cpu else "",
                    ", ".join(f"{r['rate']:,.0f}" for r in runs),
                ]
            )
    print_table(
        "A/B (each round runs every side once)",
        ["measure", "commit", "median", f"vs {refs[0]}", "server CPU/callback", "runs"],
        rows,
    )


if __name__ == "__main__":
    sys.exit(main())
