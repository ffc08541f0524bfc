"""The ``replay`` command as an operator meets it: exit statuses, --max-invalid, its stderr."""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from deliverystate import SQLiteStore
from deliverystate.cli import _replaycmd
from deliverystate.cli._commands import cli

from .test_cli import BAD, EXAMPLE_LINES, body
from .test_replay import SCRIPT

README = Path(__file__).parent.parent / "README.md"
GOOD = [line for line in EXAMPLE_LINES if line not in BAD]


def run(args: list[str], stdin: str | None = None) -> Any:
    """Invoke the command group in-process."""
    return CliRunner().invoke(cli, args, input=stdin)


def write(path: Path, lines: Iterable[str]) -> Path:
    """``lines`` as a file, one per line."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def listed(stderr: str, name: str) -> list[int]:
    """The line numbers stderr reports one by one for the file ``name``."""
    return [int(n) for n in re.findall(rf"^{re.escape(name)}:(\d+): ", stderr, flags=re.M)]


def test_replaying_a_text_file_exits_3_as_a_real_process(tmp_path: Path) -> None:
    """The README is no callback stream: the installed script exits 3 and lists five lines only."""
    assert SCRIPT is not None
    done = subprocess.run(
        [SCRIPT, "replay", str(README), "--db", str(tmp_path / "t.sqlite3")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    bad = sum(1 for line in README.read_text(encoding="utf-8").splitlines() if line.strip())
    assert listed(done.stderr, str(README)) == sorted(listed(done.stderr, str(README)))
    assert len(listed(done.stderr, str(README))) == 5
    assert re.search(rf"^{re.escape(str(README))}: {bad:,} invalid lines in all", done.stderr, re.M)
    assert done.stderr.rstrip().endswith("exit status 3")
    assert "Traceback" not in done.stderr


def test_a_stream_of_applied_and_recognised_lines_exits_0(tmp_path: Path) -> None:
    """Applied, duplicate, stale and ignored lines (the example without its broken ones) exit 0."""
    path = write(
        tmp_path / "good.jsonl", [*GOOD, *GOOD[:100], body("late", 5, 50), body("late", 2, 0)]
    )
    result = run(["replay", str(path), "--db", str(tmp_path / "g.sqlite3"), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["invalid_lines"] == 0
    assert data["ignored_events"] > 0
    assert data["outcomes"]["duplicate"] > 0
    assert data["outcomes"]["stale"] > 0
    assert data["stopped_at"] is None
    assert result.stderr == ""


def test_one_invalid_line_is_enough_for_exit_status_3(tmp_path: Path) -> None:
    """A single bad line among good ones: exit status 3, with --json too, after the summary."""
    path = write(tmp_path / "one.jsonl", [*GOOD[:50], "{broken", *GOOD[50:100]])
    db = str(tmp_path / "o.sqlite3")
    result = run(["replay", str(path), "--db", db, "--json"])
    assert result.exit_code == 3
    assert json.loads(result.stdout)["invalid_lines"] == 1
    assert listed(result.stderr, str(path)) == [51]
    assert "1 of 101 lines were invalid" in result.stderr
    assert "by reason" not in result.stderr  # five or fewer: the list is complete
    assert len(SQLiteStore(db).dead_letters()) == 1


def test_many_bad_lines_are_listed_five_then_counted_by_reason(tmp_path: Path) -> None:
    """Twelve bad lines of two kinds: the first five by number, then 7 and 5 by reason."""
    unknown = body("m", 5, 0).replace('"statusCode": 5', '"statusCode": 142')
    lines = [f"not json {n}" if n % 2 else unknown for n in range(1, 25)]
    path = write(tmp_path / "bad.jsonl", [*lines, "[", "also not json"])
    result = run(["replay", str(path), "--db", str(tmp_path / "b.sqlite3"), "--workers", "0"])
    assert result.exit_code == 3
    assert listed(result.stderr, str(path)) == [1, 2, 3, 4, 5]
    assert f"{path}: 26 invalid lines in all (21 more than shown), by reason:" in result.stderr
    assert re.search(r"^ +14  body: not JSON$", result.stderr, re.M)
    assert re.search(
        r"^ +12  event\.messageStatusUpdate\[N\]\.statusCode: unknown status code N$",
        result.stderr,
        re.M,
    )


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_max_invalid_stops_at_the_line_one_too_many(tmp_path: Path, chunk: int) -> None:
    """--max-invalid 2 applies up to the third bad line, whatever the batch size, and exits 3."""
    lines = [body("a", 2, 0), "{bad 1", body("b", 2, 0), "{bad 2", body("c", 2, 0)]
    lines += [body("d", 2, 0), "{bad 3", body("e", 2, 0), "{bad 4", body("f", 2, 0)]
    path = write(tmp_path / "s.jsonl", lines)
    db = tmp_path / "m.sqlite3"
    args = ["replay", str(path), "--db", str(db), "--chunk", str(chunk), "--max-invalid", "2"]
    result = run([*args, "--json"])
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["stopped_at"] == {"file": str(path), "line": 7}
    assert (data["lines"], data["invalid_lines"]) == (7, 3)
    assert f"stopped at line 7 of {path}: more than 2 lines were invalid" in result.stderr
    assert "The lines up to there stay applied; none after it was applied." in result.stderr
    store = SQLiteStore(db)
    assert sorted(s.message_id for s in store.iter_states()) == ["a", "b", "c", "d"]
    assert sorted(letter.payload for letter in store.dead_letters()) == [
        "{bad 1",
        "{bad 2",
        "{bad 3",
    ]


def test_max_invalid_counts_across_files_and_is_not_hit_by_as_many(tmp_path: Path) -> None:
    """Two bad lines in each of two files: --max-invalid 4 reads both, 3 stops in the second."""
    first = write(tmp_path / "1.jsonl", ["{x", body("a", 2, 0), "{y"])
    second = write(tmp_path / "2.jsonl", [body("b", 2, 0), "{z", "{w", body("c", 2, 0)])
    both = [str(first), str(second)]
    whole = run(["replay", *both, "--db", str(tmp_path / "w.sqlite3"), "--max-invalid", "4"])
    assert whole.exit_code == 3
    assert "stopped" not in whole.stderr
    cut = run(["replay", *both, "--db", str(tmp_path / "c.sqlite3"), "--max-invalid", "3"])
    assert cut.exit_code == 3
    assert f"stopped at line 3 of {second}" in cut.stderr
    assert SQLiteStore(tmp_path / "c.sqlite3").get("c") is None


def test_max_invalid_must_be_a_count() -> None:
    """A negative or non-numeric --max-invalid is a usage error, exit status 2."""
    for value in ("-1", "many"):
        result = run(["replay", "-", "--max-invalid", value], stdin="")
        assert result.exit_code == 2
        assert "--max-invalid" in result.stderr


def pretty(lines: Iterable[str]) -> list[str]:
    """Each JSON line pretty-printed over several lines, as jq or json.dumps(indent=2) write it."""
    return [part for line in lines for part in json.dumps(json.loads(line), indent=2).splitlines()]


def test_a_pretty_printed_file_gets_one_hint(tmp_path: Path) -> None:
    """Bodies written over several lines, in two files: one hint naming jq -c, at the first one."""
    first = write(tmp_path / "pretty.json", [GOOD[0], *pretty(GOOD[1:3])])
    second = write(tmp_path / "more.json", pretty(GOOD[3:5]))
    result = run(["replay", str(first), str(second), "--db", str(tmp_path / "p.sqlite3")])
    assert result.exit_code == 3
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    assert hints == [
        f"hint: {first}:2 looks like the start of a JSON body written over several lines; "
        f"replay reads one JSON body per line (jq -c . {first} writes them so)"
    ]


def test_a_body_cut_short_among_good_lines_gets_no_hint(tmp_path: Path) -> None:
    """A truncated body on its own line is a bad line, not a body spread over lines: no hint."""
    cut = GOOD[1][: GOOD[1].index(",") + 1]  # '{"integrationId": "...",': opens an object
    path = write(tmp_path / "cut.jsonl", [GOOD[0], cut, GOOD[2], "{", GOOD[3]])
    result = run(["replay", str(path), "--db", str(tmp_path / "c.sqlite3")])
    assert result.exit_code == 3
    assert listed(result.stderr, str(path)) == [2, 4]
    assert "hint:" not in result.stderr


def test_stdin_gets_a_line_counting_progress_display(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, a pipe (no size) shows lines and lines/s without a total."""
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, highlight=False)
    monkeypatch.setattr(_replaycmd, "err", terminal)
    result = run(["replay", "-", "--db", ":memory:", "--chunk", "2"], stdin="\n".join(GOOD[:5]))
    assert result.exit_code == 0, result.output
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "replaying <stdin>" in shown
    assert "5 lines" in shown
    assert "lines/s" in shown
    assert "━" not in shown  # no bar: the total is unknown


def interrupted_after(count: int) -> Any:
    """replay_stream over lines that raise KeyboardInterrupt when line ``count + 1`` is read."""
    replay_stream = _replaycmd.replay_stream

    def replay(lines: Iterable[bytes], *args: Any, **kwargs: Any) -> Any:
        def until() -> Iterator[bytes]:
            for number, line in enumerate(lines, start=1):
                if number > count:
                    raise KeyboardInterrupt
                yield line

        return replay_stream(until(), *args, **kwargs)

    return replay


def test_ctrl_c_says_what_is_committed_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the second file: the lines of whole batches are committed, said, and 130."""
    first = write(tmp_path / "1.jsonl", [body("a", 2, 0), body("b", 2, 0)])
    second = write(tmp_path / "2.jsonl", [body(m, 2, 0) for m in "cdefg"])
    db = tmp_path / "i.sqlite3"
    monkeypatch.setattr(_replaycmd, "replay_stream", interrupted_after(3))
    args = ["replay", str(first), str(second), "--db", str(db), "--chunk", "2", "--workers", "0"]
    result = run(args)
    assert result.exit_code == 130
    assert result.stdout == ""
    assert (
        f"interrupted: {second} is committed up to line 2 at least, the files before it in "
        "full (2 lines). Replay the same input again to finish" in result.stderr
    )
    assert sorted(s.message_id for s in SQLiteStore(db).iter_states()) == ["a", "b", "c", "d"]
    monkeypatch.undo()
    again = run(args)
    assert again.exit_code == 0
    assert len(list(SQLiteStore(db).iter_states())) == 7


def test_ctrl_c_before_a_batch_is_committed_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted inside the first batch: nothing of the file is claimed."""
    path = write(tmp_path / "s.jsonl", [body(m, 2, 0) for m in "abc"])
    monkeypatch.setattr(_replaycmd, "replay_stream", interrupted_after(1))
    result = run(["replay", str(path), "--db", str(tmp_path / "n.sqlite3"), "--workers", "0"])
    assert result.exit_code == 130
    assert f"interrupted: nothing of {path} was committed." in result.stderr


def test_the_dead_letter_count_is_what_the_dead_letter_holds(tmp_path: Path) -> None:
    """The same bad body on three lines (across batches) and one kept by an earlier run
    are one letter each: replay counts the letters the store holds, and the new ones."""
    db = tmp_path / "dl.sqlite3"
    first = write(tmp_path / "a.jsonl", ["{oops", body("a", 5, 0), "{oops", "{oops", "[1"])
    result = run(["replay", str(first), "--db", str(db), "--chunk", "2", "--json"])
    assert result.exit_code == 3, result.output
    held = len(SQLiteStore(db).dead_letters())
    summary = json.loads(result.stdout)
    assert (summary["invalid_lines"], summary["dead_letters"], held) == (4, 2, 2)
    assert summary["new_dead_letters"] == 2
    assert "4 of 5 lines were invalid, kept in the dead letter as 2 letters (2 new, " in (
        result.stderr
    )
    second = write(tmp_path / "b.jsonl", ["[1", "{new"])
    again = run(["replay", str(second), "--db", str(db)])
    assert len(SQLiteStore(db).dead_letters()) == 3
    assert "2 of 2 lines were invalid, kept in the dead letter as 2 letters (1 new, 1 kept " in (
        again.stderr
    )
