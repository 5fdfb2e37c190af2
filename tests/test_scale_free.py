"""Scale-free planning: state-side options and the default goal weights act in units of the state scale, so
a plan does not depend on the units a model's states happen to be in, and "no weights" is a usable objective."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mpc_grasp import make_planner
from mpc_grasp.models.analytic import CartPoleSwingupModel, PointMassWalls


class Scaled(torch.nn.Module):
    """``model`` in other units: states multiplied by ``factor`` (a latent model, so GRASP keeps its stop-gradient)."""

    plans_in_latent_space = True

    def __init__(self, model: torch.nn.Module, factor: float, declare: bool = False) -> None:
        super().__init__()
        self.model, self.factor = model, factor
        self.state_dim, self.action_dim = model.state_dim, model.action_dim
        if declare:
            self.state_scale = torch.full((model.state_dim,), 1.5 * factor)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.factor * self.model(state / self.factor, action)


STARTS = torch.tensor([[1.5, 1.5], [2.0, 4.0], [1.0, 3.0]])
GOALS = torch.tensor([[3.5, 4.5], [1.0, 1.5], [3.5, 1.0]])  # in the left room


@pytest.mark.parametrize("declare", [False, True], ids=["estimated", "declared"])
def test_a_latent_model_in_units_a_hundred_times_larger_plans_the_same(declare: bool) -> None:
    walls = PointMassWalls.from_layout("wall")
    plans = {}
    for factor in (1.0, 100.0):
        planner = make_planner("grasp", Scaled(walls, factor, declare), 20, iterations=40, seed=0)
        plans[factor] = planner.plan_batch(STARTS * factor, GOALS * factor)
    small, large = plans[1.0], plans[100.0]
    torch.testing.assert_close(large.info["state_scale"], 100.0 * small.info["state_scale"], rtol=1e-4, atol=0)
    torch.testing.assert_close(large.cost, small.cost, rtol=0.02, atol=1e-3)  # the objective is unit-free too
    if declare:  # the same plan up to round-off (an estimated scale's round-off can flip a sampled choice)
        torch.testing.assert_close(large.actions, small.actions, atol=2e-3, rtol=0)
    reached = [(plan.states[:, -1] / factor - GOALS).norm(dim=-1) < 0.3 for factor, plan in plans.items()]
    assert bool(reached[0].all()) and bool(reached[1].all()), reached


@pytest.mark.parametrize(
    "weights, needed",
    [(None, 5), ((0.1, 0.05, 1.0, 1.0, 0.05), 5), ((0.1, 0.1, 1.0, 1.0, 0.1), 4)],
    ids=["no-weights", "gym-weights", "other-weights"],
)
def test_grasp_swings_the_exact_cartpole_up_with_and_without_state_weights(weights, needed: int) -> None:
    env = gym.make("mpc_grasp/CartPoleSwingup-v0")
    starts = torch.tensor(np.stack([env.reset(seed=seed)[0] for seed in range(6)]))
    goal = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]).expand(6, 5)
    planner = make_planner("grasp", CartPoleSwingupModel(), 50, state_weights=weights, seed=0)
    upright = (planner.plan_batch(starts, goal).states[..., 2] > 0.9).any(-1)
    assert int(upright.sum()) >= needed, upright.tolist()


def test_the_state_scale_comes_from_the_model_or_the_argument_and_bad_ones_fail_before_planning() -> None:
    walls = PointMassWalls.from_layout("wall")
    declared = make_planner("cem", Scaled(walls, 1.0, declare=True), 5)
    assert torch.equal(declared.state_scale, torch.full((2,), 1.5))
    given = make_planner("cem", walls, 5, state_scale=[2.0, 3.0])
    assert torch.equal(given.state_scale, torch.tensor([2.0, 3.0]))
    result = given.plan([1.0, 1.0], [2.0, 2.0])
    assert torch.equal(result.info["state_scale"], torch.tensor([2.0, 3.0]))
    # without one, the scale is estimated from the start alone (batching never changes it)
    estimated = make_planner("cem", walls, 5).plan_batch(STARTS, GOALS).info["state_scale"]
    single = make_planner("cem", walls, 5).plan(STARTS[1], GOALS[1]).info["state_scale"]
    torch.testing.assert_close(estimated[1], single)
    with pytest.raises(ValueError, match="state_scale must be positive"):
        make_planner("grasp", walls, 5, state_scale=[1.0, 0.0])
    broken = Scaled(walls, 1.0)
    broken.state_scale = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="state_scale must hold 2 positive finite numbers"):
        make_planner("grasp", broken, 5)


def test_a_warm_start_keeps_the_scale_of_the_plan_it_continues() -> None:
    walls = PointMassWalls.from_layout("wall")
    planner = make_planner("grasp", walls, 10, iterations=5)
    first = planner.plan([1.0, 1.0], [3.0, 2.0])
    warm = planner.plan(first.states[1], [3.0, 2.0], init=first.shifted(1))
    torch.testing.assert_close(warm.info["state_scale"], first.info["state_scale"])
