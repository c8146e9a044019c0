"""The training progress line: step/total, speed and ETA first, then a bar and as many losses as the terminal fits.

rich lays out a Progress as a table whose columns wrap when the terminal is narrow, so a long loss text used to push
the step count and the ETA off the line. Here the whole line is one column that builds its own text to the
console's width, dropping what does not fit in order of importance: losses from the last, then the bar.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task
from rich.text import Text

BAR_MIN, BAR_MAX = 10, 30  # bar width in columns; narrower than BAR_MIN it is left out


class TrainingLine(ProgressColumn):
    """`train 1200/20000 · 12.3 it/s · eta 0:25:31 ━━━━╸━━━━ G 1.234 D_A 0.233 …`, at most the console's width.

    The task's fields: `rate` (the log window's speed, e.g. "12.3 it/s"; empty until the first log step, when
    rich's own estimate stands in) and `losses`, a list of "name value" strings in the order to show them.
    """

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def render(self, task: Task) -> Text:
        width = self.console.width - 1  # the last column: some terminals wrap a line that fills it exactly
        total = int(task.total) if task.total is not None else 0
        rate = task.fields.get("rate") or (f"{task.speed:.2f} it/s" if task.speed else "… it/s")
        remaining = task.time_remaining
        eta = _clock(remaining) if remaining is not None else "-:--:--"
        line = Text(no_wrap=True, overflow="crop")
        line.append(f"{task.description} ", style="bold")
        line.append(f"{int(task.completed)}/{total}", style="green")
        line.append(f" · {rate} · eta {eta}")
        free = width - line.cell_len
        room = free - (BAR_MIN + 1 if free >= BAR_MIN + 1 else 0)  # a short bar stays while anything fits
        shown: list[str] = []
        for item in task.fields.get("losses") or []:
            if sum(len(s) + 1 for s in shown) + len(item) + 1 > room:
                break
            shown.append(item)
        bar = min(BAR_MAX, free - sum(len(s) + 1 for s in shown) - 1)
        if bar >= BAR_MIN:
            filled = round(bar * task.completed / total) if total else 0
            line.append(" ")
            line.append("━" * filled, style="magenta")
            line.append("━" * (bar - filled), style="grey23")
        if shown:
            line.append(" " + " ".join(shown), style="cyan")
        line.truncate(width)
        return line


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def training_progress(console: Console, *, enabled: bool = True) -> Progress:
    """The Progress a Trainer draws, on a terminal only (elsewhere it writes one plain line per log step)."""
    return Progress(TrainingLine(console), console=console, disable=not (enabled and console.is_terminal))
