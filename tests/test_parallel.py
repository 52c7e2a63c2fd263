"""The parallel plans (fastnn/parallel.py): which way a batch is shared, and the probe that
times the plan's workers against one and keeps the faster, with the same weights either way."""

import time

import numpy as np
import pytest

import fastnn
import fastnn.parallel as parallel
from fastnn import MLP
from fastnn.kernels.codes import REPLICAS, SHARED, SPLIT
from fastnn.parallel import Plan


def test_how_each_shape_shares_a_batch(mnist):
    model = MLP([784, 10, 10], pixels=True)
    examples = model._examples(mnist.train_images[:640], mnist.train_labels[:640])
    sgd, adam = fastnn.SGD(lr=0.1), fastnn.Adam()

    def plan(model, batch_size, threads, optimizer=adam, clip_norm=0.0):
        return parallel.parallel_plan(model, examples, batch_size, threads, optimizer, clip_norm)

    assert plan(model, 64, 2) == Plan(2, REPLICAS)  # narrow first layer
    assert plan(model, 64, 8) == Plan(4, REPLICAS)  # one block each at most
    assert plan(model, 64, 2, sgd) == plan(model, 64, 8, sgd) == Plan(2, SPLIT)  # plain SGD: its step split too
    assert plan(model, 64, 2, fastnn.SGD(lr=0.1, momentum=0.9)) == Plan(2, REPLICAS)
    assert plan(model, 64, 2, fastnn.SGD(lr=0.1, weight_decay=1e-4)) == Plan(2, REPLICAS)
    assert plan(model, 64, 2, sgd, clip_norm=1.0) == Plan(2, REPLICAS)
    assert plan(model, 16, 2) == Plan()  # one block: nothing to share
    assert plan(model, 64, 1) == Plan()
    assert plan(MLP([784, 512, 10]), 64, 2) == Plan(2, SHARED)  # wide: transposed batch
    assert plan(MLP([784, 100, 10]), 2, 2) == Plan()  # wide enough to transpose, too little work to share


def run(mnist, threads, sizes=(784, 10, 10), n=6000, optimizer="adam", epochs=2):
    model = MLP(list(sizes), pixels=True, seed=6)
    history = model.fit(mnist.train_images[:n], mnist.train_labels[:n], epochs=epochs, batch_size=32, threads=threads,
                        optimizer=fastnn.Adam(lr=0.002) if optimizer == "adam" else fastnn.SGD(lr=0.1))
    return model.get_params(), history


TEAM = Plan(2, REPLICAS)


def test_each_side_is_timed_twice_then_the_faster_runs():
    def calls(*seconds, when=99.0):
        return [(s, when) for s in seconds]

    assert parallel.next_call({}, TEAM, 1000, now=100.0) == (Plan(), 32)
    assert parallel.next_call({Plan(): calls(1e-4)}, TEAM, 1000, now=100.0) == (Plan(), 200)  # a second time
    two = {Plan(): calls(1e-4, 1.1e-4)}
    assert parallel.next_call(two, TEAM, 1000, now=100.0) == (TEAM, 200)  # as long as a call
    assert parallel.next_call({**two, TEAM: calls(3e-4)}, TEAM, 1000, now=100.0) == (TEAM, 200)  # one slow call
    timed = {Plan(): calls(1e-4, 1e-4), TEAM: calls(3e-4, 0.8e-4)}  # the faster of two
    assert parallel.next_call(timed, TEAM, 1000, now=100.0) == (TEAM, 250)  # CALL_SECONDS, 20 ms
    assert parallel.next_call(timed, TEAM, 50, now=100.0) == (TEAM, 50)
    assert parallel.next_call({Plan(): calls(1.0, 1.0), TEAM: calls(0.5, 0.5)}, TEAM, 1000, now=100.0) == (TEAM, 32)
    closer = {Plan(): calls(1e-4, 1e-4), TEAM: calls(0.96e-4, 0.96e-4)}  # within the margin: one worker
    assert parallel.next_call(closer, TEAM, 1000, now=100.0) == (Plan(), 200)
    assert parallel.next_call(timed, TEAM, 1000, now=101.2)[0] == Plan()  # too old: timed again
    assert parallel.next_call({}, TEAM, 20, now=100.0) == (Plan(), 20)  # too few to time: one worker


@pytest.mark.parametrize("optimizer, way", [("adam", REPLICAS), ("sgd", SPLIT)])
@pytest.mark.parametrize("margin, workers", [(1e9, 2), (0.0, 1)], ids=["team kept", "team dropped"])
def test_timed_calls_give_the_weights_of_one_worker(mnist, two_cpus, monkeypatch, margin, workers, optimizer,
                                                    way):
    """32 batches on one worker, then calls of about 20 ms: one worker again, the plan's twice,
    then the faster (here forced by the margin), each with the steps and learning rates of its
    own batches: the same weights as one worker, bit for bit. A later fit of that shape times
    nothing anew."""
    monkeypatch.setattr(parallel, "TEAM_MARGIN", margin)
    monkeypatch.setattr(parallel, "CHOICE_SECONDS", 1e9)  # on a loaded machine calls may take seconds
    monkeypatch.setattr(parallel, "_timings", {})
    calls = []
    real = parallel.Team._call
    monkeypatch.setattr(parallel.Team, "_call", lambda self, plan, *args: (calls.append((plan, args[4], args[5])),
                                                                           real(self, plan, *args))[1])
    expected, _ = run(mnist, threads=1, optimizer=optimizer, epochs=4)
    assert calls == [(Plan(), 0, 188)] * 4  # 6,000 examples: 188 batches an epoch
    calls.clear()
    params, history = run(mnist, threads=2, optimizer=optimizer, epochs=4)
    assert np.array_equal(params, expected)
    assert history.workers == workers
    chosen = Plan(2, way) if workers == 2 else Plan()
    assert calls[0] == (Plan(), 0, 32) and [plan for plan, _, _ in calls[1:4]] == [Plan(), Plan(2, way), Plan(2, way)], calls
    assert [plan for plan, _, _ in calls[4:]] == [chosen] * (len(calls) - 4)
    edges = [(first, last) for _, first, last in calls]  # each call goes on where the last ended
    assert all(a[1] == b[0] or (a[1] == 188 and b[0] == 0) for a, b in zip(edges, edges[1:])) and edges[-1][1] == 188
    calls.clear()
    assert np.array_equal(run(mnist, threads=2, optimizer=optimizer, epochs=4)[0], expected)
    assert {plan for plan, _, _ in calls} == {chosen}


def test_a_slow_spell_of_the_team_sends_the_calls_after_two_slow_ones_to_one_worker(mnist, two_cpus, monkeypatch):
    """One worker is made slow (the team is the faster), then two of the team's calls meet a
    slow spell: after the first the team keeps the calls, after the second one worker takes
    them. The weights are one worker's all along."""
    monkeypatch.setattr(parallel, "CHOICE_SECONDS", 1e9)  # on a loaded machine calls may take seconds
    monkeypatch.setattr(parallel, "_timings", {})
    calls, team_calls = [], []
    real = parallel.Team._call

    def timed(self, plan, *args):
        calls.append(plan)
        if plan == Plan():
            time.sleep(0.02)
        else:
            team_calls.append(plan)
            if len(team_calls) in (3, 4):
                time.sleep(0.5)  # the hypervisor took a vCPU away
        return real(self, plan, *args)

    monkeypatch.setattr(parallel.Team, "_call", timed)
    params, _ = run(mnist, threads=2, epochs=8)  # a call of about 20 ms is an epoch here
    team = [i for i, plan in enumerate(calls) if plan == TEAM]
    assert calls[:2] == [Plan(), Plan()] and team[:4] == [2, 3, 4, 5], calls  # one slow call: no switch
    assert calls[6] == Plan(), calls  # two: the faster of the team's last two calls is slower now
    assert np.array_equal(params, run(mnist, threads=1, epochs=8)[0])


def test_much_work_a_batch_shares_without_timing(mnist, two_cpus, monkeypatch):
    monkeypatch.setattr(parallel, "_timings", {})
    params, history = run(mnist, threads=2, sizes=(784, 2048, 2048, 10), n=1000)
    assert history.workers == 2 and parallel._timings == {}
    assert np.array_equal(params, run(mnist, threads=1, sizes=(784, 2048, 2048, 10), n=1000)[0])
