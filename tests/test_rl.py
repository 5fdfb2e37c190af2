"""Tests of the SB3 RL baselines: tiny training runs, seeded shared evaluation, Wilson interval."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from bench.report import wilson_interval

from mpc_grasp.rl.baselines import evaluate_agent, train_rl_baseline

GRID = "mpc_grasp/GridWorldWall-v0"
CARTPOLE = "mpc_grasp/CartPoleSwingup-v0"
EVAL_KEYS = {
    "success_rate",
    "success_ci95",
    "successes",
    "success_any_rate",
    "success_any_ci95",
    "mean_return",
    "std_return",
    "mean_length",
    "n_episodes",
    "seed",
    "eval_time_s",
    "episode_returns",
    "episode_lengths",
    "episode_success",
    "episode_first_success_step",
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class RecordingAgent:
    """SB3-style agent (random or zero actions) that records each episode's first observation."""

    def __init__(self, action_dim: int, mode: str, seed: int = 0) -> None:
        self.action_dim, self.mode = action_dim, mode
        self.rng = np.random.default_rng(seed)
        self.first_obs: list[Any] = []

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        assert episode_start is not None and len(episode_start) == 1
        if episode_start[0]:
            first = (
                {k: np.array(v[0]) for k, v in observation.items()}
                if isinstance(observation, dict)
                else np.array(observation[0])
            )
            self.first_obs.append(first)
        if self.mode == "random":
            action = self.rng.uniform(-1.0, 1.0, size=(1, self.action_dim))
        else:
            action = np.zeros((1, self.action_dim))
        return action.astype(np.float32), state


def test_tiny_ppo_trains_and_evaluates_on_grid_world() -> None:
    model = train_rl_baseline(GRID, "ppo", total_timesteps=512, seed=0, hyperparams={"n_steps": 256})
    assert model.num_timesteps == 512
    result = evaluate_agent(model, GRID, n_episodes=3, seed=0, env_kwargs={"task": "across"})
    assert set(result) >= EVAL_KEYS
    assert 0.0 <= result["success_rate"] <= 1.0
    assert 0.0 <= result["success_ci95"][0] <= result["success_rate"] <= result["success_ci95"][1] <= 1.0
    assert result["n_episodes"] == 3 and len(result["episode_returns"]) == 3 and len(result["episode_success"]) == 3
    assert all(1 <= n <= 100 for n in result["episode_lengths"])
    assert result["mean_return"] == pytest.approx(np.mean(result["episode_returns"]))


def test_tiny_sac_with_her_runs_on_grid_world() -> None:
    model = train_rl_baseline(
        GRID, "sac", total_timesteps=250, seed=0, her=True, hyperparams={"learning_starts": 150, "batch_size": 32}
    )
    assert model.num_timesteps == 250
    result = evaluate_agent(model, GRID, n_episodes=2, seed=1, env_kwargs={"task": "across"})
    assert 0.0 <= result["success_rate"] <= 1.0


def test_same_seed_gives_same_tasks_for_different_agents() -> None:
    a, b = RecordingAgent(2, "random", seed=1), RecordingAgent(2, "zero")
    res_a = evaluate_agent(a, GRID, n_episodes=4, seed=7, env_kwargs={"task": "across"})
    res_b = evaluate_agent(b, GRID, n_episodes=4, seed=7, env_kwargs={"task": "across"})
    assert len(a.first_obs) == len(b.first_obs) == 4
    for oa, ob in zip(a.first_obs, b.first_obs):
        np.testing.assert_array_equal(oa["observation"], ob["observation"])
        np.testing.assert_array_equal(oa["desired_goal"], ob["desired_goal"])
        # "across" tasks: start and goal in opposite rooms of the wall layout (wall at x in [4, 5])
        assert (oa["observation"][0] < 4.0) != (oa["desired_goal"][0] < 4.0)
    assert res_a["episode_returns"] != res_b["episode_returns"]  # different agents really acted differently
    starts = [tuple(o["observation"]) for o in a.first_obs]
    assert len(set(starts)) == 4  # successive episodes are different tasks
    c = RecordingAgent(2, "zero")
    evaluate_agent(c, GRID, n_episodes=4, seed=8, env_kwargs={"task": "across"})
    assert not np.array_equal(c.first_obs[0]["observation"], a.first_obs[0]["observation"])


def test_same_seed_same_starts_on_cartpole_and_success_fields() -> None:
    a, b = RecordingAgent(1, "random", seed=3), RecordingAgent(1, "zero")
    res = evaluate_agent(a, CARTPOLE, n_episodes=2, seed=5)
    evaluate_agent(b, CARTPOLE, n_episodes=2, seed=5)
    for oa, ob in zip(a.first_obs, b.first_obs):
        np.testing.assert_array_equal(oa, ob)
    assert res["success_rate"] <= res["success_any_rate"]  # success at the end implies success at some step
    assert all(s is None or 1 <= s <= n for s, n in zip(res["episode_first_success_step"], res["episode_lengths"]))


@pytest.mark.parametrize(
    ("successes", "trials", "expected"),
    [(0, 10, (0.0, 0.27753)), (10, 10, (0.72247, 1.0)), (5, 10, (0.23659, 0.76341)), (45, 50, (0.78640, 0.95652))],
)
def test_wilson_interval_known_values(successes: int, trials: int, expected: tuple[float, float]) -> None:
    lo, hi = wilson_interval(successes, trials)
    assert lo == pytest.approx(expected[0], abs=1e-5)
    assert hi == pytest.approx(expected[1], abs=1e-5)


@pytest.mark.parametrize(("successes", "trials"), [(-1, 10), (11, 10), (0, 0), (1.5, 10)])
def test_wilson_interval_rejects_bad_counts(successes: float, trials: int) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes, trials)  # type: ignore[arg-type]


def test_unknown_env_and_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown Gymnasium env id"):
        train_rl_baseline("mpc_grasp/NoSuchEnv-v0", "ppo", total_timesteps=64)
    with pytest.raises(ValueError, match="unknown Gymnasium env id"):
        evaluate_agent(RecordingAgent(2, "zero"), "mpc_grasp/NoSuchEnv-v0", n_episodes=1)
    with pytest.raises(ValueError, match="unknown algo"):
        train_rl_baseline(GRID, "dqn", total_timesteps=64)
    with pytest.raises(ValueError, match="off-policy"):
        train_rl_baseline(GRID, "ppo", total_timesteps=64, her=True)
    with pytest.raises(ValueError, match="goal-conditioned"):
        train_rl_baseline(CARTPOLE, "sac", total_timesteps=64, her=True)
    with pytest.raises(ValueError, match="total_timesteps"):
        train_rl_baseline(GRID, "ppo", total_timesteps=0)
    with pytest.raises(TypeError, match="predict"):
        evaluate_agent(object(), GRID, n_episodes=1)  # type: ignore[arg-type]
