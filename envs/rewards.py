"""Differentiable reward formulas of Gymnasium's own envs, on batched torch tensors.

A planner's ``reward_fn(state, action, next_state) -> reward`` (observations ``[..., S]``, actions
``[..., A]``, rewards ``[...]``). Written with tensor methods only, so this module needs no torch import;
the formula of this package's own cart-pole lives beside it (``cartpole.cartpole_swingup_reward``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["INVERTED_PENDULUM_HEALTHY_ANGLE", "inverted_pendulum_reward", "pendulum_reward"]


def pendulum_reward(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """Gymnasium ``Pendulum-v1``'s reward on its observation ``[cos θ, sin θ, θ̇]``, differentiable:
    ``−(θ² + 0.1 θ̇² + 0.001 u²)`` of the state the step starts from, torque ``u`` clipped to ±2."""
    theta = state[..., 1].atan2(state[..., 0])
    torque = action[..., 0].clamp(-2.0, 2.0)
    return -(theta.square() + 0.1 * state[..., 2].square() + 0.001 * torque.square())


INVERTED_PENDULUM_HEALTHY_ANGLE = 0.2
"""``InvertedPendulum-v5`` terminates once ``|pole angle| > 0.2`` rad (or the observation is not finite)."""


def inverted_pendulum_reward(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """A differentiable stand-in for ``InvertedPendulum-v5``'s reward, from its documented healthy condition.

    The env pays 1 per step while ``|θ| <= 0.2`` (observation ``[x, θ, ẋ, θ̇]``) and ends the episode
    otherwise: a constant while alive, so neither it nor a reward head fitted to it has a gradient, and a
    planner knows no termination. This surrogate is 1 at the upright pole and falls to 0 at the
    healthy limit, ``1 − (θ'/0.2)²`` of the state the step leads to (the action acts on it), minus cart
    terms ``x'² + 0.5 ẋ'²`` and ``0.001 u²``: the pole itself is easy to hold, but a cart that drifts hits
    its rail at ``x = ±1`` and the pole falls (lighter cart weights let it drift there). It is not the
    env's reward: report the env's return. See docs/decisions.md#inverted_pendulum_reward."""
    del state
    limit = INVERTED_PENDULUM_HEALTHY_ANGLE
    upright = 1.0 - (next_state[..., 1] / limit).square()
    cart = next_state[..., 0].square() + 0.5 * next_state[..., 2].square()
    return upright - cart - 0.001 * action[..., 0].square()
