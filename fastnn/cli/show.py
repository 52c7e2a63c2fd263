"""`fastnn predict --show N`: the tutorial's look at single examples, the digit drawn in the
terminal (shaded characters, two per pixel so it keeps its shape) or saved as a PNG."""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError

SHADES = " .:-=+*#%@"


def image_side(n_features: int) -> int:
    """The side of a square image of n_features pixels; DataError when it is not a square."""
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise DataError(f"examples of {n_features} features are not square images; cannot draw them")
    return side


def value_range(X: np.ndarray) -> tuple[float, float]:
    """The range images of X are drawn in: 0..255 for uint8 pixels, else X's own."""
    X = np.asarray(X)
    if X.dtype == np.uint8:
        return 0.0, 255.0
    low, high = float(X.min()), float(X.max())
    return low, high if high > low else low + 1


def as_image(x: np.ndarray, limits: tuple[float, float] = (0.0, 255.0)) -> np.ndarray:
    """One example as a square image, its values scaled from ``limits`` (value_range) to [0, 1]."""
    low, high = limits
    x = (np.asarray(x, dtype=np.float64) - low) / (high - low)
    return x.reshape(image_side(x.size), -1)


def draw_text(x: np.ndarray, limits: tuple[float, float] = (0.0, 255.0)) -> str:
    """The digit as lines of text, darker characters for brighter pixels."""
    image = np.clip(as_image(x, limits), 0, 1)
    levels = np.minimum((image * len(SHADES)).astype(int), len(SHADES) - 1)
    return "\n".join("".join(SHADES[v] * 2 for v in row).rstrip() for row in levels)


def save_png(x: np.ndarray, title: str, path, size_inches: float = 3.0, dpi: int = 100,
             limits: tuple[float, float] = (0.0, 255.0)) -> None:
    """The digit as a PNG of size_inches * dpi pixels square, with a title."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size_inches, size_inches), dpi=dpi)
    ax = fig.add_subplot()
    ax.imshow(as_image(x, limits), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()
    fig.savefig(path, dpi=dpi)
