"""What `fastnn train` prints while it trains: one line per epoch on stdout, always, and a tqdm
bar per epoch on stderr (examples done, examples per second, and the loss and accuracy of the
last finished epoch) when stderr is a terminal, unless --quiet; --progress forces it."""

from __future__ import annotations

import sys


def bar_wanted(quiet: bool, progress: bool) -> bool:
    if quiet:
        return False
    return progress or sys.stderr.isatty()


class Progress:
    def __init__(self, enabled: bool, n_examples: int, batch_size: int, total_epochs: int):
        self.enabled = enabled
        self.n, self.batch_size, self.total_epochs = n_examples, min(batch_size, n_examples), total_epochs
        self.bar = None
        self.done = 0
        self.postfix = ""

    def block(self, epoch_number: int, batches_done: int, n_batches: int, skipped: int = 0) -> None:
        """After each block of batches; ``epoch_number`` counts from 1 over the whole training."""
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.done = min(skipped * self.batch_size, self.n)
            self.bar = tqdm(total=self.n, initial=self.done, unit="ex", unit_scale=True, leave=False,
                            desc=f"epoch {epoch_number}/{self.total_epochs}", file=sys.stderr,
                            dynamic_ncols=True, postfix=self.postfix or None)
        done = min(batches_done * self.batch_size, self.n)
        self.bar.update(done - self.done)
        self.done = done

    def epoch(self, line: str, metrics: dict[str, float]) -> None:
        """At an epoch's end: close its bar, print its line, keep its metrics for the next bar."""
        self.close()
        self.postfix = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if v is not None)
        print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
