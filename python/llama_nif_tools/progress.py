"""Progress lines for long steps, readable in a terminal and in CI logs alike."""
import sys
import time


def say(msg: str) -> None:
    print(f"[llama_nif] {msg}", flush=True)


class Bar:
    """A byte counter that prints at most every half second, and always at the end."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0
        self._last = 0.0
        self._tty = sys.stdout.isatty()

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= (0.5 if self._tty else 5.0) or self.done >= self.total:
            self._last = now
            pct = 100.0 * self.done / self.total if self.total else 100.0
            end = "\r" if self._tty and self.done < self.total else "\n"
            print(f"[llama_nif] {self.label}: {self.done / 1e6:7.1f} / {self.total / 1e6:.1f} MB "
                  f"({pct:5.1f}%)", end=end, flush=True)
