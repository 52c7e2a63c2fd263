"""Ways out of fastnn and in: a trained MLP as an ONNX graph (``to_onnx``) or a
``torch.nn.Sequential`` (``to_torch``, saved as TorchScript by ``save_torchscript``), and a
fitted scikit-learn MLP as a fastnn MLP (``from_sklearn``).

Both exports compute what fastnn computes, from the inputs fastnn reads:

- **Pixels.** A model trained with ``pixels=True`` divides its inputs by 255 inside the graph, so
  the graph takes 0..255 intensities, as floats. A model of fastnn 0.1 (``pixels=None``) read
  uint8 inputs as pixels and others as given; the export cannot know which it was trained on, so
  it takes them for pixels (those models were trained on uint8 images) unless ``pixels=False``
  says otherwise.
- **Tables.** A model trained on a table (``fastnn train --data TABLE --target COL``) keeps the
  table's encoding (``model.metadata["table"]``). Its graph takes the encoded row in float64:
  each numeric column's raw value and each text column one-hot over its categories
  (``table_inputs`` builds that from a DataFrame), and applies the stored scaling,
  (value - offset) * factor, in float64 as fastnn does. A regression model's output is
  brought back to the target's own units (value / target_factor + target_offset), as
  ``fastnn predict`` prints it.
- **Outputs.** Softmax class probabilities, sigmoid probabilities of label 1, or the linear
  values: ``predict_proba``, of the model's dtype. onnxruntime has no float64 Erf: the graph of
  a float64 gelu network takes erf in float32 (its outputs are then within about 1e-7).

ONNX needs ``pip install 'fastnn[onnx]'`` (onnx, and onnxruntime to run the graph), PyTorch
``pip install 'fastnn[torch]'``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FastnnError
from .kernels.codes import LEAKY_SLOPE

if TYPE_CHECKING:
    import onnx
    import torch

    from .model import MLP

DEFAULT_OPSET = 17  # run by onnxruntime 1.12 and later
MIN_OPSET = 13  # Softmax over one axis, as fastnn's
FORMATS = {"onnx": ".onnx", "torch": ".pt"}  # --format and the default suffix of its file
# One protobuf message holds at most 2 GB: the weights must fit with room for the graph.
MAX_ONNX_WEIGHT_BYTES = 2**31 - 2**24
SKLEARN_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "identity"}
SQRT_HALF = 0.7071067811865476  # gelu's 1/sqrt(2), as the kernels use it


@dataclass(frozen=True)
class InputScaling:
    """What the network sees of input x: ((x - offset) * factor), computed in ``dtype`` (the
    exported graph's input type) and then taken to the model's dtype."""

    offset: np.ndarray
    factor: np.ndarray
    dtype: np.dtype
    meaning: str  # what the graph's inputs are, in words

    @property
    def shifts(self) -> bool:
        return bool(np.any(self.offset != 0))

    @property
    def scales(self) -> bool:
        return bool(np.any(self.factor != 1))


@dataclass(frozen=True)
class TargetScaling:
    """A table regression's output in the target's units: output / factor + offset."""

    offset: float
    factor: float


# -- what the exports compute ----------------------------------------------------------------------

def reads_pixels(model: MLP, pixels: bool | None = None) -> bool:
    """Whether the exported graph divides its inputs by 255. ``pixels`` answers it for a model
    of fastnn 0.1 (``model.pixels`` None; default True); for any other model it may only repeat
    the model's own setting."""
    if model.pixels is None:
        return True if pixels is None else bool(pixels)
    if pixels is not None and bool(pixels) != model.pixels:
        raise FastnnError(f"this model was trained with pixels={model.pixels}, and so is its export; pixels "
                          "is a choice only for a model of fastnn 0.1 (pixels=None)")
    return model.pixels


def table_encoding(model: MLP):
    """The TableEncoding of a model trained on a table, or None."""
    from .data.tables import TableEncoding

    stored = model.metadata.get("table")
    return None if stored is None else TableEncoding.from_dict(stored)


def input_scaling(model: MLP, pixels: bool | None = None) -> InputScaling:
    """How the exports turn their inputs into what the network sees (see the module's docstring)."""
    n_in = model.sizes[0]
    encoding = table_encoding(model)
    if encoding is not None:
        reads_pixels(model, pixels)  # a table model's pixels is False: refuse pixels=True
        if encoding.n_inputs != n_in:
            raise FastnnError(f"the model's table encoding has {encoding.n_inputs} inputs, its network {n_in}")
        return InputScaling(np.asarray(encoding.offset, np.float64), np.asarray(encoding.factor, np.float64),
                            np.dtype(np.float64),
                            "a table row, encoded: each numeric column's raw value, each text column one-hot over "
                            f"its categories, in float64: {shortened(table_input_names(encoding))}")
    dtype = model.dtype
    if reads_pixels(model, pixels):
        return InputScaling(np.zeros((), dtype), np.asarray(1 / 255, dtype), dtype,
                            "0..255 pixel intensities (the graph divides them by 255)")
    return InputScaling(np.zeros((), dtype), np.ones((), dtype), dtype, "the inputs as the model was trained on them")


def table_input_names(encoding) -> list[str]:
    """What each input of a table model's export is: a column, or column=category for one-hot."""
    names = []
    for c in encoding.columns:
        names.extend([f"{c}={k}" for k in encoding.categories[c]] if c in encoding.categories else [c])
    return names


def shortened(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def target_scaling(model: MLP) -> TargetScaling | None:
    """The output's way back to the target's units, for a regression model trained on a table."""
    encoding = table_encoding(model)
    if encoding is None or encoding.task != "regression":
        return None
    return TargetScaling(float(encoding.target_offset), float(encoding.target_factor))


def table_inputs(model: MLP, frame) -> np.ndarray:
    """The rows of a pandas DataFrame as the exports of a table model take them: (n, inputs)
    float64, numeric columns raw and text columns one-hot (the stored scaling is the graph's)."""
    encoding = table_encoding(model)
    if encoding is None:
        raise FastnnError("this model was not trained on a table")
    missing = [c for c in encoding.columns if c not in frame.columns]
    if missing:
        raise FastnnError(f"the table lacks the columns the model was trained on: {', '.join(missing)}")
    return encoding._raw_inputs(frame)


def output_meaning(model: MLP) -> str:
    if model.output == "softmax":
        return "softmax class probabilities"
    if model.output == "sigmoid":
        return "each output's sigmoid probability of label 1"
    return "regression values" + (" in the target's units" if target_scaling(model) else "")


def output_name(model: MLP) -> str:
    return "values" if model.output == "linear" else "probabilities"


# -- ONNX ------------------------------------------------------------------------------------------

def _need(package: str, extra: str, purpose: str):
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise FastnnError(f"{purpose} needs the {package} package: pip install 'fastnn[{extra}]'") from None


class _Graph:
    """An ONNX graph under construction: nodes in order, constants as initializers."""

    def __init__(self, onnx_module) -> None:
        self.onnx = onnx_module
        self.nodes: list = []
        self.initializers: list = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, name: str | None = None, **attributes) -> str:
        output = name or f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [output], **attributes))
        return output


def _onnx_activation(g: _Graph, x: str, activation: str, dtype: np.dtype, layer: int) -> str:
    """The hidden activation's nodes on ``x``, as fastnn's kernels compute it."""
    def const(name: str, value: float) -> str:
        return g.constant(f"{name}_{layer}", np.asarray(value, dtype))

    if activation == "relu":
        return g.op("Relu", x)
    if activation == "tanh":
        return g.op("Tanh", x)
    if activation == "sigmoid":
        return g.op("Sigmoid", x)
    if activation == "silu":
        return g.op("Mul", x, g.op("Sigmoid", x))
    if activation == "leaky_relu":
        if dtype == np.float32:
            return g.op("LeakyRelu", x, alpha=LEAKY_SLOPE)
        # onnxruntime has no float64 LeakyRelu; max(z, slope z) is the same for 0 < slope < 1
        return g.op("Max", x, g.op("Mul", x, const("slope", LEAKY_SLOPE)))
    if activation == "gelu":  # the exact form: z * 0.5 * (1 + erf(z / sqrt 2))
        scaled = g.op("Mul", x, const("sqrt_half", SQRT_HALF))
        if dtype == np.float32:
            erf = g.op("Erf", scaled)
        else:  # onnxruntime has no float64 Erf: float32's is good to about 1e-7
            float32, float64 = g.onnx.TensorProto.FLOAT, g.onnx.TensorProto.DOUBLE
            erf = g.op("Cast", g.op("Erf", g.op("Cast", scaled, to=float32)), to=float64)
        phi = g.op("Mul", g.op("Add", erf, const("one", 1.0)), const("half", 0.5))
        return g.op("Mul", x, phi)
    if activation == "identity":
        return x
    raise FastnnError(f"no ONNX form for the activation {activation!r}")


def onnx_model(model: MLP, *, opset: int | None = None, pixels: bool | None = None) -> onnx.ModelProto:
    """The ONNX graph of ``model`` (checked by onnx.checker) in ``opset`` (default 17): input
    ``input`` (n, inputs), output ``probabilities`` (softmax, sigmoid) or ``values`` (linear), of
    the model's dtype (the input is float64 for a table model); see the module's docstring for the
    inputs it takes."""
    onnx = _need("onnx", "onnx", "exporting to ONNX")
    from . import __version__

    opset = DEFAULT_OPSET if opset is None else opset
    check_opset(opset, onnx)
    if model.layout.n_weights * model.dtype.itemsize > MAX_ONNX_WEIGHT_BYTES:
        raise FastnnError(f"the network's {model.layout.n_weights:,} parameters are too large for one ONNX file "
                          "(protobuf's 2 GB limit)")
    scaling = input_scaling(model, pixels)
    dtype = model.dtype
    g = _Graph(onnx)
    x = "input"
    if scaling.shifts:
        x = g.op("Sub", x, g.constant("input_offset", scaling.offset))
    if scaling.scales:
        x = g.op("Mul", x, g.constant("input_factor", scaling.factor))
    if scaling.dtype != dtype:
        x = g.op("Cast", x, to=onnx.helper.np_dtype_to_tensor_dtype(dtype))
    last = len(model.sizes) - 2
    for layer, (W, b) in enumerate(model.get_weights()):
        x = g.op("MatMul", x, g.constant(f"W{layer}", W))
        x = g.op("Add", x, g.constant(f"b{layer}", b))
        if layer < last:
            x = _onnx_activation(g, x, model.activation, dtype, layer)
    if model.output == "softmax":
        x = g.op("Softmax", x, axis=1)
    elif model.output == "sigmoid":
        x = g.op("Sigmoid", x)
    target = target_scaling(model)
    if target is not None:
        x = g.op("Div", x, g.constant("target_factor", np.asarray(target.factor, dtype)))
        x = g.op("Add", x, g.constant("target_offset", np.asarray(target.offset, dtype)))
    g.op("Identity", x, name=output_name(model))
    graph = onnx.helper.make_graph(
        g.nodes, "fastnn_mlp",
        [onnx.helper.make_tensor_value_info("input", onnx.helper.np_dtype_to_tensor_dtype(scaling.dtype),
                                            ["n", model.sizes[0]])],
        [onnx.helper.make_tensor_value_info(output_name(model), onnx.helper.np_dtype_to_tensor_dtype(dtype),
                                            ["n", model.sizes[-1]])],
        g.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="fastnn",
                                   producer_version=__version__,
                                   doc_string=f"fastnn MLP {'-'.join(map(str, model.sizes))}: input: "
                                              f"{scaling.meaning}; output: {output_meaning(model)}")
    proto.ir_version = onnx.helper.find_min_ir_version_for(opsets)  # loadable by older runtimes
    onnx.helper.set_model_props(proto, _onnx_properties(model))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _onnx_properties(model: MLP) -> dict[str, str]:
    """The model's settings as ONNX metadata_props, for a reader that wants the class names."""
    props = {"fastnn.sizes": json.dumps(list(model.sizes)), "fastnn.activation": model.activation,
             "fastnn.output": model.output}
    if model.output == "softmax":
        props["fastnn.classes"] = json.dumps([_plain(c) for c in model.classes_.tolist()])
    encoding = table_encoding(model)
    if encoding is not None:
        props["fastnn.inputs"] = json.dumps(table_input_names(encoding))
        props["fastnn.table"] = json.dumps(encoding.to_dict())
    return props


def _plain(value: Any):
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def check_opset(opset: Any, onnx_module) -> None:
    highest = onnx_module.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= highest:
        raise FastnnError(f"the ONNX opset must be an integer from {MIN_OPSET} to {highest} "
                          f"(the installed onnx's newest), got {opset!r}")


def to_onnx(model: MLP, path, *, opset: int | None = None, pixels: bool | None = None) -> None:
    """Write ``model`` as an ONNX graph in ``opset`` (default 17) to ``path``, atomically
    (fastnn.io.atomic_write): onnxruntime gives ``model.predict_proba``'s outputs from the same
    inputs (see the module's docstring for pixels and tables). ``pixels``: only for a model of
    fastnn 0.1 (pixels None): whether its inputs are 0..255 pixels (default True)."""
    from .io import atomic_write

    data = onnx_model(model, opset=opset, pixels=pixels).SerializeToString()
    atomic_write(Path(path), lambda f: f.write(data))


# -- PyTorch ---------------------------------------------------------------------------------------

@functools.cache
def _torch_modules():
    """The two modules of our own, defined once torch is imported (fastnn does not need torch).
    TorchScript compiles them: a scripted network loads without fastnn."""
    import torch

    class ScaleInputs(torch.nn.Module):
        """((x - offset) * factor) in the offset's dtype, then in the network's dtype: fastnn's
        input scaling (pixels / 255, or a table's stored scaling)."""

        def __init__(self, offset: torch.Tensor, factor: torch.Tensor, out_dtype: torch.dtype) -> None:
            super().__init__()
            self.register_buffer("offset", offset)
            self.register_buffer("factor", factor)
            self.out_dtype = out_dtype

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return ((x.to(self.offset.dtype) - self.offset) * self.factor).to(self.out_dtype)

    class UnscaleTarget(torch.nn.Module):
        """output / factor + offset: a table regression's output in the target's units."""

        def __init__(self, offset: float, factor: float) -> None:
            super().__init__()
            self.offset = offset
            self.factor = factor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / self.factor + self.offset

    return ScaleInputs, UnscaleTarget


def _torch_activation(activation: str):
    import torch

    return {"relu": torch.nn.ReLU, "leaky_relu": lambda: torch.nn.LeakyReLU(LEAKY_SLOPE), "tanh": torch.nn.Tanh,
            "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU,
            "identity": torch.nn.Identity}[activation]()


def to_torch(model: MLP, *, pixels: bool | None = None) -> torch.nn.Sequential:
    """``model`` as a ``torch.nn.Sequential`` in eval mode whose outputs equal
    ``model.predict_proba``: a first module scaling the inputs (any numeric tensor: see the
    module's docstring), Linear layers (fastnn's W transposed, in the model's dtype), the hidden
    activations, and Softmax, Sigmoid or Identity. Save it as TorchScript (save_torchscript) or
    by its state_dict: its two modules of fastnn's own do not pickle whole."""
    torch = _need("torch", "torch", "exporting to PyTorch")
    ScaleInputs, UnscaleTarget = _torch_modules()
    scaling = input_scaling(model, pixels)
    dtype = getattr(torch, model.dtype.name)
    modules = [ScaleInputs(torch.from_numpy(np.array(scaling.offset)), torch.from_numpy(np.array(scaling.factor)),
                           dtype)]
    last = len(model.sizes) - 2
    for layer, (W, b) in enumerate(model.get_weights()):
        linear = torch.nn.Linear(W.shape[0], W.shape[1], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(b))
        modules.append(linear)
        if layer < last:
            modules.append(_torch_activation(model.activation))
    modules.append({"softmax": lambda: torch.nn.Softmax(dim=1), "sigmoid": torch.nn.Sigmoid,
                    "linear": torch.nn.Identity}[model.output]())
    target = target_scaling(model)
    if target is not None:
        modules.append(UnscaleTarget(target.offset, target.factor))
    return torch.nn.Sequential(*modules).eval()


def save_torchscript(model: MLP, path, *, pixels: bool | None = None) -> None:
    """Write ``to_torch(model)`` as TorchScript (torch.jit.script) to ``path``, atomically:
    ``torch.jit.load(path)`` runs it without fastnn."""
    torch = _need("torch", "torch", "exporting to PyTorch")
    from .io import atomic_write

    scripted = torch.jit.script(to_torch(model, pixels=pixels))
    atomic_write(Path(path), lambda f: torch.jit.save(scripted, f))


# -- the command line's export ---------------------------------------------------------------------

def format_of(path: Path | None) -> str:
    """The format a file name asks for: torch for .pt and .pth, else onnx."""
    return "torch" if path is not None and Path(path).suffix.lower() in (".pt", ".pth") else "onnx"


def export_file(model: MLP, path, *, format: str = "onnx", opset: int | None = None,
                pixels: bool | None = None) -> str:
    """Write ``model`` to ``path`` as ONNX or TorchScript; returns a line saying what the file
    takes and gives."""
    if format not in FORMATS:
        raise FastnnError(f"the export format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "onnx":
        to_onnx(model, path, opset=opset, pixels=pixels)
        kind = f"ONNX opset {DEFAULT_OPSET if opset is None else opset}"
        names = ("'input' ", f"'{output_name(model)}' ")
    else:
        if opset is not None:
            raise FastnnError("--opset is for the ONNX format")
        save_torchscript(model, path, pixels=pixels)
        kind, names = "TorchScript (torch.jit.load)", ("", "")
    scaling = input_scaling(model, pixels)
    return (f"wrote {path}: {kind}; input {names[0]}{scaling.dtype.name} (n, {model.sizes[0]}): {scaling.meaning}; "
            f"output {names[1]}{model.dtype.name} (n, {model.sizes[-1]}): {output_meaning(model)}")


# -- scikit-learn ----------------------------------------------------------------------------------

def from_sklearn(estimator, *, dtype: str | None = None) -> MLP:
    """A fastnn MLP with the weights of a fitted scikit-learn MLPClassifier or MLPRegressor,
    whose ``predict_proba`` equals the estimator's:

    - a multi-class classifier becomes a softmax output with the estimator's ``classes_``;
    - a binary classifier (scikit-learn's one logistic output) a sigmoid output with one unit:
      fastnn gives the (n, 1) probability of ``classes_[1]`` where scikit-learn gives (n, 2),
      and predict gives 0/1, the index into ``classes_``;
    - a multi-label classifier (0/1 indicator targets) a sigmoid output with one unit per label;
    - a regressor a linear output ((n, k) where scikit-learn's predict gives (n,) for one target).

    Hidden activations relu, tanh, logistic (fastnn's sigmoid) and identity. Inputs are used
    as given (pixels=False), as in scikit-learn. ``dtype`` defaults to that of the weights."""
    from .model import MLP

    coefs, intercepts, hidden, out = _sklearn_network(estimator)
    dtype = dtype or ("float32" if coefs[0].dtype == np.float32 else "float64")
    sizes = [coefs[0].shape[0], *(W.shape[1] for W in coefs)]
    if out == "softmax":
        model = MLP(sizes, activation=hidden, output="softmax", dtype=dtype,
                    classes=list(np.asarray(estimator.classes_).tolist()))
    else:
        model = MLP(sizes, activation=hidden, output="sigmoid" if out == "logistic" else "linear", dtype=dtype)
    model.set_weights(list(zip(coefs, intercepts)))
    return model


def _sklearn_network(estimator) -> tuple[list[np.ndarray], list[np.ndarray], str, str]:
    """(coefs, intercepts, fastnn's hidden activation, scikit-learn's out_activation_), checked."""
    from .model import MLP

    if isinstance(getattr(estimator, "model_", None), MLP):
        raise FastnnError("this is a fastnn.sklearn estimator: its trained fastnn MLP is its model_")
    if not all(hasattr(estimator, a) for a in ("activation", "coefs_", "intercepts_", "out_activation_")):
        raise FastnnError(f"from_sklearn takes a fitted scikit-learn MLPClassifier or MLPRegressor, "
                          f"got {type(estimator).__name__}" + (" (not fitted)" if hasattr(estimator, "activation")
                                                               else ""))
    hidden, out = estimator.activation, estimator.out_activation_
    if hidden not in SKLEARN_ACTIVATIONS:
        raise FastnnError(f"no fastnn activation for scikit-learn's {hidden!r}")
    if out not in ("softmax", "logistic", "identity"):
        raise FastnnError(f"no fastnn output for scikit-learn's out_activation_ {out!r}")
    coefs = [np.asarray(W) for W in estimator.coefs_]
    intercepts = [np.asarray(b) for b in estimator.intercepts_]
    chained = all(W.ndim == 2 for W in coefs) and all(a.shape[1] == b.shape[0] for a, b in zip(coefs, coefs[1:]))
    if not coefs or len(coefs) != len(intercepts) or not chained \
            or any(b.shape != (W.shape[1],) for W, b in zip(coefs, intercepts)):
        raise FastnnError("the estimator's coefs_ and intercepts_ do not form a network")
    if out == "softmax" and len(getattr(estimator, "classes_", ())) != coefs[-1].shape[1]:
        raise FastnnError("the estimator's classes_ do not match its output layer")
    if not all(np.isfinite(a).all() for a in (*coefs, *intercepts)):
        raise FastnnError("the estimator's weights are not all finite")
    return coefs, intercepts, SKLEARN_ACTIVATIONS[hidden], out
