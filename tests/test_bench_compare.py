"""bench.compare: its cases from the command line, its tables, and the peers' agreement.

Nothing here times anything or loads MNIST: the tables are made from fabricated Results.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from bench import compare
from bench.compare import Case, parse_args


def labels(args):
    return [c.label for c in args.cases]


# --- cases from the options ---------------------------------------------------------------------


def test_default_is_the_tutorial_widths_with_sgd_and_batch_64():
    args = parse_args([])
    assert labels(args) == ["784-10-10 sgd b64", "784-128-10 sgd b64", "784-512-10 sgd b64"]
    assert args.frameworks == compare.FRAMEWORK_NAMES


def test_widths_and_depths_make_784_h_10_networks():
    args = parse_args(["--widths", "10,256", "--depths", "1,3"])
    assert [c.layers for c in args.cases] == [(784, 10, 10), (784, 256, 10), (784, 10, 10, 10, 10),
                                            (784, 256, 256, 256, 10)]


def test_layers_accept_semicolons_and_spaces_and_combine_with_optimizers_and_batches():
    args = parse_args(["--layers", "784,256,128,10; 784,1024,1024,10  784,10,10", "--optimizer", "sgd,adam",
                       "--batch", "64,128"])
    assert len(args.cases) == 3 * 2 * 2
    assert args.cases[:4] == [Case((784, 256, 128, 10), "sgd", 64), Case((784, 256, 128, 10), "sgd", 128),
                              Case((784, 256, 128, 10), "adam", 64), Case((784, 256, 128, 10), "adam", 128)]
    assert args.cases[-1].label == "784-10-10 adam b128"


def test_repeated_values_make_one_case():
    assert labels(parse_args(["--widths", "10,10", "--optimizer", "adam,adam"])) == ["784-10-10 adam b64"]


def test_grid_is_the_issues_90_cases_with_fastnn_and_jax():
    args = parse_args(["--grid"])
    assert len(args.cases) == 90
    assert {c.hidden[0] for c in args.cases} == {10, 128, 512, 1024, 2048}
    assert {len(c.hidden) for c in args.cases} == {1, 2, 3}
    assert all(len(set(c.hidden)) == 1 for c in args.cases)  # hidden layers of one width
    assert {c.batch for c in args.cases} == {32, 64, 256}
    assert {c.optimizer for c in args.cases} == {"sgd", "adam"}
    assert args.frameworks == ["fastnn", "jax"]


def test_grid_axes_can_be_narrowed_and_frameworks_chosen():
    args = parse_args(["--grid", "--widths", "10", "--depths", "2", "--batch", "32", "--frameworks", "fastnn,torch",
                       "--epochs-timed", "1", "--budget", "2"])
    assert labels(args) == ["784-10-10-10 sgd b32", "784-10-10-10 adam b32"]
    assert args.frameworks == ["fastnn", "torch"]
    assert (args.epochs_timed, args.budget) == (1, 2.0)


def test_issue_table_is_the_issues_rows():
    args = parse_args(["--issue-table"])
    assert labels(args) == ["784-10-10 sgd b64", "784-128-10 sgd b64", "784-512-10 sgd b64", "784-128-10 sgd b256",
                            "784-10-10 adam b64", "784-128-10 adam b64", "784-256-128-10 sgd b64",
                            "784-256-128-10 adam b64", "784-1024-1024-10 sgd b128"]
    assert args.frameworks == ["fastnn", "jax", "torch"]


@pytest.mark.parametrize("argv", [
    ["--layers", "784,10"], ["--layers", "784,10,11"], ["--layers", "785,10,10"], ["--layers", ";"],
    ["--layers", "784,10,10", "--widths", "10"], ["--layers", "784,10,10", "--grid"],
    ["--issue-table", "--batch", "64"], ["--issue-table", "--grid"], ["--optimizer", "rmsprop"],
    ["--batch", "0"], ["--widths", "ten"], ["--frameworks", "caffe"], ["--epochs-timed", "0"],
])
def test_bad_options_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_docstring_names_the_issue_table_command():
    assert "python -m bench.compare --issue-table" in compare.__doc__
    assert "--grid" in compare.__doc__


# --- floor, GEMM shapes -------------------------------------------------------------------------


def test_dense_floor_counts_every_layer():
    from bench import machine
    from bench.machine import epoch_flops

    assert epoch_flops(1, (784, 10, 10)) == 4 * 784 * 10 + 6 * 10 * 10
    assert epoch_flops(2, (784, 256, 128, 10)) == 2 * (4 * 784 * 256 + 6 * 256 * 128 + 6 * 128 * 10)
    cases = [Case((784, 10, 10)), Case((784, 10, 10, 10), "adam", 32)]
    floor = compare.floor_seconds(cases, 1000, 1.0, machine)
    assert floor[cases[1]] > floor[cases[0]]


def test_gemm_shapes_are_each_cases_first_layer_once():
    cases = parse_args(["--widths", "10,128", "--depths", "1,2", "--batch", "64,256"]).cases
    assert compare.gemm_shapes(cases) == [(64, 784, 10), (64, 784, 128), (256, 784, 10), (256, 784, 128)]
    assert compare.gemm_shapes(parse_args([]).cases) == [(64, 784, 10), (64, 784, 128), (64, 784, 512)]


# --- tables from fabricated results -------------------------------------------------------------


def fabricated(cases, jax_ratios, fastnn_seconds=0.1):
    from bench.peers import Result

    results = {"fastnn": {}, "jax": {}}
    for case, r in zip(cases, jax_ratios):
        results["fastnn"][case] = Result(seconds=fastnn_seconds, accuracy=0.95, warmup_seconds=1.0)
        results["jax"][case] = Result(seconds=fastnn_seconds * r, accuracy=0.95, warmup_seconds=2.0) \
            if r is not None else Result(status="failed: RuntimeError: boom")
    return results


def grid_args():
    return parse_args(["--grid", "--widths", "10,128", "--depths", "1", "--batch", "32,256"])


def test_grid_table_has_a_row_per_network_and_optimizer_and_a_column_per_batch():
    args = grid_args()
    assert len(args.cases) == 2 * 2 * 2
    ratios = [1.5, 2.0, 3.0, None, 0.8, 1.25, 4.0, 2.5]
    results = fabricated(args.cases, ratios)
    lines = compare.grid_table(results, args.cases, "jax")
    assert lines[0].split() == ["jax", "/", "fastnn", "time", "b32", "b256"]
    assert [line.split() for line in lines[1:]] == [
        ["784-10-10", "sgd", "1.50", "2.00"], ["784-10-10", "adam", "3.00", "-"],
        ["784-128-10", "sgd", "0.80", "1.25"], ["784-128-10", "adam", "4.00", "2.50"]]
    median, low, where = compare.grid_summary(results, args.cases, "jax")
    assert median == pytest.approx(statistics.median([1.5, 2.0, 3.0, 0.8, 1.25, 4.0, 2.5]))
    assert low == pytest.approx(0.8)
    assert where == Case((784, 128, 10), "sgd", 32)


def test_grid_summary_without_any_pair_is_none():
    args = grid_args()
    results = fabricated(args.cases, [None] * len(args.cases))
    assert compare.grid_summary(results, args.cases, "jax") == (None, None, None)


def test_ratio_prefers_the_rounds_median():
    from bench.peers import Result

    case = Case((784, 10, 10))
    results = {"fastnn": {case: Result(seconds=1.0)},
               "jax": {case: Result(seconds=3.0, round_ratios=[2.0, 2.2, 9.0])}}
    assert compare.ratio(results, "jax", case) == pytest.approx(2.2)
    assert compare.ratio(results, "fastnn", case) == pytest.approx(1.0)


def test_merge_rounds_keys_by_case():
    from bench import peers

    cases = [Case((784, 10, 10)), Case((784, 256, 128, 10), "adam", 64)]
    rounds = [fabricated(cases, [2.0, 3.0], 0.1), fabricated(cases, [4.0, 1.0], 0.2)]
    merged = compare.merge_rounds(rounds, peers)
    assert merged["jax"][cases[1]].round_ratios == pytest.approx([3.0, 1.0])
    assert merged["fastnn"][cases[0]].seconds == pytest.approx(0.15)


def test_default_wide_table_keeps_its_width_columns():
    args = parse_args(["--frameworks", "fastnn,jax"])
    results = fabricated(args.cases, [3.0, 2.0, 1.5])
    floor = {c: 0.05 for c in args.cases}
    lines = compare.results_table(results, args.cases, floor)
    assert "H=10" in lines[0] and "H=512" in lines[0] and "sgd" not in lines[0]
    assert lines[-1].split()[0:2] == ["dense", "floor"]
    assert "training: 784-H-10 ReLU, softmax+CE, SGD lr 0.1, batch 64 " in compare.training_line(args)


def test_wide_labels_add_the_optimizer_and_batch_only_when_they_differ():
    cases = parse_args(["--layers", "784,256,128,10", "--optimizer", "sgd,adam"]).cases
    assert list(compare.case_labels(cases).values()) == ["784-256-128-10 sgd", "784-256-128-10 adam"]
    assert "Adam lr 0.001" in compare.training_line(parse_args(["--optimizer", "adam"]))


def test_case_table_has_times_ratios_floor_and_accuracy_per_case():
    args = parse_args(["--issue-table"])
    results = fabricated(args.cases, [2.0] * 8 + [None])
    floor = {c: 0.05 for c in args.cases}
    lines = compare.case_table(results, args.cases, floor)
    assert lines[0].split() == ["network,", "optimizer,", "batch", "fastnn", "s", "jax", "s", "jax/fastnn",
                                "floor/fastnn", "acc", "fastnn", "acc", "jax"]
    assert lines[1].split() == ["784-10-10", "sgd", "b64", "0.100", "0.200", "2.00", "0.50", "0.9500", "0.9500"]
    assert lines[-1].split() == ["784-1024-1024-10", "sgd", "b128", "0.100", "-", "-", "0.50", "0.9500", "-"]


def test_report_of_a_grid_ends_with_the_median_and_minimum(capsys):
    args = grid_args()
    results = fabricated(args.cases, [1.5, 2.0, 3.0, None, 0.8, 1.25, 4.0, 2.5])
    info = {"date": "today", "load_before": 0.0, "load_after": 0.0, "versions": {}, "reexec": [],
            "machine": {"cpu": "Test CPU", "cores": 2, "blas": ["none"], "gemm_gflops": {"2048x2048x2048": 50.0},
                        "read_gbs": 10.0, "others_cores": 0.0, "peak_gflops": 50.0},
            "flops_formula": "f", "data_source": "fabricated", "n_train": 60000, "n_test": 10000,
            "floor_seconds": {c: 0.01 for c in args.cases}}
    compare.print_report(args, info, results)
    out = capsys.readouterr().out.strip().splitlines()
    assert "cpu: Test CPU" in out[1]
    assert out[-1] == "jax / fastnn over 7 cases: median 2.00, minimum 0.80 at 784-128-10 sgd b32"
    assert any("784-10-10 adam b256: failed" in line for line in out)


def test_json_is_keyed_by_case_labels(tmp_path):
    import json

    args = parse_args(["--layers", "784,256,128,10", "--optimizer", "adam", "--json", str(tmp_path / "r.json")])
    results = fabricated(args.cases, [2.0])
    info = {"machine": {}, "floor_seconds": {args.cases[0]: 0.3}}
    compare.save_json(args.json, args, info, results)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["results"]["jax"]["784-256-128-10 adam b64"]["seconds"] == pytest.approx(0.2)
    assert saved["floor_seconds"] == {"784-256-128-10 adam b64": 0.3}
    assert saved["args"]["cases"] == [{"layers": [784, 256, 128, 10], "optimizer": "adam", "batch": 64,
                                       "label": "784-256-128-10 adam b64"}]


# --- the peers ----------------------------------------------------------------------------------


def test_peers_adam_settings_are_fastnns_defaults():
    from bench import peers
    from fastnn.optimizers import Adam

    default = Adam()
    assert (default.lr, tuple(default.betas), default.eps, default.weight_decay) == \
        (peers.ADAM_LR, peers.ADAM_BETAS, peers.ADAM_EPS, 0.0)


def test_initial_weights_follow_the_layers_and_the_widest_hidden_layer():
    from bench import peers

    def task(layers):
        x = np.zeros((4, 784), np.uint8)
        y = np.zeros(4, np.uint8)
        return peers.Task(x, y, x, y, x.astype(np.float32), x.astype(np.float32), layers=layers, threads=1)

    params = peers.initial_weights(task((784, 256, 64, 10)))
    assert [p.shape for p in params] == [(784, 256), (256,), (256, 64), (64,), (64, 10), (10,)]
    assert all(p.dtype == np.float32 for p in params)
    assert not params[1].any()  # he: zero biases, for every layer
    assert np.abs(params[2]).max() <= np.sqrt(6 / 256)
    narrow = peers.initial_weights(task((784, 10, 10)))
    assert np.abs(narrow[1]).max() > 0  # the tutorial's uniform biases
    with pytest.raises(ValueError):
        task((784, 10, 11))


def small_task(layers, optimizer):
    """A 10-class problem that two epochs learn only halfway (so that a different rule would show):
    1000 training and 500 test examples, pixels lit at random (10%), and a quarter of pixels
    70c..70c+40 lit in examples of class c."""
    from bench import peers

    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 1500).astype(np.uint8)
    x = (rng.random((1500, 784)) < 0.1).astype(np.uint8) * 255
    for i, c in enumerate(y.tolist()):
        signal = x[i, 70 * c:70 * c + 40]
        signal[rng.random(40) < 0.25] = 255
    xf = x.astype(np.float32) / 255
    return peers.Task(x[:1000], y[:1000], x[1000:], y[1000:], xf[:1000], xf[1000:], layers=layers, threads=1,
                      epochs_timed=1, batch=32, optimizer=optimizer)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_numpy_torch_and_jax_train_a_deep_network_alike(optimizer):
    """Same weights, orders and update rule: the same predictions, up to float rounding."""
    from bench import peers

    task = small_task((784, 128, 16, 10), optimizer)  # he init
    names = ["numpy"] + [n for n in ("torch", "jax") if peers._installed(n)]
    accuracy = {}
    for name in names:
        result = peers.run(name, task)
        assert result.status == "ok", (name, result.status)
        accuracy[name] = result.accuracy
    assert accuracy["numpy"] > 0.3, accuracy  # chance is 0.1, two epochs get about 0.35 (sgd), 0.5 (adam)
    assert max(accuracy.values()) - min(accuracy.values()) <= 0.01, accuracy  # 5 of 500 examples
