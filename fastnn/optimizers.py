"""Optimizers: settings for the update kernels in fastnn/kernels/optim.py.

Each follows the definition of its torch.optim namesake (same names for the same settings), so
that a network trained by either from the same weights on the same batches ends up the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


from .kernels.args import Hyper
from .kernels.codes import OPTIMIZER_CODES

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW"]


@dataclass(frozen=True)
class Optimizer:
    """Base class: a learning rate and an L2 weight decay (added to the gradient)."""

    lr: float = 0.1
    weight_decay: float = 0.0

    kind = "sgd"
    slots = 0  # state vectors per parameter: momentum (m), squares (v)

    def __post_init__(self):
        for name in ("lr",):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    @property
    def code(self) -> int:
        return OPTIMIZER_CODES[self.kind]

    def settings(self) -> Hyper:
        """The rule's settings as the update kernel takes them (kernels/optim.py)."""
        return Hyper(0.0, 0.0, 0.0, float(self.weight_decay))


@dataclass(frozen=True)
class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum as torch.optim.SGD."""

    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs a momentum > 0")

    @property
    def kind(self) -> str:
        return "nesterov" if self.nesterov else "momentum" if self.momentum else "sgd"

    @property
    def slots(self) -> int:
        return 1 if self.momentum else 0

    def settings(self) -> Hyper:
        return super().settings()._replace(beta1=float(self.momentum))


@dataclass(frozen=True)
class RMSprop(Optimizer):
    """torch.optim.RMSprop (not centred, no momentum): v = alpha v + (1 - alpha) g^2."""

    lr: float = 0.01
    alpha: float = 0.99
    eps: float = 1e-8

    kind = "rmsprop"
    slots = 1  # the squares' average, kept in m

    def settings(self) -> Hyper:
        return super().settings()._replace(beta1=float(self.alpha), eps=float(self.eps))


@dataclass(frozen=True)
class Adam(Optimizer):
    """torch.optim.Adam; weight_decay is L2 (added to the gradient)."""

    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    kind = "adam"
    slots = 2

    def __post_init__(self):
        super().__post_init__()
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")

    def settings(self) -> Hyper:
        beta1, beta2 = self.betas
        return super().settings()._replace(beta1=float(beta1), beta2=float(beta2), eps=float(self.eps))


@dataclass(frozen=True)
class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay, w *= 1 - lr * weight_decay, then Adam."""

    weight_decay: float = 0.01

    kind = "adamw"
