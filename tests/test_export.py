"""fastnn.export: each export checked against the other runtime. ONNX graphs run in onnxruntime
and TorchScript/torch.nn.Sequential in PyTorch give fastnn's predict_proba (MNIST's test set for
the tutorial's network and a deeper tanh network, every activation and output on small random
data, models trained on tables); from_sklearn gives scikit-learn's own predictions; the
`fastnn export` command writes files that load without fastnn."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import export
from fastnn.errors import FastnnError

ACTIVATIONS = ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu", "identity"]
OUTPUTS = [("softmax", 3), ("linear", 2), ("sigmoid", 1), ("sigmoid", 3)]


def run_onnx(graph, X: np.ndarray) -> np.ndarray:
    """The graph's outputs in onnxruntime: ``graph`` a file or an onnx ModelProto."""
    ort = pytest.importorskip("onnxruntime")
    source = graph.SerializeToString() if hasattr(graph, "SerializeToString") else str(graph)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"input": X})
    return output


def run_torch(module, X: np.ndarray) -> np.ndarray:
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


def fastnn_cli(*args, code: str = "", cwd=None) -> subprocess.CompletedProcess:
    """`fastnn ARGS` in a subprocess, after ``code`` (e.g. hiding a package)."""
    script = f"import sys\n{code}\nfrom fastnn.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


# -- MNIST: the tutorial's network and a deeper tanh network -----------------------------------------

@pytest.fixture(scope="module")
def mnist_models(mnist):
    """Two networks trained briefly on 0..255 pixels (one epoch on 12,000 training images)."""
    X, y = mnist.train_images[:12000], mnist.train_labels[:12000]
    tutorial = fastnn.MLP([784, 10, 10], pixels=True, seed=0)
    tutorial.fit(X, y, epochs=1, batch_size=64, lr=0.1)
    deep = fastnn.MLP([784, 64, 32, 10], activation="tanh", init="glorot", pixels=True, seed=1)
    deep.fit(X, y, epochs=1, batch_size=64, lr=0.1)
    return {"tutorial": tutorial, "deep_tanh": deep}


@pytest.mark.parametrize("name", ["tutorial", "deep_tanh"])
def test_onnxruntime_gives_fastnns_probabilities_on_the_mnist_test_set(name, mnist_models, mnist, tmp_path):
    model = mnist_models[name]
    expected = model.predict_proba(mnist.test_images)
    assert (expected.argmax(axis=1) == mnist.test_labels).mean() > 0.6  # a trained network, not noise (0.1)
    path = tmp_path / f"{name}.onnx"
    export.to_onnx(model, path)
    got = run_onnx(path, mnist.test_images.astype(np.float32))  # raw 0..255: the graph divides by 255
    assert got.shape == (10000, 10) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


@pytest.mark.parametrize("name", ["tutorial", "deep_tanh"])
def test_to_torch_gives_fastnns_probabilities_on_the_mnist_test_set(name, mnist_models, mnist):
    torch = pytest.importorskip("torch")
    model = mnist_models[name]
    expected = model.predict_proba(mnist.test_images)
    network = export.to_torch(model)
    assert isinstance(network, torch.nn.Sequential) and not network.training
    assert isinstance(network[-1], torch.nn.Softmax)
    linears = [m for m in network if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == list(zip(model.sizes[:-1], model.sizes[1:]))
    np.testing.assert_array_equal(linears[0].weight.detach().numpy(), model.get_weights()[0][0].T)
    for X in (mnist.test_images, mnist.test_images.astype(np.float32)):  # bytes or floats, both 0..255
        got = run_torch(network, X)
        assert got.dtype == np.float32 and np.abs(got - expected).max() < 1e-5


# -- every activation and output, on small random data -----------------------------------------------

@pytest.fixture(scope="module")
def small_inputs():
    return np.random.default_rng(0).normal(size=(300, 6)) * 2


@pytest.mark.parametrize("output, n_out", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_activation_and_output_in_onnx_and_torch(activation, output, n_out, small_inputs):
    model = fastnn.MLP([6, 8, 5, n_out], activation=activation, output=output, init="he", seed=3)
    X = small_inputs.astype(np.float32)
    expected = model.predict_proba(X)
    assert np.ptp(expected) > 0.05  # outputs that vary with the inputs: a wrong graph would show
    assert np.abs(run_onnx(export.onnx_model(model), X) - expected).max() < 1e-5
    assert np.abs(run_torch(export.to_torch(model), X) - expected).max() < 1e-5


@pytest.mark.parametrize("activation", ["leaky_relu", "gelu", "tanh"])
def test_float64_models_export_float64_graphs(activation, small_inputs):
    """onnxruntime has neither float64 LeakyRelu nor Erf: the graph works around both."""
    model = fastnn.MLP([6, 8, 3], activation=activation, dtype="float64", init="he", seed=4)
    expected = model.predict_proba(small_inputs)
    got = run_onnx(export.onnx_model(model), small_inputs)
    assert got.dtype == np.float64
    assert np.abs(got - expected).max() < (1e-6 if activation == "gelu" else 1e-12)
    assert np.abs(run_torch(export.to_torch(model), small_inputs) - expected).max() < 1e-12


def test_the_graph_says_what_it_takes_and_names_the_classes():
    model = fastnn.MLP([4, 3, 3], classes=["cat", "dog", "eel"])
    proto = export.onnx_model(model, opset=13)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["fastnn.classes"] == '["cat", "dog", "eel"]' and props["fastnn.output"] == "softmax"
    assert proto.opset_import[0].version == 13 and proto.ir_version == 7  # the oldest IR for opset 13
    assert [o.name for o in proto.graph.output] == ["probabilities"]
    assert "the inputs as the model was trained on them" in proto.doc_string
    assert [n.op_type for n in proto.graph.node] == ["MatMul", "Add", "Relu", "MatMul", "Add", "Softmax", "Identity"]


# -- pixels ------------------------------------------------------------------------------------------

def test_pixels_of_a_fastnn_01_model_are_the_users_choice(small_inputs):
    old = fastnn.MLP([6, 5, 3], pixels=None, seed=5)  # uint8 inputs were pixels, floats as given
    images = np.random.default_rng(1).integers(0, 256, (50, 6)).astype(np.uint8)
    floats = small_inputs.astype(np.float32)
    as_pixels = run_onnx(export.onnx_model(old), images.astype(np.float32))
    np.testing.assert_allclose(as_pixels, old.predict_proba(images), atol=1e-6)
    as_given = run_onnx(export.onnx_model(old, pixels=False), floats)
    np.testing.assert_allclose(as_given, old.predict_proba(floats), atol=1e-6)
    np.testing.assert_allclose(run_torch(export.to_torch(old, pixels=False), floats), old.predict_proba(floats),
                               atol=1e-6)
    with pytest.raises(FastnnError, match="trained with pixels=True, and so is its export"):
        export.onnx_model(fastnn.MLP([6, 3], pixels=True), pixels=False)


# -- tables ------------------------------------------------------------------------------------------

def table_csv(path, n=240, seed=0):
    """Columns of very different scales, a text column, a 3-class target and a numeric one."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.normal(45, 12, n)
    income = rng.normal(52000, 15000, n)
    colour = rng.choice(["red", "green", "blue"], n)
    score = (age - 45) / 12 + (income - 52000) / 15000 + (colour == "red") * 1.5
    frame = pd.DataFrame({"age": age, "income": income, "colour": colour,
                          "grade": np.select([score < -0.5, score < 0.8], ["low", "mid"], "high"),
                          "price": 1000 + 300 * score + rng.normal(0, 20, n)})
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def table_models(tmp_path_factory):
    """A classifier (grade) and a regressor (price), trained by `fastnn train --data TABLE --target COL`."""
    from fastnn.cli.main import main

    folder = tmp_path_factory.mktemp("tables")
    frame = table_csv(folder / "people.csv")
    models = {}
    for target, drop in (("grade", "price"), ("price", "grade")):
        csv = folder / f"{target}.csv"
        frame.drop(columns=[drop]).to_csv(csv, index=False)
        out = folder / f"{target}.npz"
        assert main(["train", "--data", str(csv), "--target", target, "--hidden", "16", "--epochs", "3",
                     "--quiet", "--out", str(out)]) == 0
        models[target] = fastnn.MLP.load(out)
    return frame, models


@pytest.mark.parametrize("target", ["grade", "price"])
def test_a_table_models_export_takes_the_raw_columns_and_applies_the_stored_scaling(target, table_models):
    frame, models = table_models
    model = models[target]
    encoding = export.table_encoding(model)
    assert encoding.categories == {"colour": ["blue", "green", "red"]}
    expected = model.predict_proba(encoding.inputs(frame.drop(columns=[target]), model.dtype))
    if target == "price":
        expected = encoding.values(expected)[:, None]  # in the target's units, as `fastnn predict` prints
        assert expected.mean() > 500  # the price's units, not the standardised values around 0
    raw = export.table_inputs(model, frame)
    assert raw.dtype == np.float64 and raw.shape == (len(frame), 5)
    np.testing.assert_array_equal(raw[:, :2], frame[["age", "income"]].to_numpy())  # numbers as they are
    np.testing.assert_array_equal(raw[:, 2:].sum(axis=1), 1)  # the colour one-hot
    proto = export.onnx_model(model)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["fastnn.inputs"] == '["age", "income", "colour=blue", "colour=green", "colour=red"]'
    assert "in float64: age, income, colour=blue, colour=green, colour=red" in proto.doc_string
    assert proto.graph.input[0].type.tensor_type.elem_type == 11  # float64: large raw values keep their digits
    for got in (run_onnx(proto, raw), run_torch(export.to_torch(model), raw)):
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < (1e-3 if target == "price" else 1e-5)  # price ~1000: 1e-6 relative
        assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()
    with pytest.raises(FastnnError, match="lacks the columns the model was trained on: colour"):
        export.table_inputs(model, frame.drop(columns=["colour"]))


# -- scikit-learn ------------------------------------------------------------------------------------

def sklearn_fitted(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the few iterations
        return estimator.fit(X, y)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_from_sklearn_multiclass_classifier(activation):
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.neural_network import MLPClassifier

    iris = datasets.load_iris()
    names = iris.target_names[iris.target]  # string labels
    clf = sklearn_fitted(MLPClassifier(hidden_layer_sizes=(12, 7), activation=activation, max_iter=60,
                                       random_state=0), iris.data, names)
    model = export.from_sklearn(clf)
    assert model.sizes == (4, 12, 7, 3) and model.output == "softmax" and model.dtype == np.float64
    assert model.activation == {"logistic": "sigmoid"}.get(activation, activation)
    assert list(model.classes_) == ["setosa", "versicolor", "virginica"]
    assert np.abs(model.predict_proba(iris.data) - clf.predict_proba(iris.data)).max() < 1e-6
    np.testing.assert_array_equal(model.predict(iris.data), clf.predict(iris.data))


def test_from_sklearn_binary_classifier_has_one_sigmoid_output():
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    labels = np.where(y == 1, "benign", "malignant")
    clf = sklearn_fitted(MLPClassifier(hidden_layer_sizes=(10,), activation="tanh", max_iter=40, random_state=0),
                         X, labels)
    model = export.from_sklearn(clf)
    assert model.sizes == (30, 10, 1) and model.output == "sigmoid"
    proba = clf.predict_proba(X)
    assert 0.2 < (proba[:, 1] > 0.5).mean() < 0.8
    assert np.abs(model.predict_proba(X)[:, 0] - proba[:, 1]).max() < 1e-6  # fastnn: P(classes_[1]), (n, 1)
    np.testing.assert_array_equal(clf.classes_[model.predict(X)], clf.predict(X))
    # and on to onnxruntime, against scikit-learn itself
    assert np.abs(run_onnx(export.onnx_model(model), X)[:, 0] - proba[:, 1]).max() < 1e-6


def test_from_sklearn_multilabel_classifier():
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.neural_network import MLPClassifier

    X, Y = datasets.make_multilabel_classification(n_samples=150, n_features=8, n_classes=4, random_state=0)
    clf = sklearn_fitted(MLPClassifier(hidden_layer_sizes=(9,), max_iter=50, random_state=0), X, Y)
    model = export.from_sklearn(clf)
    assert model.sizes == (8, 9, 4) and model.output == "sigmoid"
    assert np.abs(model.predict_proba(X) - clf.predict_proba(X)).max() < 1e-6
    np.testing.assert_array_equal(model.predict(X), clf.predict(X))


@pytest.mark.parametrize("n_targets", [1, 2])
def test_from_sklearn_regressor(n_targets):
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.neural_network import MLPRegressor

    X, y = datasets.make_regression(n_samples=200, n_features=5, n_targets=n_targets, noise=0.1, random_state=0)
    reg = sklearn_fitted(MLPRegressor(hidden_layer_sizes=(16, 8), activation="relu", max_iter=80, random_state=0),
                         X, y / 50)
    model = export.from_sklearn(reg)
    assert model.sizes == (5, 16, 8, n_targets) and model.output == "linear"
    expected = reg.predict(X).reshape(len(X), n_targets)
    assert np.abs(model.predict(X) - expected).max() < 1e-6
    np.testing.assert_allclose(run_torch(export.to_torch(model), X), expected, rtol=0, atol=1e-6)


def test_from_sklearn_refuses_what_it_cannot_convert():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from fastnn.sklearn import MLPClassifier as FastnnClassifier

    with pytest.raises(FastnnError, match=r"fitted scikit-learn MLPClassifier or MLPRegressor, got MLPClassifier "
                                          r"\(not fitted\)"):
        export.from_sklearn(MLPClassifier())
    with pytest.raises(FastnnError, match="got LogisticRegression"):
        export.from_sklearn(LogisticRegression())
    poisson = sklearn_fitted(MLPRegressor(loss="poisson", hidden_layer_sizes=(3,), max_iter=5), np.eye(4), [1, 2, 3, 4])
    with pytest.raises(FastnnError, match="no fastnn output for scikit-learn's out_activation_ 'exp'"):
        export.from_sklearn(poisson)
    fitted = sklearn_fitted(FastnnClassifier((4,), max_iter=2), np.eye(4), [0, 1, 0, 1])
    with pytest.raises(FastnnError, match="its trained fastnn MLP is its model_"):
        export.from_sklearn(fitted)


# -- the command line --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model = fastnn.MLP([6, 7, 3], activation="gelu", pixels=True, seed=2)
    model.save(folder / "model.npz")
    images = np.random.default_rng(2).integers(0, 256, (40, 6)).astype(np.uint8)
    return folder / "model.npz", model, images


def test_export_command_writes_an_onnx_graph_that_onnxruntime_loads(model_file):
    path, model, images = model_file
    result = fastnn_cli("export", path, "--out", path.parent / "sub" / "model.onnx")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {path.parent / 'sub' / 'model.onnx'}: ONNX opset 17; input 'input' "
                                    "float32 (n, 6): 0..255 pixel intensities")
    got = run_onnx(path.parent / "sub" / "model.onnx", images.astype(np.float32))
    assert np.abs(got - model.predict_proba(images)).max() < 1e-5


def test_export_command_writes_torchscript_that_loads_without_fastnn(model_file):
    pytest.importorskip("torch")
    path, model, images = model_file
    result = fastnn_cli("export", path, "--format", "torch")  # the default name: model.pt
    assert result.returncode == 0, result.stderr
    assert "TorchScript" in result.stdout and (path.parent / "model.pt").is_file()
    np.save(path.parent / "images.npy", images)
    loader = ("import sys; sys.modules['fastnn'] = None\n"  # any import of fastnn would fail
              "import numpy as np, torch\n"
              "net = torch.jit.load(sys.argv[1])\n"
              "np.save(sys.argv[3], net(torch.from_numpy(np.load(sys.argv[2]))).detach().numpy())")
    loaded = subprocess.run([sys.executable, "-c", loader, str(path.parent / "model.pt"),
                             str(path.parent / "images.npy"), str(path.parent / "out.npy")],
                            capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert np.abs(np.load(path.parent / "out.npy") - model.predict_proba(images)).max() < 1e-5


def test_export_command_errors_are_one_line(model_file, tmp_path):
    path, _, _ = model_file
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    (tmp_path / "folder.onnx").mkdir()
    cases = [
        (["export", tmp_path / "junk.npz"], "is not a fastnn model"),
        (["export", tmp_path / "missing.npz"], "does not exist"),
        (["export", path, "--out", path], "is the model file itself"),
        (["export", path, "--out", tmp_path / "folder.onnx"], "is a folder; give a file name"),
        (["export", path, "--out", tmp_path / "m.onnx", "--opset", "7"], "opset must be an integer from 13"),
        (["export", path, "--out", tmp_path / "m.pt", "--opset", "13"], "--opset is for the ONNX format"),
        (["export", path, "--out", tmp_path / "m.onnx", "--no-pixels"], "trained with pixels=True"),
    ]
    script = ("import sys, io, contextlib\nfrom fastnn.cli.main import main\n"
              "for args in eval(sys.argv[1]):\n"
              "    err = io.StringIO()\n"
              "    with contextlib.redirect_stderr(err):\n"
              "        status = main(args)\n"
              "    print(status, err.getvalue().replace(chr(10), '|'))\n")
    result = subprocess.run([sys.executable, "-c", script, repr([[str(a) for a in args] for args, _ in cases])],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(cases)
    for line, (_, message) in zip(lines, cases):
        assert line.startswith("1 fastnn: error: ") and line.endswith("|") and line.count("|") == 1, line
        assert message in line
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.pt").exists()


def test_export_without_the_onnx_package_says_how_to_install_it(model_file, tmp_path):
    path, _, _ = model_file
    result = fastnn_cli("export", path, "--out", tmp_path / "m.onnx", code="sys.modules['onnx'] = None")
    assert result.returncode == 1
    assert result.stderr == ("fastnn: error: exporting to ONNX needs the onnx package: "
                             "pip install 'fastnn[onnx]'\n")
    assert not (tmp_path / "m.onnx").exists()


def test_a_failed_export_leaves_the_previous_file_untouched(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(FastnnError, match="opset"):
        export.to_onnx(fastnn.MLP([3, 2]), path, opset=99)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left


@pytest.mark.skipif(not hasattr(fastnn.MLP, "to_onnx"), reason="MLP's export methods are not there yet")
def test_the_mlp_methods_delegate_to_fastnn_export(tmp_path, small_inputs):
    pytest.importorskip("sklearn")
    from sklearn.neural_network import MLPRegressor

    model = fastnn.MLP([6, 4, 2], activation="silu", output="linear", seed=6)
    X = small_inputs.astype(np.float32)
    model.to_onnx(tmp_path / "m.onnx", opset=13)
    assert np.abs(run_onnx(tmp_path / "m.onnx", X) - model.predict(X)).max() < 1e-5
    assert np.abs(run_torch(model.to_torch(), X) - model.predict(X)).max() < 1e-5
    reg = sklearn_fitted(MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0), small_inputs,
                         small_inputs[:, 0])
    converted = fastnn.MLP.from_sklearn(reg)
    assert isinstance(converted, fastnn.MLP)
    assert np.abs(converted.predict(small_inputs)[:, 0] - reg.predict(small_inputs)).max() < 1e-6
