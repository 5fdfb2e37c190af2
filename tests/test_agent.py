"""GraspMPC in closed loop: Gymnasium episodes, SB3's evaluate_policy, warm starts, failures."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from mpc_grasp.envs import segment_hits_wall
from stable_baselines3.common.evaluation import evaluate_policy
from torch import nn

import mpc_grasp  # noqa: F401  (registers the envs)
from mpc_grasp.control.agent import GraspMPC
from mpc_grasp.models.analytic import PointMassWalls
from mpc_grasp.planners import PlanningError

WALL = "mpc_grasp/GridWorldWall-v0"


def analytic_agent(env: gym.Env, **options) -> GraspMPC:
    """GraspMPC on the analytic copy of the walls: isolates the agent from model learning."""
    defaults = dict(horizon=50, iterations=400, goal_tolerance=0.3)
    return GraspMPC(
        PointMassWalls.from_layout("wall"), "grasp", action_space=env.action_space, **{**defaults, **options}
    )


TASKS = [
    ([1.5, 1.5], [3.5, 6.5]),
    ([7.5, 7.5], [5.5, 1.5]),
    ([2.0, 7.5], [6.0, 7.5]),
]  # the last one goes through the door


def test_closed_loop_grasp_reaches_goals_in_the_real_env() -> None:
    env = gym.make(WALL)
    successes, steps_taken = 0, []
    for episode, (start, goal) in enumerate(TASKS):
        agent = analytic_agent(env, seed=episode, horizon=40, replan_every=10, replan_threshold=0.15)
        obs, info = env.reset(seed=episode, options={"start": start, "goal": goal})
        for step in range(100):  # noqa: B007 (read after the loop)
            action, state = agent.predict(obs, deterministic=True)
            assert state is None and env.action_space.contains(action)
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        successes += bool(info["is_success"])
        steps_taken.append(step + 1)
    assert successes >= 2, (successes, steps_taken)


def test_grasp_mpc_with_a_learned_model_solves_most_seeded_wall_episodes(wall_model_and_held_out) -> None:
    """The issue's closed-loop test: a LEARNED MLP (20k random-exploration transitions, shared session
    fixture) plans for 6 episodes of grid world `wall` (its default tasks, start and goal anywhere),
    all 6 envs planned in one batched GraspMPC. Measured with agent seeds 0/1/2: 5/6 each; every episode
    whose straight line is free succeeds; of the wall-blocked ones 1-2 of 4 (8 episodes). Across-the-
    wall-only tasks still fail with learned models (README: known limitations)."""
    model, _ = wall_model_and_held_out
    count = 6
    envs = [gym.make(WALL) for _ in range(count)]
    observations = [env.reset(seed=2000 + index)[0] for index, env in enumerate(envs)]
    blocked = [segment_hits_wall("wall", obs["observation"], obs["desired_goal"]) for obs in observations]
    agent = GraspMPC(
        model,
        "grasp",
        horizon=50,
        iterations=150,
        num_candidates=8,
        goal_tolerance=0.3,
        replan_every=5,
        action_space=envs[0].action_space,
        seed=0,
    )
    done, success = np.zeros(count, dtype=bool), np.zeros(count, dtype=bool)
    for _ in range(100):
        batch = {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
        actions, _ = agent.predict(batch, deterministic=True)
        for index, env in enumerate(envs):
            if done[index]:
                continue
            assert env.action_space.contains(actions[index]) and np.isfinite(actions[index]).all()
            observations[index], _, terminated, truncated, info = env.step(actions[index])
            success[index] |= bool(info["is_success"])
            done[index] = terminated or truncated
        if done.all():
            break
    assert success.sum() >= 4, (success.tolist(), blocked)  # most: measured 5/6
    assert all(success[index] for index in range(count) if not blocked[index]), (success.tolist(), blocked)


def test_evaluate_policy_runs_the_agent_unchanged() -> None:
    env = gym.make(WALL, task="across", max_episode_steps=30)
    agent = analytic_agent(env, iterations=50, num_candidates=4, horizon=20, replan_every=5)
    rewards, lengths = evaluate_policy(agent, env, n_eval_episodes=2, return_episode_rewards=True)
    assert len(rewards) == 2 and all(np.isfinite(rewards)) and all(1 <= n <= 30 for n in lengths)


def test_reset_and_episode_start_clear_the_warm_start() -> None:
    env = gym.make(WALL)
    agent = analytic_agent(env, iterations=30, num_candidates=2, horizon=10)
    obs, _ = env.reset(seed=0)
    agent.predict(obs)
    agent.predict(obs)
    assert agent.diagnostics[-1].warm_started
    agent.reset()
    agent.predict(obs)
    assert not agent.diagnostics[-1].warm_started
    agent.predict(obs, episode_start=np.array([True]))
    assert not agent.diagnostics[-1].warm_started


def test_replan_every_executes_the_plan_between_replans() -> None:
    env = gym.make(WALL)
    agent = analytic_agent(env, iterations=20, num_candidates=2, horizon=10, replan_every=3)
    obs, _ = env.reset(seed=1)
    actions = []
    for _ in range(7):
        action, _ = agent.predict(obs)
        actions.append(action)
        obs, *_ = env.step(action)
    assert [d.step for d in agent.diagnostics] == [0, 3, 6]
    plan = agent.diagnostics  # the second replan was warm-started from the first plan shifted by 3
    assert plan[1].warm_started and plan[2].warm_started


def test_explicit_goal_overrides_the_env_goal_and_batches_plan_together() -> None:
    env = gym.make(WALL)
    agent = analytic_agent(env, iterations=200, num_candidates=4, horizon=12, goal=[2.0, 2.0])
    obs, _ = env.reset(seed=0, options={"start": [3.0, 3.0], "goal": [7.0, 7.0]})
    batch = {key: np.stack([value, value + 0.5]) for key, value in obs.items()}
    actions, _ = agent.predict(batch)
    assert actions.shape == (2, 2)
    assert (actions < 0).all(), "both agents head to the explicit goal (2, 2), down-left"


class NaNModel(nn.Module):
    state_dim, action_dim = 2, 2

    def forward(self, state, action):
        return state + float("nan") * action


def test_a_nan_model_fails_loudly_and_never_returns_a_nan_action() -> None:
    env = gym.make(WALL)
    agent = GraspMPC(NaNModel(), "grasp", horizon=5, action_space=env.action_space, iterations=3)
    obs, _ = env.reset(seed=0)
    with pytest.raises(PlanningError, match="NaN"):
        agent.predict(obs)


def test_bad_observations_and_settings_raise_clear_errors() -> None:
    env = gym.make(WALL)
    agent = analytic_agent(env, iterations=5, horizon=5)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        agent.predict({**obs, "observation": np.array([np.nan, 1.0], dtype=np.float32)})
    with pytest.raises(ValueError, match="no key 'observation'"):
        agent.predict({"pos": obs["observation"]})
    with pytest.raises(ValueError, match="encodes to shape"):
        agent.predict(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="no goal"):
        analytic_agent(env, horizon=5).predict(obs["observation"])
    with pytest.raises(ValueError, match="action_space"):
        GraspMPC(PointMassWalls.from_layout("wall"), "grasp", horizon=5)
    with pytest.raises(ValueError, match="replan_every"):
        analytic_agent(env, replan_every=0)


def test_only_the_first_plan_of_an_every_step_episode_gets_the_short_first_plan_budget() -> None:
    """Replanning every step, the episode's first plan gives one action and warm plans refine it, so it runs
    GRASP's ``first_plan_iterations``; without warm starts, or when a plan serves several steps, plans keep the
    full cold budget."""
    from mpc_grasp.models.analytic import LinearSystem

    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    options = dict(horizon=8, action_space=space, goal=[5.0, 5.0], iterations=12, first_plan_iterations=3)
    state = np.zeros(2, np.float32)

    def budgets(agent: GraspMPC, steps: int) -> list[tuple[bool, int]]:
        for _ in range(steps):
            agent.predict(state)
        return [(d.warm_started, d.iterations) for d in agent.diagnostics]

    assert budgets(GraspMPC(LinearSystem.point(), "grasp", **options), 2) == [(False, 3), (True, 4)]
    every_plan_cold = GraspMPC(LinearSystem.point(), "grasp", warm_start=False, **options)
    assert budgets(every_plan_cold, 2) == [(False, 12), (False, 12)]
    assert budgets(GraspMPC(LinearSystem.point(), "grasp", replan_every=2, **options), 1) == [(False, 12)]
    reset = GraspMPC(LinearSystem.point(), "grasp", **options)
    budgets(reset, 2)
    reset.reset()
    assert budgets(reset, 1)[-1] == (False, 3)  # a new episode opens with the short plan again
    # CEM sets no first-plan budget: its first plan is a full cold plan
    assert budgets(
        GraspMPC(LinearSystem.point(), "cem", horizon=8, action_space=space, goal=[5.0, 5.0], iterations=6), 1
    ) == [(False, 6)]


def test_actions_stay_inside_a_narrow_action_space() -> None:
    env = gym.make(WALL)
    space = gym.spaces.Box(-0.3, 0.2, (2,), np.float32)
    agent = GraspMPC(PointMassWalls.from_layout("wall"), "cem", horizon=10, action_space=space, iterations=5)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        action, _ = agent.predict(obs)
        assert space.contains(action) and np.isfinite(action).all()
        obs, *_ = env.step(action)


def test_warm_plans_get_a_bigger_budget_when_each_plan_serves_several_steps() -> None:
    from mpc_grasp.models.analytic import LinearSystem

    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    every_step = GraspMPC(LinearSystem.point(), "grasp", horizon=5, action_space=space, goal=[1.0, 1.0])
    assert every_step.planner.config.warm_num_candidates == 16
    assert (every_step.schedule.cold_iterations, every_step.schedule.warm_iterations) == (20, 4)  # first plan 20
    amortised = GraspMPC(LinearSystem.point(), "grasp", horizon=5, action_space=space, goal=[1.0, 1.0], replan_every=5)
    assert (amortised.schedule.cold_iterations, amortised.schedule.warm_iterations) == (60, 8)
    chosen = GraspMPC(
        LinearSystem.point(),
        "grasp",
        horizon=5,
        action_space=space,
        goal=[1.0, 1.0],
        replan_every=5,
        warm_iterations=3,
        warm_num_candidates=2,
    )
    assert chosen.schedule.warm_iterations == 3 and chosen.planner.config.warm_num_candidates == 2
    cem = GraspMPC(LinearSystem.point(), "cem", horizon=5, action_space=space, goal=[1.0, 1.0], replan_every=5)
    assert (cem.schedule.cold_iterations, cem.schedule.warm_iterations) == (30, 10)  # one rule for every planner
    cold_only = GraspMPC(LinearSystem.point(), "grasp", horizon=5, action_space=space, goal=[1, 1], warm_start=False)
    assert cold_only.schedule.cold_iterations == 60
    with pytest.raises(ValueError, match="replan_every must be an integer >= 1"):
        GraspMPC(LinearSystem.point(), "grasp", horizon=5, action_space=space, goal=[1, 1], replan_every=0)
