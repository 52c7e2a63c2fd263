"""fit(verbose=...): what a fit shows while it trains, as Keras users expect. 1: a progress bar per
epoch (tqdm.auto: a widget in a notebook, text in a terminal); 2: one line per epoch. It wraps
the caller's on_block and on_epoch, whose return values (stop or not) it passes on."""

from __future__ import annotations

import sys
from typing import Callable

BAR_BLOCKS = 20  # blocks per epoch while a bar is shown: it moves 20 times an epoch


def epoch_line(epoch: int, history) -> str:
    """'epoch 3: loss 0.4123, accuracy 0.8811, val loss ..., (0.210 s)': the command line's format."""
    line = f"epoch {epoch}: loss {history.loss[-1]:.4f}"
    if history.accuracy:
        line += f", accuracy {history.accuracy[-1]:.4f}"
    if history.val_loss:
        line += f", val loss {history.val_loss[-1]:.4f}"
    if history.val_accuracy and history.val_accuracy[-1] == history.val_accuracy[-1]:  # not NaN
        line += f", val accuracy {history.val_accuracy[-1]:.4f}"
    return f"{line} ({history.seconds[-1]:.3f} s)"


def callbacks(verbose: int, on_block: Callable | None,
              on_epoch: Callable | None) -> tuple[Callable | None, Callable | None]:
    """(on_block, on_epoch) that show the fit's progress at ``verbose`` and call the caller's."""
    if verbose not in (0, 1, 2, False, True):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if not verbose:
        return on_block, on_epoch
    bar = None

    def block(epoch, batches_done, n_batches):
        nonlocal bar
        if verbose == 1:
            if bar is None:
                from tqdm.auto import tqdm
                bar = tqdm(total=n_batches, desc=f"epoch {epoch}", unit="batch", leave=True, file=sys.stderr)
            bar.update(batches_done - bar.n)
        return on_block(epoch, batches_done, n_batches) if on_block is not None else None

    def end(epoch, history):
        nonlocal bar
        if bar is not None:
            bar.set_postfix_str(epoch_line(epoch, history).split(": ", 1)[1])
            bar.close()
            bar = None
        else:
            print(epoch_line(epoch, history), flush=True)
        return on_epoch(epoch, history) if on_epoch is not None else None

    return block, end
