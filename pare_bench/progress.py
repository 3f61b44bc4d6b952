"""Progress that shows wherever the output goes: rich bars on a terminal, plain periodic lines in a log.

Rich draws nothing until the end when its console is not a terminal (CI logs, `nohup`, a pipe), so a
40-minute run looked dead. `progress()` returns a rich `Progress` on a terminal and a `LogProgress`
with the same calls otherwise.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LOG_EVERY_SECONDS = 30.0  # a plain line at most this often, and at every tenth of a task


class LogProgress:
    """The subset of `rich.progress.Progress` the project uses, printing one line per update worth telling."""

    def __init__(self, console: Console, every: float = LOG_EVERY_SECONDS):
        self.console, self.every = console, every
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        for task_id, task in self.tasks.items():
            if task["completed"] != task["printed"]:
                self._print(task_id)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        task_id = len(self.tasks)
        now = time.monotonic()
        self.tasks[task_id] = dict(
            description=description, total=total, completed=completed, fields=fields, start=now, last=now, printed=None
        )
        return task_id

    def update(self, task_id: int, advance: float = 0, completed: float | None = None, **changes) -> None:
        task = self.tasks[task_id]
        task["completed"] = completed if completed is not None else task["completed"] + advance
        task["description"] = changes.pop("description", task["description"])
        task["total"] = changes.pop("total", task["total"])
        task["fields"].update(changes)
        tenth = task["total"] and int(10 * task["completed"] / task["total"]) != int(
            10 * (task["printed"] or 0) / task["total"]
        )
        if tenth or time.monotonic() - task["last"] >= self.every or task["completed"] == task["total"]:
            self._print(task_id)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _print(self, task_id: int) -> None:
        task = self.tasks[task_id]
        elapsed = time.monotonic() - task["start"]
        total = f"/{task['total']:g}" if task["total"] else ""
        fields = "".join(f" {k} {v:.4g}" if isinstance(v, float) else f" {k} {v}" for k, v in task["fields"].items())
        self.console.print(
            f"{task['description']}: {task['completed']:g}{total}{fields} ({elapsed:.0f} s)", highlight=False
        )
        task["last"], task["printed"] = time.monotonic(), task["completed"]


def progress(console: Console | None = None, *columns) -> Progress | LogProgress:
    """A progress display for `console` (default: stderr): bars on a terminal, plain lines in a log."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        return LogProgress(console)
    columns = columns or (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console)
