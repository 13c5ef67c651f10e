"""The paper's training recipes as frozen dataclasses, and their shortened versions.

The learning rate is a pure function of (iteration, still warming up), so the schedule needs no
state of its own beyond what a checkpoint already holds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and step decays, counted in iterations as the paper does."""

    batch_size: int = 128  # images per SGD step (the paper: 128 on CIFAR, 256 on ImageNet)
    lr: float = 0.1  # base learning rate
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # L2 penalty on every weight
    iterations: int = 64_000  # SGD steps in the whole run
    milestones: tuple[int, ...] = (32_000, 48_000)  # the lr is multiplied by lr_decay at each of these
    lr_decay: float = 0.1  # factor applied at each milestone
    warmup_lr: float | None = None  # if set, the lr used until the training error falls below ...
    warmup_until_error: float = 0.8  # ... this (the paper's 110- and 1202-layer warm-up)

    def problems(self) -> list[str]:
        """Every invalid field, by name, with what it must be."""
        numbers = ("lr", "momentum", "weight_decay", "lr_decay", "warmup_until_error")
        wrong = [
            n for n in numbers if isinstance(getattr(self, n), bool) or not isinstance(getattr(self, n), int | float)
        ]
        if self.warmup_lr is not None and not isinstance(self.warmup_lr, int | float):
            wrong.append("warmup_lr")
        if not isinstance(self.milestones, tuple | list) or not all(isinstance(m, int) for m in self.milestones):
            wrong.append("milestones")
        if wrong:  # the range checks below need numbers
            return [f"recipe.{n}: must be a number, got {getattr(self, n)!r}" for n in wrong]
        found = []
        for name in ("batch_size", "iterations"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                found.append(f"recipe.{name}: must be a positive integer, got {getattr(self, name)!r}")
        for name in ("lr", "lr_decay"):
            if not 0 < getattr(self, name) < math.inf:
                found.append(f"recipe.{name}: must be > 0 and finite, got {getattr(self, name)!r}")
        if not 0 <= self.momentum < 1:
            found.append(f"recipe.momentum: must be in [0, 1), got {self.momentum!r}")
        if not 0 <= self.weight_decay < math.inf:
            found.append(f"recipe.weight_decay: must be >= 0 and finite, got {self.weight_decay!r}")
        if list(self.milestones) != sorted(self.milestones) or any(m < 1 for m in self.milestones):
            found.append(f"recipe.milestones: must be increasing positive iterations, got {self.milestones!r}")
        if self.warmup_lr is not None and not 0 < self.warmup_lr < math.inf:
            found.append(f"recipe.warmup_lr: must be > 0 and finite, or None, got {self.warmup_lr!r}")
        if not 0 < self.warmup_until_error <= 1:
            found.append(f"recipe.warmup_until_error: must be in (0, 1], got {self.warmup_until_error!r}")
        return found

    def validate(self) -> Recipe:
        """Return self, or raise one ValueError listing every bad field."""
        if found := self.problems():
            raise ValueError("invalid recipe:\n  " + "\n  ".join(found))
        return self

    def scaled(self, iterations: int) -> Recipe:
        """The same recipe over `iterations` steps, milestones kept at the same fractions of the run."""
        if iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        milestones = tuple(max(1, round(m * iterations / self.iterations)) for m in self.milestones)
        return replace(self, iterations=iterations, milestones=milestones)

    def lr_at(self, iteration: int, warming_up: bool = False) -> float:
        """The learning rate of iteration `iteration` (0-based)."""
        if warming_up and self.warmup_lr is not None:
            return self.warmup_lr
        decays = sum(iteration >= m for m in self.milestones)
        return self.lr * self.lr_decay**decays

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "milestones": list(self.milestones)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        """Inverse of `to_dict`; unknown keys raise naming the valid ones."""
        known = {f.name for f in fields(cls)}
        if unknown := set(values) - known:
            raise ValueError(f"unknown recipe fields {sorted(unknown)}; valid: {sorted(known)}")
        values = dict(values)
        if "milestones" in values:
            values["milestones"] = tuple(values["milestones"])
        return cls(**values)


def cifar_recipe(depth: int = 20) -> Recipe:
    """Section 4.2: batch 128, lr 0.1 divided by 10 at 32k and 48k, stop at 64k; for 110 layers and
    deeper, lr 0.01 until the training error is below 80 % (about 400 iterations) first."""
    return Recipe(warmup_lr=0.01 if depth >= 110 else None)


def imagenet_recipe() -> Recipe:
    """Section 3.4: batch 256, lr 0.1 divided by 10 "when the error plateaus", up to 60e4 iterations.

    The plateaus are fixed here at 150k, 300k and 450k iterations (every 30 epochs of 1.28M images),
    the usual reading of the paper's schedule; a plateau detector would make runs incomparable.
    """
    return Recipe(batch_size=256, iterations=600_000, milestones=(150_000, 300_000, 450_000))
