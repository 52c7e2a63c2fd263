"""Same seed, same data: bit-identical weights, on every run and for any number of threads."""

import numpy as np
import pytest

from fastnn import MLP
from fastnn.kernels.codes import VECTOR_BYTES
from fastnn.layout import TRANSPOSE_MIN_VECTORS

LANES = VECTOR_BYTES // 4  # float32 values per vector: 16 with AVX-512, 8 with AVX2


def train(X, y, threads, seed=0, sizes=(784, 32, 10), clip_norm=None):
    model = MLP(list(sizes), seed=seed)
    model.fit(X, y, epochs=2, batch_size=64, lr=0.1, threads=threads, clip_norm=clip_norm)
    return model.get_params()


def test_same_seed_same_weights(mnist):
    X, y = mnist.train_images[:5000], mnist.train_labels[:5000]
    assert np.array_equal(train(X, y, threads=2), train(X, y, threads=2))


def test_different_seeds_differ(mnist):
    X, y = mnist.train_images[:2000], mnist.train_labels[:2000]
    assert not np.array_equal(train(X, y, threads=1, seed=0), train(X, y, threads=1, seed=1))


def test_one_and_two_threads_agree_bit_for_bit(mnist, force_parallel):
    X, y = mnist.train_images[:5000], mnist.train_labels[:5000]
    serial = train(X, y, threads=1)
    assert np.array_equal(serial, train(X, y, threads=2))
    wide = train(X, y, threads=1, sizes=(784, 200, 10))
    assert np.array_equal(wide, train(X, y, threads=2, sizes=(784, 200, 10)))


REPLICA_RUNS = {
    "sgd, ragged last batch": dict(sizes=(784, 10, 10), n=1000, fit=dict(batch_size=64)),
    "three blocks a batch, three calls an epoch": dict(sizes=(784, 16, 10), n=1000,
                                                      fit=dict(batch_size=48, blocks_per_epoch=3)),
    "momentum, dropout": dict(sizes=(784, 24, 10), n=700, dropout=0.2,
                              fit=dict(batch_size=32, optimizer="momentum")),
    "adam, clipping, float64": dict(sizes=(784, 12, 8, 10), n=700, dtype="float64",
                                    fit=dict(batch_size=64, optimizer="adam", clip_norm=0.5)),
    "sgd, float64, three layers": dict(sizes=(784, 12, 8, 10), n=700, dtype="float64", fit=dict(batch_size=32)),
}


TEAM_RULES = ["keep the team", "leave after the probe", "adaptive"]


@pytest.mark.parametrize("by_inputs", [True, False], ids=["split by inputs", "whole replicas"])
@pytest.mark.parametrize("rule", TEAM_RULES)
@pytest.mark.parametrize("case", REPLICA_RUNS.values(), ids=REPLICA_RUNS.keys())
def test_workers_with_replicas_agree_with_one_bit_for_bit(mnist, force_replicas, monkeypatch, case, rule, by_inputs):
    """Two workers, each updating its own replica of the weights and optimizer state: the weights
    of one worker, over three epochs in two fit calls. Worker 0 starts each kernel call alone;
    the second copies its replica when it joins (after 1 batch timed alone), and then stays, or
    leaves after 2 batches timed together, or whichever the timing says. For plain SGD, the two
    also split the first layer's weight rows between them, by input units, unless told not to."""
    import fastnn
    import fastnn.training
    import fastnn.workers
    from fastnn.kernels import codes

    if fastnn.workers.max_threads() < 2:
        pytest.skip("one CPU: fit would run one worker whatever threads says")
    code = {"keep the team": codes.KEEP_TEAM, "leave after the probe": codes.LEAVE_AFTER_PROBE,
            "adaptive": codes.ADAPTIVE}[rule]
    monkeypatch.setattr(fastnn.training, "TEAM_RULE", code)
    monkeypatch.setattr(fastnn.training, "SOLO_PROBE", 1)
    monkeypatch.setattr(fastnn.training, "TEAM_PROBE", 2)
    monkeypatch.setattr(fastnn.training, "BY_INPUTS", by_inputs)
    X, y = mnist.train_images[:case["n"]], mnist.train_labels[:case["n"]]
    optimizers = {"momentum": fastnn.SGD(lr=0.05, momentum=0.9), "adam": fastnn.Adam(lr=0.003)}

    def run(threads):
        model = MLP(list(case["sizes"]), seed=4, dtype=case.get("dtype", "float32"), dropout=case.get("dropout", 0.0))
        settings = dict(case["fit"], optimizer=optimizers.get(case["fit"].get("optimizer")))
        model.fit(X, y, epochs=1, threads=threads, **settings)
        model.fit(X, y, epochs=2, threads=threads, **settings)  # continues the optimizer's state
        return model

    replicated = run(2)
    examples = replicated._examples(X, y)
    assert fastnn.training.parallel_plan(replicated, examples, case["fit"]["batch_size"], 2) == (2, True)
    report = fastnn.training.last_team_report
    assert report.by_inputs == (by_inputs and "optimizer" not in case["fit"])
    if code != codes.ADAPTIVE:  # the last call's first batch alone, one timed alone, the join, two timed
        assert report.solo_batch_cycles > 0 and report.team_batch_cycles > 0
        n_batches = -(-case["n"] // case["fit"]["batch_size"])
        first = n_batches - n_batches // case["fit"].get("blocks_per_epoch", 1)
        assert report.alone_from == (first + 6 if code == codes.LEAVE_AFTER_PROBE else None)
    assert np.array_equal(replicated.get_params(), run(1).get_params())


def test_a_fit_takes_the_batches_an_earlier_one_timed_alone(mnist, force_replicas, monkeypatch):
    """Fits of one shape within SOLO_MEMORY_SECONDS: the later ones time no batch alone (their
    report gives the first's timing, the very same numbers), and train the same weights."""
    import fastnn.training
    import fastnn.workers

    if fastnn.workers.max_threads() < 2:
        pytest.skip("one CPU: fit would run one worker whatever threads says")
    X, y = mnist.train_images[:2000], mnist.train_labels[:2000]

    def run(memory_seconds):
        monkeypatch.setattr(fastnn.training, "SOLO_MEMORY_SECONDS", memory_seconds)
        fastnn.training._solo_timings.clear()
        model, reports = MLP([784, 10, 10], seed=5), []
        for _ in range(3):
            model.fit(X, y, epochs=1, batch_size=32, threads=2)
            reports.append(fastnn.training.last_team_report.solo_batch_cycles)
        return model.get_params(), reports

    remembered, reports = run(60.0)
    assert reports[0] > 0 and reports[1] == reports[0] == reports[2]
    forgotten, reports = run(0.0)
    assert len(set(reports)) == 3  # each call timed its own
    assert np.array_equal(remembered, forgotten)


def test_team_report_reads_what_worker_zero_left_in_sync():
    from fastnn.kernels import codes
    from fastnn.training import TeamReport

    sync = np.zeros(codes.SYNC_SIZE, dtype=np.int64)
    sync[[codes.SOLO_CYCLES, codes.SOLO_BATCHES, codes.TEAM_CYCLES, codes.TEAM_BATCHES]] = 800, 8, 1920, 32
    report = TeamReport.from_sync(sync)
    assert (report.solo_batch_cycles, report.team_batch_cycles, report.alone_from) == (100, 60, None)
    assert report.team_over_solo == 0.6
    sync[codes.ALONE_FROM] = 43  # the first batch alone + 1
    assert TeamReport.from_sync(sync).alone_from == 42


def test_two_workers_with_clipping_agree_with_one_on_every_run(force_parallel):
    """With clipping, each worker sums the whole gradient's squares, then the workers update (and
    clear) its rows. A worker that started updating while another was still summing changed the
    other's norm: 4 to 16 runs in 300 differed from one thread, by up to 0.05. Many short runs,
    so that a race shows up."""
    import fastnn

    rng = np.random.default_rng(26)
    X = ((rng.random((160, 64)) < 0.3) * rng.integers(1, 256, (160, 64))).astype(np.uint8)
    y = rng.integers(0, 10, 160)

    def run(threads):
        model = MLP([64, 24, 12, 10], init="he", seed=27, dtype="float64")
        model.fit(X, y, epochs=2, batch_size=16, optimizer=fastnn.Adam(lr=0.01), shuffle=False, clip_norm=0.3,
                  threads=threads)
        return model.get_params()

    serial = run(1)
    differing = sum(not np.array_equal(run(2), serial) for _ in range(200))
    assert differing == 0, f"{differing} of 200 two-worker runs differ from one worker"


@pytest.mark.parametrize("hidden", [5 * LANES, 7 * LANES - 3, 9 * LANES, 25 * LANES - 1],
                         ids=lambda h: f"784-{h}-10")
def test_transposed_batch_gives_the_per_example_gradient_bit_for_bit(mnist, monkeypatch, hidden):
    """Wide first layers sum their gradient over the batch grouped by input unit: the same
    additions in the same order as example by example (tiles of 4+1, 4+2+1, 8+1, 8+8+8+1 vectors).
    A clip norm that never clips keeps the gradient whole in both: with plain SGD each path
    fuses the first layer's step into its own loop, by example or by input unit."""
    import fastnn.layout

    X, y = mnist.train_images[:1000], mnist.train_labels[:1000]
    transposed = train(X, y, threads=1, sizes=(784, hidden, 10), clip_norm=1e30)
    monkeypatch.setattr(fastnn.layout, "TRANSPOSE_MIN_VECTORS", 10**6)
    assert np.array_equal(transposed, train(X, y, threads=1, sizes=(784, hidden, 10), clip_norm=1e30))


def test_fused_steps_stay_within_rounding_of_the_summed_gradient(mnist):
    """Plain SGD steps the first layer's weights inside the gradient's loop; clipping with a norm
    that never clips steps from the stored gradient instead. With a transposed batch the step
    takes each weight row's whole sum, so the two agree bit for bit; example by example it takes
    each example's term in turn: the same math, other rounding (float32's)."""
    X, y = mnist.train_images[:1000], mnist.train_labels[:1000]
    wide = (784, TRANSPOSE_MIN_VECTORS * LANES + 3, 10)
    assert np.array_equal(train(X, y, threads=1, sizes=wide), train(X, y, threads=1, sizes=wide, clip_norm=1e30))
    narrow = (784, 10, 10)
    fused, summed = train(X, y, threads=1, sizes=narrow), train(X, y, threads=1, sizes=narrow, clip_norm=1e30)
    assert not np.array_equal(fused, summed)
    np.testing.assert_allclose(fused, summed, rtol=0, atol=1e-5)


def test_workers_with_replicas_refuse_buffers_the_kernel_would_overrun():
    """The kernel indexes both halves of Z, A and D and copies the replicas unchecked: mismatched
    buffers, or a split by inputs on other than two workers, are refused before it runs."""
    from fastnn.training import Replica, train_on_workers

    params, state = np.zeros(64, np.float32), np.zeros(64, np.float32)
    bufs = (np.zeros((16, 8), np.float32),)
    opt = (0, state, state)
    short = Replica(*(np.zeros(n, np.float32) for n in (32, 64, 64, 64)))
    with pytest.raises(RuntimeError, match="2 x batch_size rows"):
        train_on_workers(2, params, None, None, None, None, 16, 0, 1, [bufs, bufs], None, opt, None, None, [short])
    with pytest.raises(RuntimeError, match="differ in shape"):
        train_on_workers(2, params, None, None, None, None, 8, 0, 1, [bufs, bufs], None, opt, None, None, [short])
    with pytest.raises(RuntimeError, match="two workers"):  # by_inputs_batch's barriers count two
        train_on_workers(3, params, None, None, None, None, 8, 0, 1, [bufs] * 3, None, opt, None, None, [short] * 2,
                         by_inputs=True)
