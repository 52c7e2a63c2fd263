"""Ctrl-C (SIGINT) and SIGTERM during training: ask the loop to stop at the next block boundary.

    with StopRequest() as stop:
        model.fit(..., on_block=lambda *_: stop.requested)
    if stop.signal: ...save a checkpoint, exit with stop.exit_status...

The first signal only sets a flag (training finishes its current block of batches, so the
model is consistent and can be saved); a second Ctrl-C raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import signal
import sys


class StopRequest:
    """Installs SIGINT/SIGTERM handlers for the ``with`` block, restores the old ones after."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, message: str = "stopping after the current block of batches "
                                      "(Ctrl-C again to abort without a checkpoint)"):
        self.message = message
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process killed by it: 130, 143."""
        return 128 + int(self.signal) if self.signal is not None else 0

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        print(f"fastnn: {signal.Signals(signum).name}: {self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopRequest":
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
