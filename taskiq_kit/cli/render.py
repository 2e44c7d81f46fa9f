"""Output: rich tables for people, JSON for scripts, errors on stderr, a progress bar."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from taskiq_kit.inspect.protocols import ProgressCallback


def to_data(value: Any) -> Any:
    """``value`` as plain JSON data (pydantic models dumped in JSON mode)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(key): to_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_data(item) for item in value]
    return value


def instant(value: float | None) -> str:
    """A unix time as local ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    if value is None or not math.isfinite(value):
        return "-"
    return datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def ago(value: float | None, now: float | None = None) -> str:
    """How long ago (or ahead) ``value`` is, in words: ``12s ago``, ``in 3m``."""
    if value is None or not math.isfinite(value):
        return "-"
    delta = (time.time() if now is None else now) - value
    seconds = abs(delta)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds >= size:
            text = f"{seconds / size:.0f}{unit}"
            break
    else:
        text = f"{seconds:.0f}s"
    return f"{text} ago" if delta >= 0 else f"in {text}"


class Output:
    """Where a command writes: stdout for its answer, stderr for notes, errors and progress."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        # Piped output is not wrapped to 80 columns: a task id must stay on one line for grep.
        terminal = Console().is_terminal
        self.out = Console(soft_wrap=False, highlight=False, width=None if terminal else 1000)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def data(self, value: Any) -> None:
        """Print ``value`` as JSON on stdout (one document)."""
        sys.stdout.write(json.dumps(to_data(value), indent=2, sort_keys=False) + "\n")
        sys.stdout.flush()

    def table(
        self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str]]
    ) -> None:
        """Print a table on stdout."""
        if title is not None:
            self.line(title)
        table = Table(show_edge=False, pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        self._print(table)

    def pairs(self, rows: Sequence[tuple[str, str]]) -> None:
        """Print ``field  value`` lines on stdout."""
        table = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in rows:
            table.add_row(key, value)
        self._print(table)

    def _print(self, table: Table) -> None:
        if self.out.is_terminal:
            self.out.print(table)
            return
        # Piped: no padding after the last column (diffs and `grep -x` stay clean).
        with self.out.capture() as captured:
            self.out.print(table)
        lines = captured.get().splitlines()
        sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
        sys.stdout.flush()

    def line(self, text: str) -> None:
        """Print ``text`` on stdout (markup off)."""
        self.out.print(text, markup=False)

    def note(self, text: str) -> None:
        """Print ``text`` on stderr (for people; scripts read stdout)."""
        self.err.print(text, markup=False)

    def error(self, kind: str, message: str, code: int) -> None:
        """Report an error on stderr: JSON with ``--json``, else one line."""
        if self.as_json:
            payload = {"error": {"type": kind, "message": message, "exit_code": code}}
            sys.stderr.write(json.dumps(payload) + "\n")
        else:
            self.err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)

    @contextmanager
    def progress(self, description: str) -> Iterator[ProgressCallback]:
        """A progress bar on stderr while the block runs, fed by the ``(done, total)`` callback.

        Shown only on a terminal and without ``--json``; the callback works either way.
        """
        shown = self.err.is_terminal and not self.as_json
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.err,
            disable=not shown,
            transient=False,
        )
        task = bar.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        with bar:
            yield advance
