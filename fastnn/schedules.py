"""Learning-rate schedules: the factor applied to the optimizer's lr at each step.

A schedule maps (epoch, step within the epoch, steps per epoch) to a factor of the base
learning rate; the per-epoch ones follow torch.optim.lr_scheduler stepped once per epoch.
``epoch`` counts every epoch the model has trained, across fit calls. ReduceOnPlateau also
looks at a metric after each epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class Schedule:
    """Constant learning rate; the base class."""

    # Whether the factor changes within an epoch (else it depends on the epoch alone). A subclass
    # that does not say is taken to change (factors then asks factor for every step).
    per_step = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "per_step" not in cls.__dict__:
            cls.per_step = True

    def factor(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        return 1.0

    def factors(self, epoch: int, first: int, last: int, steps_per_epoch: int) -> np.ndarray:
        """The factors of steps first..last-1 of an epoch."""
        if not self.per_step:
            return np.full(last - first, self.factor(epoch, first, steps_per_epoch))
        return np.array([self.factor(epoch, step, steps_per_epoch) for step in range(first, last)])

    def end_epoch(self, metric: float) -> None:
        """Called after each epoch with the monitored loss (validation loss if there is one)."""


Constant = Schedule


@dataclass
class StepDecay(Schedule):
    """lr * gamma ** (epoch // step_size), as torch's StepLR."""

    per_step = False

    step_size: int
    gamma: float = 0.1

    def factor(self, epoch, step, steps_per_epoch):
        return self.gamma ** (epoch // self.step_size)


@dataclass
class Exponential(Schedule):
    """lr * gamma ** epoch, as torch's ExponentialLR."""

    per_step = False

    gamma: float

    def factor(self, epoch, step, steps_per_epoch):
        return self.gamma ** epoch


@dataclass
class Cosine(Schedule):
    """Cosine annealing from lr to lr * min_factor over t_max epochs (torch's CosineAnnealingLR,
    closed form); ``per_step=True`` anneals smoothly within epochs too."""

    t_max: int
    min_factor: float = 0.0
    per_step: bool = False

    def factor(self, epoch, step, steps_per_epoch):
        t = epoch + (step / steps_per_epoch if self.per_step else 0.0)
        return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * min(t, self.t_max) / self.t_max)) / 2


@dataclass
class Warmup(Schedule):
    """Linear warm-up over the first ``steps`` steps, from lr / steps to lr, then ``then``."""

    steps: int
    then: Schedule = field(default_factory=Schedule)
    per_step = True

    def factor(self, epoch, step, steps_per_epoch):
        done = epoch * steps_per_epoch + step
        warm = min(1.0, (done + 1) / self.steps)
        return warm * self.then.factor(epoch, step, steps_per_epoch)

    def end_epoch(self, metric):
        self.then.end_epoch(metric)


@dataclass
class ReduceOnPlateau(Schedule):
    """Multiply the lr by ``factor_`` when the loss has not improved by ``threshold`` (relative)
    for ``patience`` epochs, as torch's ReduceLROnPlateau (mode 'min', threshold_mode 'rel')."""

    per_step = False

    reduce_by: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    min_factor: float = 0.0
    current: float = 1.0
    best: float = math.inf
    bad_epochs: int = 0

    def factor(self, epoch, step, steps_per_epoch):
        return self.current

    def end_epoch(self, metric):
        if metric < self.best * (1 - self.threshold):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.current = max(self.current * self.reduce_by, self.min_factor)
            self.bad_epochs = 0
