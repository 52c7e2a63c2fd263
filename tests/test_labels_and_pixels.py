"""MLP's ``pixels`` (0..255 intensities the network sees divided by 255, or inputs as given) and
``classes`` (class labels of any type, learnt at the first fit or given), through fit, predict,
evaluate, fastnn.prepare, fit_many, model files and the scikit-learn wrapper.

The kernels read a pixel v as v * dtype(1/255) (one table load for uint8 bytes, one
multiplication for other dtypes): the same numbers as X.astype(dtype) * dtype(1/255), within one
rounding of X / 255.
"""

import numpy as np
import pytest

import fastnn
import fastnn.io
from fastnn import MLP, DataError, reference
from helpers import random_pixels, to_reference

SIZES = [20, 8, 3]
NAMES = np.array(["cat", "dog", "eel"])


@pytest.fixture(scope="module")
def pixels_problem():
    """uint8 pixels and labels 0..2."""
    X, rng = random_pixels(160, SIZES[0], seed=11)
    return X, rng.integers(0, 3, 160)


def trained(X, y, dtype="float32", epochs=2, class_weight=None, **options):
    """A SIZES network fit on (X, y) from seed 1: two epochs of SGD, batches of 16."""
    model = MLP(SIZES, seed=1, dtype=dtype, **options)
    model.fit(X, y, epochs=epochs, batch_size=16, lr=0.1, class_weight=class_weight)
    return model


def one_255th(X, dtype):
    """X as the kernels read pixels: each value times dtype(1/255)."""
    return X.astype(dtype) * np.dtype(dtype).type(1 / 255)


# -- pixels --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pixels_true_reads_any_dtype_as_its_255th(pixels_problem, dtype):
    X, y = pixels_problem
    on_bytes = trained(X, y, dtype, pixels=True).get_params()
    assert np.array_equal(on_bytes, trained(one_255th(X, dtype), y, dtype, pixels=False).get_params())
    assert np.array_equal(on_bytes, trained(X.tolist(), y, dtype, pixels=True).get_params())  # int64
    assert np.array_equal(on_bytes, trained(X.astype(np.float64), y, dtype, pixels=True).get_params())
    divided = trained(X.astype(dtype) / 255, y, dtype, pixels=False).get_params()
    np.testing.assert_allclose(on_bytes, divided, rtol=0, atol=1e-6 if dtype == "float32" else 1e-15)
    assert np.abs(on_bytes - trained(X, y, dtype, pixels=False).get_params()).max() > 0.1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pixels_false_uses_uint8_as_the_numbers_0_to_255(pixels_problem, dtype):
    X, y = pixels_problem
    assert MLP(SIZES).pixels is False  # the default
    as_given = trained(X, y, dtype, pixels=False, epochs=1).get_params()
    assert np.array_equal(as_given, trained(X.astype(dtype), y, dtype, pixels=False, epochs=1).get_params())
    model = MLP(SIZES, seed=1, dtype="float64")
    expected = reference.forward_prop(to_reference(model.get_weights()), X.T.astype(np.float64))[1][-1].T
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-12)


def test_pixels_none_reads_uint8_as_pixels_and_other_dtypes_as_given(pixels_problem):
    X, y = pixels_problem
    floats = one_255th(X, np.float32)
    assert np.array_equal(trained(X, y, pixels=None).get_params(), trained(X, y, pixels=True).get_params())
    assert np.array_equal(trained(floats, y, pixels=None).get_params(), trained(floats, y, pixels=False).get_params())
    assert np.array_equal(trained(X.astype(np.int64), y, pixels=None).get_params(),
                          trained(X, y, pixels=False).get_params())


@pytest.mark.parametrize("pixels", [True, False, None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_prepared_inputs_are_read_as_each_model_reads_the_array(pixels_problem, pixels, dtype):
    X, y = pixels_problem
    for inputs in (X, X.astype(np.float32) / 4):  # bytes, and real values
        prepared = fastnn.prepare(inputs)
        from_array = trained(inputs, y, dtype, pixels=pixels)
        from_prepared = trained(prepared, y, dtype, pixels=pixels)
        assert np.array_equal(from_prepared.get_params(), from_array.get_params())
        assert np.array_equal(from_array.predict_proba(prepared), from_array.predict_proba(inputs))
        assert from_array.evaluate(prepared, y) == from_array.evaluate(inputs, y)


def test_one_array_read_by_models_of_either_pixels_in_turn(pixels_problem):
    """An array's sparse rows are kept between fits (fastnn.data.prepared._RecentRows) with the
    scale of the model that converted it: the next model, of the other pixels, takes its own."""
    X, y = pixels_problem
    floats = X.astype(np.float32)
    for pixels in (True, False, True):
        assert np.array_equal(trained(floats, y, pixels=pixels).get_params(),
                              trained(floats.copy(), y, pixels=pixels).get_params())


@pytest.mark.parametrize("pixels", [True, False])
def test_predict_proba_and_evaluate_equal_the_reference_on_the_same_scaling(pixels_problem, pixels):
    X, y = pixels_problem
    model = MLP(SIZES, seed=2, dtype="float64", pixels=pixels)
    seen = X.T / 255.0 if pixels else X.T.astype(np.float64)
    params = to_reference(model.get_weights())
    expected = reference.forward_prop(params, seen)[1][-1].T
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-12)
    assert model.evaluate(X, y)["loss"] == pytest.approx(reference.loss(params, seen, y), rel=1e-12)
    if pixels:  # reference.scale_pixels divides uint8 by 255 as pixels=True does
        np.testing.assert_allclose(expected, reference.forward_prop(params, reference.scale_pixels(X))[1][-1].T,
                                   rtol=1e-15)


def test_pixels_must_be_true_false_or_none():
    for bad in ("yes", "True", 255, 0.5):
        with pytest.raises(ValueError, match="pixels must be True, False or None"):
            MLP(SIZES, pixels=bad)


def test_fit_many_trains_pixel_models_as_their_own_fits(pixels_problem):
    X, y = pixels_problem
    together = [MLP(SIZES, seed=s, pixels=True) for s in (1, 2)]
    fastnn.fit_many(together, X, y, epochs=2, batch_size=16, lr=0.1)
    for model in together:
        alone = MLP(SIZES, seed=model.seed, pixels=True)
        alone.fit(X, y, epochs=2, batch_size=16, lr=0.1)
        assert np.array_equal(model.get_params(), alone.get_params())
    on_floats = trained(one_255th(X, np.float32), y, pixels=False)
    assert np.array_equal(together[0].get_params(), on_floats.get_params())


# -- classes -------------------------------------------------------------------------------------

def test_string_labels_are_learnt_sorted_and_predicted_by_name(pixels_problem):
    X, y = pixels_problem
    names = trained(X, NAMES[y], pixels=True)
    assert names.classes == ["cat", "dog", "eel"] and names.classes_.tolist() == ["cat", "dog", "eel"]
    by_index = trained(X, y, pixels=True)  # cat, dog, eel are classes 0, 1, 2: the same training
    assert np.array_equal(names.get_params(), by_index.get_params())
    assert names.predict(X).tolist() == NAMES[by_index.predict(X)].tolist()
    assert names.evaluate(X, NAMES[y]) == by_index.evaluate(X, y)
    shuffled = np.array(["eel", "cat", "dog"])[y]  # first seen order does not matter: sorted
    assert trained(X, shuffled, pixels=True).classes == ["cat", "dog", "eel"]


@pytest.mark.parametrize("labels, classes", [
    ([3, 5, 7], [3, 5, 7]),
    ([-1, 0, 1], [-1, 0, 1]),
    ([3.0, 5.0, 7.0], [3, 5, 7]),  # integer floats are the same classes as ints, as in a CSV
    ([0.5, 1.5, 2.5], [0.5, 1.5, 2.5]),
    ([0, 1, 3], [0, 1, 3]),  # all but one in 0..2: still names
], ids=["3-5-7", "negative", "integer-floats", "halves", "one-outside"])
def test_numbers_other_than_0_to_k_minus_1_are_learnt_as_classes(pixels_problem, labels, classes):
    X, y = pixels_problem
    model = trained(X, np.array(labels)[y], pixels=True)
    assert model.classes == classes and model.classes_.tolist() == classes
    assert np.array_equal(model.get_params(), trained(X, y, pixels=True).get_params())
    assert np.array_equal(model.predict(X), np.array(classes)[model.predict_proba(X).argmax(axis=1)])


@pytest.mark.parametrize("labels", [np.arange(3), np.arange(3.0), np.array([0, 1, 1]), np.arange(3, dtype=np.uint8)],
                         ids=["int", "float", "subset", "uint8"])
def test_labels_0_to_k_minus_1_are_their_own_classes(pixels_problem, labels):
    X, y = pixels_problem
    model = trained(X, labels[y], pixels=True)
    assert model.classes is None
    assert model.classes_.tolist() == [0, 1, 2] and model.classes_.dtype.kind == "i"
    assert set(model.predict(X).tolist()) <= {0, 1, 2}


def test_a_label_that_is_no_class_is_a_data_error_naming_it(pixels_problem):
    X, y = pixels_problem
    model = trained(X, NAMES[y], pixels=True)
    wrong = NAMES[y].astype(object)
    wrong[7] = "fox"
    with pytest.raises(DataError, match=r"y has the label 'fox' \(example 7\), which is not one of the classes "
                                        r"\['cat', 'dog', 'eel'\]"):
        model.evaluate(X, wrong)
    before = model.get_params()
    with pytest.raises(DataError, match="'fox'"):
        model.partial_fit(X, wrong)
    with pytest.raises(DataError, match=r"y_val has the label 3 \(example 0\)"):
        model.fit(X, NAMES[y], validation_data=(X[:5], np.array([3, 0, 0, 0, 0])))
    assert np.array_equal(model.get_params(), before) and model.classes == ["cat", "dog", "eel"]
    numbers = trained(X, np.array([3, 5, 7])[y], pixels=True)
    with pytest.raises(DataError, match=r"y has the label 4 \(example 0\), which is not one of the classes "
                                        r"\[3, 5, 7\]"):
        numbers.evaluate(X[:2], np.array([4, 5]))


@pytest.mark.parametrize("labels, message", [
    (["a", "b", "c", "d"], r"y has 4 classes \('a', 'b', 'c', 'd'\), the network has 3 outputs"),
    ([3, 5], "y has 2 classes for a network of 3 outputs: give the class names with MLP"),
    ([True, False], "y has 2 classes for a network of 3 outputs"),  # bools are names, not 0 and 1
])
def test_labels_must_name_as_many_classes_as_outputs(pixels_problem, labels, message):
    X, _ = pixels_problem
    y = np.array(labels)[np.arange(len(X)) % len(labels)]
    model = MLP(SIZES)
    with pytest.raises(DataError, match=message):
        model.fit(X, y)
    assert model.classes is None


def test_many_distinct_labels_are_named_briefly(pixels_problem):
    X, _ = pixels_problem
    message = r"y has 160 classes \(-1, 0, 1, 2, 3, 4, 5, 6, \.\.\.\), the network has 3 outputs"
    with pytest.raises(DataError, match=message):
        MLP(SIZES).fit(X, np.arange(160) - 1)


def test_given_classes_keep_their_order_and_need_not_all_be_in_y(pixels_problem):
    X, y = pixels_problem
    y = np.where(y == 2, 0, y)  # no 2: eel, cat only
    named = trained(X, np.array(["eel", "cat"])[y], pixels=True, classes=["eel", "cat", "dog"])
    assert named.classes == ["eel", "cat", "dog"] and named.classes_.tolist() == ["eel", "cat", "dog"]
    assert np.array_equal(named.get_params(), trained(X, y, pixels=True).get_params())
    assert named.predict(X).tolist() == np.array(["eel", "cat", "dog"])[named.predict_proba(X).argmax(axis=1)].tolist()


def test_class_weight_keyed_by_class_names(pixels_problem):
    X, y = pixels_problem
    by_name = trained(X, NAMES[y], pixels=True, class_weight={"eel": 3.0, "cat": 0.5})
    by_index = trained(X, y, pixels=True, class_weight={2: 3.0, 0: 0.5})
    assert np.array_equal(by_name.get_params(), by_index.get_params())
    assert not np.array_equal(by_name.get_params(), trained(X, y, pixels=True).get_params())
    with pytest.raises(DataError, match="class_weight has the label 'fox'"):
        trained(X, NAMES[y], pixels=True, class_weight={"fox": 2.0})


@pytest.mark.parametrize("options, message", [
    (dict(classes=["a", "b"]), "classes must be 3 distinct names"),
    (dict(classes=["a", "b", "a"]), "classes must be 3 distinct names"),
    (dict(classes=[1, 1.0, 2]), "classes must be 3 distinct names"),  # 1 and 1.0 are one class
    (dict(classes=["a", "b", "c"], output="linear"), "classes are names of a softmax"),
])
def test_bad_class_names_raise(options, message):
    with pytest.raises(ValueError, match=message):
        MLP(SIZES, **options)


def test_class_names_of_other_types_raise_data_errors():
    with pytest.raises(DataError, match="a class label cannot be nan"):
        MLP(SIZES, classes=[0.5, float("nan"), 2])
    with pytest.raises(DataError, match="not NoneType"):
        MLP(SIZES, classes=["a", None, "c"])


# Classes are learnt only by a fit, once its inputs are checked, and fit_many reads data as every model does.

def test_evaluate_does_not_learn_classes(pixels_problem):
    X, y = pixels_problem
    model = trained(X, y, pixels=True)  # labels 0..2: no names
    with pytest.raises(DataError):  # labels 5..7 are not the classes 0..2 it was trained on
        model.evaluate(X, y + 5)
    assert model.classes is None


def test_a_fit_that_raises_learns_no_classes(pixels_problem):
    X, y = pixels_problem
    model = MLP(SIZES)
    with pytest.raises(DataError, match="sample_weight"):
        model.fit(X, NAMES[y], sample_weight=np.ones(len(y) - 1))
    assert model.classes is None


def test_fit_many_gives_every_model_the_classes_it_learnt(pixels_problem):
    X, y = pixels_problem
    models = [MLP(SIZES, seed=s, pixels=True) for s in (1, 2)]
    fastnn.fit_many(models, X, NAMES[y], epochs=1, batch_size=16)
    assert [m.classes for m in models] == [["cat", "dog", "eel"]] * 2
    assert set(models[1].predict(X).tolist()) <= set(NAMES)


@pytest.mark.parametrize("other", [dict(pixels=False), dict(classes=["eel", "dog", "cat"])],
                         ids=["pixels", "classes"])
def test_fit_many_refuses_or_trains_models_that_read_data_otherwise(pixels_problem, other):
    X, y = pixels_problem
    first = dict(pixels=True, classes=["cat", "dog", "eel"])
    models = [MLP(SIZES, seed=1, **first), MLP(SIZES, seed=2, **{**first, **other})]
    try:
        fastnn.fit_many(models, X, NAMES[y], epochs=1, batch_size=16, lr=0.1)
    except ValueError:
        return  # refused: fine
    alone = MLP(SIZES, seed=2, **{**first, **other})
    alone.fit(X, NAMES[y], epochs=1, batch_size=16, lr=0.1)
    assert np.array_equal(models[1].get_params(), alone.get_params())


# -- model files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("labels, pixels", [(NAMES, True), (np.array([0.5, 1.5, 2.5]), None),
                                            (np.array([3, 5, 7]), False)], ids=["names", "halves", "numbers"])
def test_save_and_load_keep_classes_and_pixels(tmp_path, pixels_problem, labels, pixels):
    X, y = pixels_problem
    model = trained(X, labels[y], pixels=pixels)
    model.save(tmp_path / "m.npz")
    loaded = MLP.load(tmp_path / "m.npz")
    assert loaded.pixels is pixels and loaded.classes == model.classes == sorted(labels.tolist())
    assert loaded.config() == model.config()
    assert np.array_equal(loaded.predict(X), model.predict(X))
    model.fit(X, labels[y], epochs=1, batch_size=16)
    loaded.fit(X, labels[y], epochs=1, batch_size=16)
    assert np.array_equal(loaded.get_params(), model.get_params())


def test_a_model_file_from_before_pixels_loads_with_the_old_rule(tmp_path, pixels_problem):
    """Files written before ``pixels`` and ``classes`` existed read uint8 inputs as pixels and
    other inputs as given (pixels=None), as fastnn did then."""
    X, y = pixels_problem
    model = trained(X, y, pixels=True)
    model.save(tmp_path / "new.npz")
    arrays, meta = fastnn.io.load_arrays(tmp_path / "new.npz")
    del meta["model"]["pixels"], meta["model"]["classes"]
    fastnn.io.save_arrays(tmp_path / "old.npz", arrays,
                          {k: v for k, v in meta.items() if k not in ("format", "version", "sha256")})
    old = MLP.load(tmp_path / "old.npz")
    assert old.pixels is None and old.classes is None
    assert np.array_equal(old.predict_proba(X), model.predict_proba(X))  # uint8: pixels
    floats = one_255th(X, np.float32)
    assert np.array_equal(old.predict_proba(floats), model.predict_proba(X))  # floats: as given


@pytest.mark.parametrize("field, value, message", [
    ("pixels", "yes", "pixels must be true, false or null"),
    ("classes", ["a", "b"], "classes must be 3 names"),
    ("classes", ["a", {"b": 1}, "c"], "classes must be 3 names"),
    ("classes", ["a", "b", "a"], "classes must be 3 distinct names"),
])
def test_model_files_with_bad_pixels_or_classes_are_refused(tmp_path, field, value, message):
    MLP(SIZES).save(tmp_path / "good.npz")
    arrays, meta = fastnn.io.load_arrays(tmp_path / "good.npz")
    meta["model"][field] = value
    fastnn.io.save_arrays(tmp_path / "bad.npz", arrays,
                          {k: v for k, v in meta.items() if k not in ("format", "version", "sha256")})
    with pytest.raises(fastnn.ModelFileError, match=message):
        MLP.load(tmp_path / "bad.npz")


# -- the scikit-learn wrapper ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sklearn_classifier_pixels_true_and_false_exactly(pixels_problem, dtype):
    """pixels=True reads uint8 bytes as the kernels' v * dtype(1/255) and divides other dtypes
    the same way first; pixels=False uses uint8 as the numbers 0..255, as scikit-learn does.
    String labels come back as names."""
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning

    from fastnn.sklearn import MLPClassifier

    X, y = pixels_problem
    settings = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=1, dtype=dtype, solver="sgd",
                    learning_rate_init=0.1, momentum=0.0, alpha=0.0, batch_size=16)

    def probabilities(X, pixels):
        with pytest.warns(ConvergenceWarning):  # 3 epochs
            return MLPClassifier(**settings, pixels=pixels).fit(X, NAMES[y]).predict_proba(X)

    on_bytes = probabilities(X, True)
    np.testing.assert_array_equal(probabilities(X.astype(dtype), True), on_bytes)
    np.testing.assert_array_equal(probabilities(one_255th(X, dtype), False), on_bytes)
    np.testing.assert_array_equal(probabilities(X, False), probabilities(X.astype(dtype), False))
    assert np.abs(probabilities(X, False) - on_bytes).max() > 0.01
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier(**settings, pixels=True).fit(X, NAMES[y])
    assert clf.classes_.tolist() == ["cat", "dog", "eel"] and set(clf.predict(X).tolist()) <= set(NAMES)
