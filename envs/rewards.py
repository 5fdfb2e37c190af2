"""Differentiable reward formulas of Gymnasium's own envs, on batched torch tensors.

A planner's ``reward_fn(state, action, next_state) -> reward`` (observations ``[..., S]``, actions
``[..., A]``, rewards ``[...]``). Written with tensor methods only, so this module needs no torch import;
the formula of this package's own cart-pole lives beside it (``cartpole.cartpole_swingup_reward``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["alive_bonus_reward", "inverted_double_pendulum_reward", "pendulum_reward", "reacher_reward"]


def pendulum_reward(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """Gymnasium ``Pendulum-v1``'s reward on its observation ``[cos θ, sin θ, θ̇]``, differentiable:
    ``−(θ² + 0.1 θ̇² + 0.001 u²)`` of the state the step starts from, torque ``u`` clipped to ±2."""
    theta = state[..., 1].atan2(state[..., 0])
    torque = action[..., 0].clamp(-2.0, 2.0)
    return -(theta.square() + 0.1 * state[..., 2].square() + 0.001 * torque.square())


def reacher_reward(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """Gymnasium ``Reacher-v5``'s reward on its observation (``[..., 10]``, the last two entries the fingertip
    minus the target in x, y), differentiable: ``−‖fingertip − target‖ − ‖a‖²`` of the state the step reaches, both
    weights 1 (the env's defaults)."""
    del state
    return -next_state[..., 8:10].norm(dim=-1) - action.square().sum(-1)


def alive_bonus_reward(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """The reward of envs that pay 1 per step while the episode lives (Gymnasium's ``InvertedPendulum-v5``):
    ones ``[...]`` of the steps' leading shape, tied to ``action``'s graph with a zero gradient (so a gradient
    planner can differentiate a return built from it).

    A constant tells no plan from another on its own: plan with it beside a ``termination_fn`` (e.g. a
    learned termination head), whose predicted probability of ending cuts the return."""
    del state, next_state
    return action[..., 0] * 0.0 + 1.0


def inverted_double_pendulum_reward(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """Gymnasium ``InvertedDoublePendulum-v5``'s reward while the episode lives, on its observation ``[x, sin θ1,
    sin θ2, cos θ1, cos θ2, ẋ, θ̇1, θ̇2, f]``, differentiable: ``10 − 0.01 x_tip² − (y_tip − 2)² − 0.001 θ̇1² −
    0.005 θ̇2²`` of the state reached, the tip of the second pole from the angles (two 0.6 m poles on the cart).

    The env pays no 10 on the step that ends the episode (tip height <= 1): plan with this beside a
    ``termination_fn`` (e.g. a learned termination head), as with :func:`alive_bonus_reward`."""
    del state, action
    x, sin1, sin2, cos1, cos2 = next_state[..., :5].unbind(-1)
    tip_x = x + 0.6 * (sin1 + sin1 * cos2 + cos1 * sin2)
    tip_y = 0.6 * (cos1 + cos1 * cos2 - sin1 * sin2)
    speeds = 1e-3 * next_state[..., 6].square() + 5e-3 * next_state[..., 7].square()
    return 10.0 - 0.01 * tip_x.square() - (tip_y - 2.0).square() - speeds
