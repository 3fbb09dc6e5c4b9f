"""`gotcha process` on a batch: a progress bar on a terminal's stderr, none in a pipe or JSON.

The command runs as a real process with the real models, once with its output on a
pseudo-terminal (python's pty module) and once piped.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_path

from edge_agent.cli.progress import CLEAR, ProgressBar

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("data/scenes/e2e-dev/12국1720.jpg", "data/scenes/e2e-dev/25노6943.jpg")


def _command(*extra: str) -> list[str]:
    photos = [str(shared_path(p)) for p in PHOTOS]
    return [sys.executable, "-m", "edge_agent.cli.main", "process", "--no-lifecycle",
            *photos, *extra]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()  # keeps conftest's test twins of the models
           if not k.startswith("GOTCHA_") or k.startswith("GOTCHA_MODELS__")}
    env["GOTCHA_MODEL_DIR"] = str(shared_path("models"))
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_on_terminal(command: list[str], stdout_to: int | None = None) -> tuple[int, str]:
    """Run with stderr (and stdout, unless ``stdout_to`` is given) on one pseudo-terminal;
    everything it wrote there, and the code."""
    main, side = pty.openpty()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                            stdout=side if stdout_to is None else stdout_to, stderr=side,
                            env=_env(), cwd=ROOT)
    os.close(side)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            proc.kill()
            pytest.fail("gotcha process wrote nothing for 120 s")
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_shows_the_bar() -> None:
    code, seen = _run_on_terminal(_command())
    assert code == 0, seen
    assert "] 0/2 12국1720.jpg" in seen and "] 1/2 25노6943.jpg" in seen
    assert "[" + "#" * 14 + "-" * 14 + "]" in seen  # half done after the first photo
    assert "12국1720.jpg  " in seen  # the result lines are still there


def test_json_on_a_terminal_has_no_bar() -> None:
    code, seen = _run_on_terminal(_command("--json"))
    assert code == 0, seen
    assert "/2 " not in seen and CLEAR not in seen
    json.loads(seen.replace("\r\n", "\n"))  # stdout is the JSON document alone


def test_results_piped_on_with_a_terminal_stderr_have_no_bar(tmp_path: Path) -> None:
    """`gotcha process *.jpg | less`: the bar would scribble over the pager."""
    with (tmp_path / "out.txt").open("wb") as out:
        code, seen = _run_on_terminal(_command(), stdout_to=out.fileno())
    assert code == 0, seen
    assert "/2 " not in seen and CLEAR not in seen
    assert "12국1720.jpg  " in (tmp_path / "out.txt").read_text(encoding="utf-8")


def test_piped_output_has_no_bar() -> None:
    done = subprocess.run(_command(), capture_output=True, env=_env(), cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    for stream in (done.stdout.decode(), done.stderr.decode()):
        assert "\r" not in stream and "/2 " not in stream and "[#" not in stream
    assert "12국1720.jpg  " in done.stdout.decode()


def test_the_bar_wipes_itself_before_other_output() -> None:
    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return True

    term = Terminal()
    bar = ProgressBar(4, stream=term, width=8)  # type: ignore[arg-type]
    bar.show(1, "a\nb.jpg")
    assert term.text == f"{CLEAR}[##------] 1/4 a\\nb.jpg"  # a control character is escaped
    bar.clear()
    bar.clear()  # only once
    assert term.text.endswith(f"b.jpg{CLEAR}") and term.text.count(CLEAR) == 2
