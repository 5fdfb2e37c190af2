"""A small optimiser for the planning tensors: Adam or SGD on a few tensors, each with its own learning rate.

The update is ``torch.optim.Adam``'s (betas 0.9 / 0.999, eps 1e-8, no weight decay, no amsgrad) and
``torch.optim.SGD``'s (no momentum). It exists because constructing a ``torch.optim`` optimiser imports
``torch._dynamo`` on first use, which costs seconds once per process: every ``mpc-grasp run`` and the first plan of
every script paid it. A planner's optimisers live for one plan over two tensors, so nothing else of
``torch.optim`` is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["PlanOptimizer"]


class PlanOptimizer:
    """``kind`` "adam" or "sgd" over ``groups`` = [(tensor, learning rate), ...]; the tensors' ``.grad`` drive
    :meth:`step`, :meth:`zero_grad` clears them (``set_to_none``)."""

    def __init__(
        self, groups: Sequence[tuple[Tensor, float]], kind: str = "adam", betas: tuple[float, float] = (0.9, 0.999)
    ) -> None:
        if kind not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {kind!r}")
        self.kind, self.betas, self.eps, self.steps = kind, betas, 1e-8, 0
        self.groups = [(tensor, float(lr)) for tensor, lr in groups]
        self._moments = [(torch.zeros_like(t), torch.zeros_like(t)) for t, _ in self.groups] if kind == "adam" else []

    def zero_grad(self) -> None:
        for tensor, _ in self.groups:
            tensor.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every tensor that has a gradient."""
        self.steps += 1
        beta1, beta2 = self.betas
        correction1, correction2 = 1 - beta1**self.steps, math.sqrt(1 - beta2**self.steps)
        for index, (tensor, lr) in enumerate(self.groups):
            grad = tensor.grad
            if grad is None:
                continue
            if self.kind == "sgd":
                tensor.add_(grad, alpha=-lr)
                continue
            mean, square = self._moments[index]
            mean.lerp_(grad, 1 - beta1)
            square.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denominator = (square.sqrt() / correction2).add_(self.eps)
            tensor.addcdiv_(mean, denominator, value=-lr / correction1)
