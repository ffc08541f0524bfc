"""Web receiver benchmark: status callbacks per second over loopback HTTP.

Run: ``python bench/web.py [--quick] [--clients N]``.  Each run starts
``deliverystate.web.serve`` (uvicorn, one worker, a fresh SQLite file) in its
own process, as ``deliverystate serve`` does, and posts the valid callbacks of
a simulated stream (One API, Platform SMS and legacy bodies as JSON, batches
and duplicates included) from several concurrent keep-alive connections.  A
callback counts once its answer has come back, and every answer must be a 200:
the body was applied, one transaction per group of callbacks the receiver
takes together.  The figure is the median over runs; the client is a
minimal asyncio HTTP/1.1 client in this process, so it does not share the
server's interpreter (it does share the machine's cores).
Target: at least 3,000 callbacks per second.

The budget of docs/design.md section 6 is on CPU: the server's CPU per
callback against a bare Starlette app's CPU per request, on the same uvicorn
settings and load, measured taking turns with it: the bare app's cost over
ours at least 0.55 on SQLite and at least 0.30 on PostgreSQL (with
``--postgres URL`` or ``$DELIVERYSTATE_TEST_POSTGRES_DSN``, a fresh schema a run).

The same load is measured again against ``serve --workers 2`` (two uvicorn
worker processes on the one SQLite file), reported with its ratio to one
worker: on two cores the client shares the machine, and SQLite takes one
writer at a time.

Two reference rows say where the time goes: the same server on a
``MemoryStore`` (HTTP and the app, no disk), and ``Tracker.receive`` called in
a loop on SQLite without HTTP (the store's own ceiling).  The server's CPU per
callback is close to the sum of the two costs, because the event loop and the
store share one interpreter lock.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, print_table
from deliverystate import SQLiteStore, Tracker
from deliverystate.simulate import generate_callbacks

TARGET = 3_000
#: Bare app's CPU per request over the receiver's per callback, at least (design.md section 6).
SQLITE_CPU_RATIO = 0.55
POSTGRES_CPU_RATIO = 0.30
_PATH = "/callbacks/clickatell"


def _run(coroutine: Any) -> Any:
    """Run the client on uvloop when installed: a cheaper client leaves the server more CPU."""
    try:
        import uvloop  # noqa: PLC0415 - optional, like in uvicorn itself
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _flavour() -> str:
    """Which HTTP parser and event loop uvicorn will pick (it prefers httptools and uvloop)."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: The bare app the receiver's CPU is compared with: Starlette, one POST route that reads
#: the body and answers a JSON 200 of the receiver's shape, on the same uvicorn settings as
#: ``serve`` (its HTTP protocol, one worker, no access log).
_BARE_APP = f"""
import logging, sys
logging.disable(logging.WARNING)
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from deliverystate.web import http_protocol

ANSWER = {{"status": "applied", "events": 1, "applied": 1, "stale": 0, "duplicate": 0,
          "rejected": 0, "ignored": 0}}


async def take(request):
    await request.body()
    return JSONResponse(ANSWER)


async def healthz(request):
    return JSONResponse({{"status": "ok"}})


app = Starlette(routes=[Route("{_PATH}", take, methods=["POST"]), Route("/healthz", healthz)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False,
            log_level="warning", http=http_protocol())
"""


def start_server(db: str, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """``serve`` in a child process (``db`` "bare": the bare app); returns once it answers."""
    code = (
        "import logging, sys; logging.disable(logging.WARNING); "
        "from deliverystate.web import serve; "
        f"serve({db!r}, '127.0.0.1', {port}, workers={workers}, access_log=False)"
    )
    command = [sys.executable, "-c", code]
    if db == "bare":
        command = [sys.executable, "-c", _BARE_APP, str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if probe.recv(64).startswith(b"HTTP/1.1 200"):
                    return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server did not start within 30 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the child we started, politely first."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def requests_for(bodies: list[str]) -> list[bytes]:
    """Each body as a complete keep-alive HTTP/1.1 POST, built before the clock starts."""
    out = []
    for body in bodies:
        data = body.encode()
        head = (
            f"POST {_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        out.append(head + data)
    return out


async def _client(port: int, queue: list[bytes], latencies: list[float], bad: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue:
            request = queue.pop()
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200"):
                bad.append((head.split(b"\r\n", 1)[0] + b" " + body[:200]).decode())
    finally:
        writer.close()
        await writer.wait_closed()


async def _load(
    port: int, requests: list[bytes], clients: int
) -> tuple[float, list[float], list[str]]:
    queue = list(reversed(requests))  # pop() from the end keeps arrival order
    latencies: list[float] = []
    bad: list[str] = []
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, queue, latencies, bad) for _ in range(clients)))
    return time.perf_counter() - start, latencies, bad


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc (0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(
    requests: list[bytes],
    warmup: list[bytes],
    clients: int,
    *,
    memory: bool = False,
    workers: int = 1,
    target: str | None = None,
) -> tuple[float, float, list[float]]:
    """Post ``requests`` to a fresh server: seconds, server CPU seconds, each latency.

    ``target`` is the ``--db`` to serve ("bare": the bare Starlette app; a
    PostgreSQL URL), a fresh SQLite file by default.  With several workers
    the CPU figure is the supervising process's only.
    """
    with tempfile.TemporaryDirectory(prefix="ds-web-bench-") as workdir:
        port = free_port()
        db = target or (":memory:" if memory else str(Path(workdir) / "bench.sqlite3"))
        server = start_server(db, port, workers)
        try:
            _run(_load(port, list(warmup), 2 * workers))
            cpu_before = _process_cpu(server.pid)
            seconds, latencies, bad = _run(_load(port, requests, clients))
            cpu = _process_cpu(server.pid) - cpu_before
        finally:
            stop_server(server)
    if bad:
        raise RuntimeError(f"{len(bad)} callbacks were not answered 200, e.g. {bad[0]}")
    return seconds, cpu, latencies


def receive_alone(bodies: list[str], repeats: int) -> float:
    """Median seconds for ``Tracker.receive`` of every body on a fresh SQLite file, no HTTP."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="ds-web-bench-") as workdir:
            store = SQLiteStore(Path(workdir) / "alone.sqlite3")
            tracker = Tracker(store)
            data = [body.encode() for body in bodies]
            start = time.perf_counter()
            for body in data:
                tracker.receive(body)
            times.append(time.perf_counter() - start)
            store.close()
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Print the receiver benchmark table; exit 1 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI and smoke runs")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also serve PostgreSQL at URL (default: $DELIVERYSTATE_TEST_POSTGRES_DSN)",
    )
    args = parser.parse_args(argv)
    messages, repeats = (800, 3) if args.quick else (4_000, 5)
    references = 1 if args.quick else repeats  # --quick: one run of each reference row
    stream = [c.body for c in generate_callbacks(messages, seed=11) if c.valid]
    warmup = requests_for([c.body for c in generate_callbacks(20, seed=99) if c.valid])
    requests = requests_for(stream)
    count = len(requests)
    print(
        f"{machine()}; {count:,} callbacks for {messages:,} messages, "
        f"{args.clients} keep-alive clients; uvicorn ({_flavour()}) with one worker; "
        f"medians of {repeats}"
        + ("" if references == repeats else ", the 2-worker and memory rows one run")
    )
    dsn = args.postgres or os.environ.get("DELIVERYSTATE_TEST_POSTGRES_DSN")
    runs, bare_cpu, pg_runs, schemas = [], [], [], []
    try:
        for turn in range(repeats):  # taking turns: a busy moment slows each side alike
            bare_cpu.append(one_run(requests, warmup, args.clients, target="bare")[1] / count)
            runs.append(one_run(requests, warmup, args.clients))
            if dsn:
                schemas.append(f"ds_bench_web_{os.getpid()}_{turn}")
                pg_runs.append(
                    one_run(requests, warmup, args.clients, target=_pg(dsn, schemas[-1]))
                )
    finally:
        if schemas:
            _drop_schemas(dsn or "", schemas)
    rates = [count / seconds for seconds, _, _ in runs]
    rate = statistics.median(rates)
    cpu_per_callback = statistics.median(cpu / count for _, cpu, _ in runs)
    cuts = statistics.quantiles([t for _, _, latencies in runs for t in latencies], n=100)
    memory = statistics.median(
        count / one_run(requests, warmup, args.clients, memory=True)[0] for _ in range(references)
    )
    alone = count / receive_alone(stream, repeats)
    two = statistics.median(
        count / one_run(requests, warmup, args.clients, workers=2)[0] for _ in range(references)
    )
    bare = statistics.median(bare_cpu)
    cpu_rows, cpu_ok = _cpu_rows(bare, cpu_per_callback, pg_runs, count)
    print_table(
        "Server CPU against a bare Starlette app (same uvicorn settings, same load)",
        ["what", "CPU per request (us)", "bare / ours", "budget"],
        cpu_rows,
    )
    print_table(
        "Webhook receiver over loopback",
        ["what", "callbacks/s", "ratio to target", "target"],
        [
            [
                "POST /callbacks/clickatell on SQLite, 200 each",
                f"{rate:,.0f}",
                f"{rate / TARGET:.2f}",
                f">= {TARGET:,}/s",
            ],
            ["  runs", ", ".join(f"{r:,.0f}" for r in rates), "", ""],
            [
                "  latency p50 / p99 (ms)",
                f"{cuts[49] * 1000:.1f} / {cuts[98] * 1000:.1f}",
                "",
                "",
            ],
            ["  server CPU per callback (us)", f"{cpu_per_callback * 1e6:,.0f}", "", ""],
            [
                "the same with 2 workers (serve --workers 2)",
                f"{two:,.0f}",
                f"{two / rate:.2f} of 1 worker",
                "(reported)",
            ],
            ["same server on a MemoryStore (HTTP + app)", f"{memory:,.0f}", "", "(reference)"],
            ["Tracker.receive alone on SQLite, no HTTP", f"{alone:,.0f}", "", "(reference)"],
        ],
    )
    return 0 if rate >= TARGET and cpu_ok else 1


def _pg(dsn: str, schema: str) -> str:
    """The ``--db`` URL of ``schema`` on the server at ``dsn``."""
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


def _drop_schemas(dsn: str, schemas: list[str]) -> None:
    """Remove the schemas the PostgreSQL runs created."""
    import psycopg  # noqa: PLC0415 - the postgres extra

    with psycopg.connect(dsn, autocommit=True) as connection:
        for schema in schemas:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _cpu_rows(
    bare: float, sqlite: float, pg_runs: list[tuple[float, float, list[float]]], count: int
) -> tuple[list[list[str]], bool]:
    """The CPU table's rows (docs/design.md section 6's receiver budgets) and whether they held."""
    rows = [["bare Starlette app, same route and answer", f"{bare * 1e6:,.0f}", "1.00", ""]]
    ok = bare / sqlite >= SQLITE_CPU_RATIO
    rows.append(
        [
            "receiver on SQLite",
            f"{sqlite * 1e6:,.0f}",
            f"{bare / sqlite:.2f}",
            f">= {SQLITE_CPU_RATIO} {'ok' if ok else 'MISSED'}",
        ]
    )
    if pg_runs:
        pg = statistics.median(cpu / count for _, cpu, _ in pg_runs)
        pg_rate = statistics.median(count / seconds for seconds, _, _ in pg_runs)
        pg_ok = bare / pg >= POSTGRES_CPU_RATIO
        ok = ok and pg_ok
        rows.append(
            [
                f"receiver on PostgreSQL ({pg_rate:,.0f} callbacks/s)",
                f"{pg * 1e6:,.0f}",
                f"{bare / pg:.2f}",
                f">= {POSTGRES_CPU_RATIO} {'ok' if pg_ok else 'MISSED'}",
            ]
        )
    else:
        rows.append(["receiver on PostgreSQL", "not measured", "", "needs --postgres URL"])
    return rows, ok


if __name__ == "__main__":
    sys.exit(main())
