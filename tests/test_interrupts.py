"""Training ends when asked, inside a kernel call too, and never waits without a bound: Ctrl-C,
SIGTERM under the command line's StopRequest, and a worker that stops answering."""

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastnn
import fastnn.parallel
import fastnn.workers
from fastnn import MLP


def long_fit_data(mnist):
    return fastnn.prepare(mnist.train_images), mnist.train_labels


def warm(model, mnist, **options):
    """Compile the kernels (on a cold cache) and train a little, before the timed part."""
    model.fit(mnist.train_images[:2000], mnist.train_labels[:2000], epochs=1, **options)


def interrupt_after(seconds: float) -> threading.Timer:
    """SIGINT to this (the main) thread after ``seconds``, as Ctrl-C in a terminal would."""
    main = threading.get_ident()
    timer = threading.Timer(seconds, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_inside_a_kernel_call_stops_fit_at_a_batch_and_fit_continues_exactly(mnist, threads):
    """One kernel call an epoch, interrupted part-way: fit raises KeyboardInterrupt soon after
    with the model at a batch boundary (its position), and fitting on gives the weights of a
    run never interrupted, bit for bit."""
    X, y = long_fit_data(mnist)
    options = dict(batch_size=32, optimizer=fastnn.Adam(lr=0.001), threads=threads)
    model = MLP([784, 256, 10], seed=1, pixels=True)
    warm(model, mnist, **options)
    timer = interrupt_after(0.3)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=3, **options)
    timer.join()
    # At a batch boundary: mid-epoch (its position), or the end of an epoch when the stop came in
    # the epoch's last kernel call.
    position = model.position
    assert position is None or 0 < position["batches_done"] < position["n_batches"]
    assert model.epochs_trained < 4 and (position is not None or model.epochs_trained > 1)
    model.fit(X, y, epochs=4 - model.epochs_trained, **options)  # 1 warm-up epoch + 3

    uninterrupted = MLP([784, 256, 10], seed=1, pixels=True)
    warm(uninterrupted, mnist, **options)
    uninterrupted.fit(X, y, epochs=3, **options)
    assert np.array_equal(model.get_params(), uninterrupted.get_params())


def test_a_stop_request_ends_fit_at_a_batch_with_history_interrupted(mnist):
    """What `fastnn train` does on its first Ctrl-C or SIGTERM: fit returns, interrupted,
    mid-epoch, and the model can be saved and continued."""
    from fastnn.cli.signals import StopRequest

    X, y = long_fit_data(mnist)
    model = MLP([784, 256, 10], seed=2, pixels=True)
    warm(model, mnist, batch_size=32)
    with StopRequest() as stop:
        timer = threading.Timer(0.3, lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM))
        timer.start()
        history = model.fit(X, y, epochs=3, batch_size=32)
        timer.join()
    assert stop.signal == signal.SIGTERM
    assert history.interrupted and model.position is not None
    assert not fastnn.workers.stop_requested.is_set()  # cleared when the block ends


def test_a_worker_that_stops_answering_ends_fit_with_the_last_good_weights(mnist, force_parallel, two_cpus,
                                                                            monkeypatch):
    """Two workers planned, one started: it gives up at the first barrier after PATIENCE_SECONDS,
    and fit raises WorkerStalledError naming the wait, with the weights, the optimizer's state and
    the epoch's order as they were. Fitting again continues as if nothing had happened."""
    X, y = mnist.train_images[:1000], mnist.train_labels[:1000]
    options = dict(batch_size=64, optimizer=fastnn.Adam(lr=0.003), threads=2)
    model, reference = MLP([784, 32, 10], seed=3, pixels=True), MLP([784, 32, 10], seed=3, pixels=True)
    model.fit(X, y, epochs=1, **options)
    reference.fit(X, y, epochs=1, **options)
    before = model.get_params()

    real = fastnn.parallel.run_stoppable
    monkeypatch.setattr(fastnn.workers, "PATIENCE_SECONDS", 0.3)
    monkeypatch.setattr(fastnn.parallel, "run_stoppable", lambda n, work, stop, abort: real(1, work, stop, abort))
    with pytest.raises(fastnn.WorkerStalledError, match="worker 0 of 2 waited 0.3 s at the barrier after the forward "
                                                         "and backward passes of batch 1 with no progress"):
        model.fit(X, y, epochs=1, **options)
    assert np.array_equal(model.get_params(), before)

    monkeypatch.setattr(fastnn.parallel, "run_stoppable", real)
    model.fit(X, y, epochs=1, **options)
    reference.fit(X, y, epochs=1, **options)
    assert np.array_equal(model.get_params(), reference.get_params())


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_fastnn_train_ends_soon_after_a_signal_inside_a_long_epoch(signum, status, mnist, shared_data, tmp_path):
    """An epoch of several seconds: the signal ends the run after the current batch, inside the
    first epoch (the checkpoint's position says so), instead of after the epoch."""
    # the kernel compiled, in the cache
    MLP([784, 16, 10], pixels=True).fit(mnist.train_images[:100], mnist.train_labels[:100])
    checkpoint = tmp_path / "c.npz"
    process = subprocess.Popen([sys.executable, "-m", "fastnn.cli", "train", "--data", str(shared_data / "mnist"),
                                "--layers", "784,1024,1024,10", "--epochs", "2", "--checkpoint", str(checkpoint)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().startswith("training 784-1024-1024-10")
        time.sleep(2.0)  # into the first epoch's kernel call
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)  # a hang fails here
    finally:
        process.kill()
    assert process.returncode == status, err
    assert "Traceback" not in err and f"checkpoint saved to {checkpoint}" in err
    stopped = MLP.load(checkpoint)
    assert stopped.epochs_trained == 0 and 0 < stopped.position["batches_done"] < stopped.position["n_batches"]
