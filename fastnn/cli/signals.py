"""Ctrl-C (SIGINT) and SIGTERM during training: ask the loop to stop at the next block boundary.

    with StopRequest() as stop:
        model.fit(..., on_block=lambda *_: stop.requested)
    if stop.signal: ...save a checkpoint, exit with stop.exit_status...

The first signal sets a flag (training finishes its current batch, so the model is consistent
and can be saved: the running kernel call sees it through workers.stop_requested); a second
Ctrl-C raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import signal
import sys

from ..workers import stop_requested


class StopRequest:
    """Installs SIGINT/SIGTERM handlers for the ``with`` block, restores the old ones after."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, message: str = "stopping after the current batch "
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
        stop_requested.set()
        print(f"fastnn: {signal.Signals(signum).name}: {self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopRequest":
        stop_requested.clear()
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        stop_requested.clear()

