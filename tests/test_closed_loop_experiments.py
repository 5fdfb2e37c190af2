"""Helpers of experiments/closed_loop.py and experiments/warm_start.py (the runs themselves are too slow for tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def closed_loop():
    from mpc_grasp.bench.suites import agent_vs_rl  # the suite behind experiments/closed_loop.py

    return agent_vs_rl


@pytest.fixture(scope="module")
def warm_start():
    """The study moved into the package (experiments/warm_start.py is its entry point)."""
    from mpc_grasp.bench.suites import warm_start

    return warm_start


def test_closed_loop_options_per_env_and_flag_overrides(closed_loop) -> None:
    args = closed_loop.parse_args(
        [
            "--set",
            "dense_goal_weight=0.1",
            "--set",
            "cartpole:state_weights=[1,1,2,2,1]",
            "--set",
            "cartpole:dense_goal_weight=0.5",
            "--horizon",
            "30",
        ]
    )
    wall = closed_loop.agent_settings("wall_across", args)
    cart = closed_loop.agent_settings("cartpole", args)
    assert wall.horizon == cart.horizon == 30 and wall.goal_tolerance == 0.3 and cart.goal_tolerance is None
    assert dict(wall.options) == {"dense_goal_weight": 0.1}
    assert dict(cart.options) == {"dense_goal_weight": 0.5, "state_weights": [1, 1, 2, 2, 1]}
    with pytest.raises(SystemExit):
        closed_loop.parse_args(["--set", "nosuchenv:x=1"])
    quick = closed_loop.parse_args(["--quick"])
    assert quick.grid_steps == 2_000 and quick.n_eval == 2 and quick.horizon == 20


def test_warm_start_iterations_to_quality(warm_start) -> None:
    Trace = warm_start.Trace
    cold = Trace((1, 5, 10), (9.0, 4.0, 1.0), (3.0, 1.0, 0.2), final_cost=1.0, wall_time=1.0)
    warm = Trace((1, 5, 10), (2.0, 1.0, 0.9), (0.5, 0.25, 0.2), final_cost=0.9, wall_time=1.0)
    stuck = Trace((1, 5, 10), (6.0, 6.0, 6.0), (2.5, 2.5, 2.5), final_cost=6.0, wall_time=1.0)
    result = warm_start.analyse(
        [{"cold": cold, "warm": warm}, {"cold": stuck, "warm": stuck}], rel_tol=0.05, abs_tol=0.01, goal_tolerance=0.3
    )
    first, second = result["rows"]
    assert (first["cold_iters_to_quality"], first["warm_iters_to_quality"]) == (10, 5)
    assert (first["cold_iters_to_success"], first["warm_iters_to_success"]) == (10, 5)
    assert first["informative"] and not second["informative"]  # no progress: warm start cannot save anything
    assert second["warm_iters_to_success"] is None
    assert result["informative_replans"] == 1 and result["iters_to_quality_informative"]["warm"]["median"] == 5
    assert result["warm_better_final_cost"] == 1


def test_comparing_planner_traces_warm_and_cold_plans_inside_a_seeded_agent(warm_start) -> None:
    """The experiment's planner runs inside GraspMPC (which passes per-env seeds) and records one
    warm/cold comparison per warm-started replan; a kept warm start is traced at iteration 0."""
    import gymnasium as gym

    from mpc_grasp.control.agent import GraspMPC
    from mpc_grasp.models.analytic import PointMassWalls
    from mpc_grasp.planners import GraspConfig

    env = gym.make("mpc_grasp/GridWorldWall-v0")
    config = GraspConfig(iterations=20, num_candidates=2, goal_tolerance=0.3, check_every=5)
    planner = warm_start.ComparingGrasp(PointMassWalls.from_layout("wall"), 10, config, eval_every=5)
    agent = GraspMPC(PointMassWalls.from_layout("wall"), planner, horizon=10, action_space=env.action_space, replan_every=2, seed=3)
    obs, _ = env.reset(seed=0, options={"start": [2.0, 2.0], "goal": [2.5, 2.5]})
    for _ in range(4):
        action, _ = agent.predict(obs)
        obs, *_ = env.step(action)
    assert len(planner.comparisons) == 1  # replans at steps 0 (cold only) and 2 (warm + cold)
    warm = planner.comparisons[0]["warm"]
    assert warm.iterations and all(it == 0 or it % 5 == 0 or it == 20 for it in warm.iterations)
