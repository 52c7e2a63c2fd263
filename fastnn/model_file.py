"""What a model file says about its network, checked before anything is built from it: a file
may be crafted (its checksum is no secret), so every field is checked for type and range, and
the parameter count is computed from the sizes before anything of that size is allocated."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np

from .io import brief

MAX_LAYERS_IN_FILE = 1000  # a model file's network: beyond it, building and describing it take long
MAX_COUNT_IN_FILE = 2**53  # epochs, batches and steps read from a file: exact in JSON, far from int64's end
CONFIG_KEYS = ("sizes", "activation", "output", "dropout", "init", "seed", "dtype", "pixels", "classes")


def _is_int_in(value, low: int, high: int) -> bool:
    """An int (not a bool) with low <= value < high."""
    return type(value) is int and low <= value < high


def _is_finite_number(value) -> bool:
    return (type(value) is float and math.isfinite(value)) or _is_int_in(value, -2**53, 2**53)


def checked_count(value, name: str) -> int:
    if not _is_int_in(value, 0, MAX_COUNT_IN_FILE):
        raise ValueError(f"{name} must be a whole number from 0 to 2**53, got {brief(value)}")
    return value


def checked_config(config, params) -> dict:
    """A model file's network settings (the keyword arguments of MLP), checked: types here,
    values by MLP itself; the parameter count is computed from the sizes and must be the stored
    parameters' count, so that nothing is allocated for a network the file does not hold."""
    if not isinstance(config, dict):
        raise ValueError(f"its network settings (model) must be an object, got {brief(config)}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown network settings {brief(unknown)}")
    sizes = config.get("sizes")
    if not (isinstance(sizes, list) and 2 <= len(sizes) <= MAX_LAYERS_IN_FILE + 1
            and all(_is_int_in(s, 1, 2**63) for s in sizes)):
        raise ValueError(f"sizes must be 2 to {MAX_LAYERS_IN_FILE + 1} integers from 1 to 2**63, got {brief(sizes)}")
    for key, kind, what in [("activation", str, "a string"), ("output", str, "a string"), ("init", str, "a string"),
                            ("dtype", str, "a string"), ("seed", int, "an integer"),
                            ("dropout", (int, float), "a number")]:
        if key in config and (not isinstance(config[key], kind) or isinstance(config[key], bool)):
            raise ValueError(f"{key} must be {what}, got {brief(config[key])}")
    if not isinstance(params, np.ndarray) or params.ndim != 1:
        raise ValueError("it holds no flat parameter array (params)")
    expected = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    if params.size != expected:
        network = "-".join(map(str, sizes))
        network = network if len(network) <= 80 else network[:77] + "..."
        raise ValueError(f"a {network} network has {expected:,} parameters; the file holds {params.size:,}")
    if not (config.get("pixels") is None or isinstance(config["pixels"], bool)):
        raise ValueError(f"pixels must be true, false or null, got {brief(config['pixels'])}")
    classes = config.get("classes")
    if classes is not None and not (isinstance(classes, list) and len(classes) == sizes[-1]
                                    and all(type(c) in (str, int, float, bool) for c in classes)):
        raise ValueError(f"classes must be {sizes[-1]} names (strings or numbers), got {brief(classes)}")
    dtype = config.get("dtype", "float32")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {brief(dtype)}")
    if params.dtype.name != dtype:
        raise ValueError(f"parameters of dtype {params.dtype} in a {brief(dtype)} network")
    # Files from before pixels was a setting read uint8 inputs as pixels, others as given.
    return {"pixels": None, **config}


def checked_rng_state(state, what: str) -> dict:
    """A saved state of the PCG64 generator (np.random.default_rng's), checked field by field:
    numpy raises OverflowError or TypeError on values out of range, or accepts odd types."""
    if not (isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
            and isinstance(state["state"], dict) and set(state["state"]) == {"state", "inc"}):
        raise ValueError(f"invalid {what}: {brief(state)}")
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"invalid {what}: the generator {brief(state['bit_generator'])} is not PCG64")
    for field, value, bits in [("state", state["state"]["state"], 128), ("inc", state["state"]["inc"], 128),
                               ("has_uint32", state["has_uint32"], 1), ("uinteger", state["uinteger"], 32)]:
        if not _is_int_in(value, 0, 2**bits):
            raise ValueError(f"invalid {what}: {field} must be a non-negative integer below 2**{bits}, "
                             f"got {brief(value)}")
    return state


def checked_position(position):
    """A checkpoint's place inside an interrupted epoch, checked: it comes from a file, and its
    numbers reach the training kernel as batch indices, its generator state the shuffle."""
    if position is None:
        return None
    if not (isinstance(position, dict) and _is_int_in(position.get("n_batches"), 1, MAX_COUNT_IN_FILE)
            and _is_int_in(position.get("batches_done"), 0, position["n_batches"])):
        raise ValueError(f"invalid position inside an epoch: {brief(position)}")
    checked_rng_state(position.get("rng"), "generator state of the position inside an epoch")
    return position


def checked_optimizer_state(saved, arrays: dict, model):
    """The optimizer and its state (moments, step count) saved with a checkpoint, checked: a
    known class, settings of the right types (their ranges are checked by the optimizer), and
    state arrays of the network's parameter count, dtype and finite values."""
    from . import optimizers
    from .training import OptimizerState

    if not isinstance(saved, dict):
        raise ValueError(f"the optimizer must be an object, got {brief(saved)}")
    name, settings = saved.get("class"), saved.get("settings")
    if not (isinstance(name, str) and name in optimizers.__all__):
        raise ValueError(f"unknown optimizer {brief(name)}")
    kind = getattr(optimizers, name)
    if not isinstance(settings, dict):
        raise ValueError(f"the optimizer's settings must be an object, got {brief(settings)}")
    unknown = sorted(set(settings) - {f.name for f in fields(kind)})
    if unknown:
        raise ValueError(f"unknown settings of {name}: {brief(unknown)}")
    for key, value in settings.items():
        if key == "nesterov":
            valid = isinstance(value, bool)
        elif key == "betas":
            valid = isinstance(value, list) and len(value) == 2 and all(map(_is_finite_number, value))
        else:
            valid = _is_finite_number(value)
        if not valid:
            raise ValueError(f"invalid optimizer setting {key}={brief(value)}")
    if "betas" in settings:
        settings = dict(settings, betas=tuple(settings["betas"]))
    state = OptimizerState.fresh(kind(**settings), model.layout.n_params, model.dtype)
    step = checked_count(saved.get("step"), "the optimizer's step")
    for slot in ("m", "v"):
        if getattr(state, slot).size:
            stored = f"optimizer_{slot}"
            if name == "RMSprop" and "optimizer_v" in arrays:  # files that kept it in v
                stored = "optimizer_v"
            values = arrays.get(stored)
            if not (isinstance(values, np.ndarray) and values.shape == (model.layout.n_weights,)
                    and values.dtype == model.dtype):
                raise ValueError(f"the optimizer's state {stored} is missing or not {model.layout.n_weights:,} "
                                 f"{model.dtype} values")
            if not np.isfinite(values).all():
                raise ValueError(f"the optimizer's state {stored} is not finite")
            setattr(state, slot, model.layout.from_dense(values))
    state.step = step
    return state
