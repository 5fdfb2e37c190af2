"""Batched planning is a speed-up, never a change of result: per-problem seeds and early stopping.

Problem i of ``plan_batch`` draws its noise from its own generator (seed ``config.seed + i`` or
``seeds[i]``) and is frozen when it reaches the goal, so it gets the plan a single-problem planner
with that seed returns; a vector GraspMPC acts like one GraspMPC per env.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import mpc_grasp  # noqa: F401  (registers the envs)
from mpc_grasp.control.agent import GraspMPC
from mpc_grasp.models.analytic import LinearSystem, PointMassWalls
from mpc_grasp.planners import PLANNERS, make_planner

WALL = "mpc_grasp/GridWorldWall-v0"
SMALL = {
    "grasp": dict(iterations=40, num_candidates=4, sync_every=10, sync_steps=3, action_noise=0.2),
    "gd": dict(iterations=20, num_candidates=4),
    "cem": dict(iterations=6, num_candidates=32, elites=4),
    "icem": dict(iterations=6, num_candidates=32),
    "mppi": dict(iterations=6, num_candidates=32),
}
STARTS = [[2.0, 5.0], [1.5, 1.5], [7.5, 7.5], [2.0, 7.5]]
GOALS = [[6.5, 5.0], [3.5, 6.5], [5.5, 1.5], [2.5, 7.0]]  # the last one is easy: it stops early


@pytest.mark.parametrize("name", sorted(PLANNERS))
@pytest.mark.parametrize("model_name", ["walls", "linear"])
def test_plan_batch_equals_separate_plans_with_per_problem_seeds(name: str, model_name: str) -> None:
    model = PointMassWalls.from_layout("wall") if model_name == "walls" else LinearSystem.point()
    options = dict(goal_tolerance=0.3, check_every=5, **SMALL[name])
    batch = make_planner(name, model, 12, seed=7, **options).plan_batch(STARTS, GOALS)
    for index, (start, goal) in enumerate(zip(STARTS, GOALS)):
        single = make_planner(name, model, 12, seed=7 + index, **options).plan(start, goal)
        torch.testing.assert_close(batch.actions[index], single.actions, atol=1e-5, rtol=0)
        torch.testing.assert_close(batch.states[index], single.states, atol=1e-5, rtol=0)
        assert int(batch.info["problem_iterations"][index]) == single.info["iterations"], (
            index,
            batch.info["problem_iterations"],
        )
    assert int(batch.info["problem_iterations"][-1]) < batch.info["iterations"], "the easy problem stopped on its own"


def test_explicit_seed_list_and_bad_seeds() -> None:
    planner = make_planner("mppi", LinearSystem.point(), 8, seed=0, **SMALL["mppi"])
    a = planner.plan_batch(STARTS[:2], GOALS[:2], seeds=[5, 9])
    b = make_planner("mppi", LinearSystem.point(), 8, seed=9, **SMALL["mppi"]).plan(STARTS[1], GOALS[1])
    torch.testing.assert_close(a.actions[1], b.actions, atol=1e-6, rtol=0)
    for bad, match in (
        ([1], "2 problems"),
        ([1, -1], "non-negative"),
        ("ab", "sequence"),
        ([1.5, 2], "non-negative integers"),
    ):
        with pytest.raises(ValueError, match=match):
            planner.plan_batch(STARTS[:2], GOALS[:2], seeds=bad)


def _vector_env(count: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: gym.make(WALL) for _ in range(count)])


@pytest.mark.parametrize("seed_style", ["int", "list"])
def test_vector_env_grasp_mpc_gives_the_same_actions_as_per_env_grasp_mpc(seed_style: str) -> None:
    """4 envs, 9 control steps, replan every 3 steps with warm starts and early stopping."""
    count, steps, seeds = 4, 9, [3, 4, 5, 6] if seed_style == "int" else [11, 2, 40, 7]
    options = dict(horizon=15, replan_every=3, goal_tolerance=0.3, check_every=5, **SMALL["grasp"])
    model = PointMassWalls.from_layout("wall")
    vec = _vector_env(count)
    obs, _ = vec.reset(seed=[100 + i for i in range(count)])
    vector_agent = GraspMPC(
        model, "grasp", action_space=vec.single_action_space, seed=3 if seed_style == "int" else seeds, **options
    )
    envs = [gym.make(WALL) for _ in range(count)]
    single_obs = [env.reset(seed=100 + i)[0] for i, env in enumerate(envs)]
    agents = [
        GraspMPC(model, "grasp", action_space=envs[i].action_space, seed=seeds[i], **options) for i in range(count)
    ]
    for i in range(count):
        np.testing.assert_array_equal(single_obs[i]["observation"], obs["observation"][i])
    for step in range(steps):
        vector_actions, _ = vector_agent.predict(obs)
        for i, (env, agent) in enumerate(zip(envs, agents)):
            action, _ = agent.predict(single_obs[i])
            np.testing.assert_allclose(vector_actions[i], action, atol=1e-5, err_msg=f"env {i} step {step}")
            single_obs[i], *_ = env.step(action)
        obs, *_ = vec.step(vector_actions)
    assert [d.step for d in vector_agent.diagnostics] == [0, 3, 6]
    vec.close()


def test_agent_rejects_bad_seeds() -> None:
    env = gym.make(WALL)
    model = PointMassWalls.from_layout("wall")
    for bad in (-1, [], [1, -2], "3", 1.5):
        with pytest.raises(ValueError, match="seed"):
            GraspMPC(model, "grasp", horizon=5, action_space=env.action_space, seed=bad, iterations=2)
    agent = GraspMPC(model, "grasp", horizon=5, action_space=env.action_space, seed=[1, 2, 3], iterations=2)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="3 per-env seeds but the observation batch has 1"):
        agent.predict(obs)
