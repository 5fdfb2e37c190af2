"""Model-free RL baselines (stable-baselines3 PPO / SAC) and a shared, seeded evaluation.

Plain functions, no framework:

* :func:`train_rl_baseline` trains PPO or SAC (optionally SAC + HER on goal envs) with small,
  documented default hyperparameters (:data:`PPO_DEFAULTS`, :data:`SAC_DEFAULTS`).
* :func:`evaluate_agent` runs ``n_episodes`` seeded episodes of *any* object with SB3's
  ``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)``
  (SB3 models, the model-based ``GraspMPC`` agent, ...), so every agent faces the same
  start/goal sequence and success, return and length come from the same episodes.
* success rates carry the 95% Wilson score interval (:func:`mpc_grasp.stats.wilson_interval`), as every
  summary of :func:`~mpc_grasp.control.episodes.summarize_episodes` does.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3 import PPO, SAC, HerReplayBuffer
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from tqdm.auto import tqdm

from mpc_grasp.control.episodes import run_episodes, summarize_episodes
from mpc_grasp.data import make_env
from mpc_grasp.validation import is_integer_at_least

__all__ = [
    "ALGOS",
    "HER_DEFAULTS",
    "PPO_DEFAULTS",
    "SAC_DEFAULTS",
    "PredictsActions",
    "baseline_hyperparams",
    "evaluate_agent",
    "train_rl_baseline",
]

ALGOS: tuple[str, ...] = ("ppo", "sac")

# PPO for short (100-250 step) episodes and 1e4-1e5 step budgets: SB3's defaults except a
# 1024-step rollout (so a 20k budget still gives ~20 policy updates) and a 64x64 MLP.
PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 1024,
    "batch_size": 64,
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "policy_kwargs": {"net_arch": [64, 64]},
}

# SAC: SB3's defaults (one gradient step per env step, automatic entropy tuning) with 1000 random
# warm-up steps, a replay buffer as large as the budget and a 256x256 MLP.
SAC_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4,
    "buffer_size": 1_000_000,  # capped at total_timesteps in train_rl_baseline
    "learning_starts": 1000,
    "batch_size": 256,
    "tau": 0.005,
    "gamma": 0.99,
    "train_freq": 1,
    "gradient_steps": 1,
    "ent_coef": "auto",
    "policy_kwargs": {"net_arch": [256, 256]},
}

# Hindsight experience replay (SAC on goal-conditioned Dict envs only): 4 relabelled goals per
# real one, drawn from the future of the same episode.
HER_DEFAULTS: dict[str, Any] = {"n_sampled_goal": 4, "goal_selection_strategy": "future"}

_GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


class PredictsActions(Protocol):
    """Anything evaluable: SB3's ``predict`` signature (models, policies, ``GraspMPC``)."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]: ...


def _probe_spaces(env_id: str, env_kwargs: Mapping[str, Any]) -> gym.Space:
    """Observation space of ``env_id`` (and a clear ``ValueError`` for a bad id / kwargs)."""
    env = make_env(env_id, **dict(env_kwargs))
    try:
        return env.observation_space
    finally:
        env.close()


def _is_goal_space(space: gym.Space) -> bool:
    """Whether ``space`` is a GoalEnv-style Dict (what ``HerReplayBuffer`` needs)."""
    return isinstance(space, spaces.Dict) and all(k in space.spaces for k in _GOAL_KEYS)


def baseline_hyperparams(
    algo: str,
    total_timesteps: int,
    her: bool = False,
    hyperparams: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments :func:`train_rl_baseline` passes to the SB3 constructor (defaults + overrides)."""
    algo = str(algo).lower()
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; valid: {list(ALGOS)}")
    if her and algo != "sac":
        raise ValueError("her=True needs an off-policy algorithm; use algo='sac'")
    params = copy.deepcopy(PPO_DEFAULTS if algo == "ppo" else SAC_DEFAULTS)
    if algo == "sac":
        params["buffer_size"] = min(int(params["buffer_size"]), int(total_timesteps))
        if her:
            params["replay_buffer_class"] = HerReplayBuffer
            params["replay_buffer_kwargs"] = dict(HER_DEFAULTS)
    params.update(copy.deepcopy(dict(hyperparams or {})))
    return params


class _TqdmCallback(BaseCallback):
    """tqdm bar over env steps (SB3's own ``progress_bar`` needs ``rich``, not a dependency here)."""

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        self._total, self._desc = total, desc
        self._bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self._bar = tqdm(
            total=self._total, desc=self._desc, unit="step", dynamic_ncols=True, leave=False, mininterval=2.0
        )

    def _on_step(self) -> bool:
        assert self._bar is not None
        self._bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()


def train_rl_baseline(
    env_id: str,
    algo: str = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    device: str = "cpu",
    progress_bar: bool = False,
    her: bool = False,
    hyperparams: Mapping[str, Any] | None = None,
    verbose: int = 0,
) -> BaseAlgorithm:
    """Train an SB3 ``algo`` ("ppo" | "sac") on ``env_id`` for ``total_timesteps`` env steps.

    Uses ``MultiInputPolicy`` for Dict observations and ``MlpPolicy`` otherwise. Defaults are
    :data:`PPO_DEFAULTS` / :data:`SAC_DEFAULTS`; ``hyperparams`` overrides individual keys.
    ``her=True`` (SAC on a goal-conditioned Dict env only) adds a ``HerReplayBuffer``
    (:data:`HER_DEFAULTS`). The training env is a single ``Monitor``-wrapped env seeded with
    ``seed``; ``model.num_timesteps`` afterwards is the number of env steps actually used (PPO
    rounds up to whole ``n_steps`` rollouts). ``progress_bar`` shows a tqdm bar.
    """
    if int(total_timesteps) != total_timesteps or total_timesteps <= 0:
        raise ValueError(f"total_timesteps must be a positive integer, got {total_timesteps!r}")
    total_timesteps = int(total_timesteps)
    algo = str(algo).lower()
    params = baseline_hyperparams(algo, total_timesteps, her=her, hyperparams=hyperparams)
    env_kwargs = dict(env_kwargs or {})
    obs_space = _probe_spaces(env_id, env_kwargs)
    if her and not _is_goal_space(obs_space):
        raise ValueError(
            f"her=True needs a goal-conditioned Dict observation with keys {list(_GOAL_KEYS)}; {env_id!r} has {obs_space}"
        )

    policy = "MultiInputPolicy" if isinstance(obs_space, spaces.Dict) else "MlpPolicy"
    vec_env = make_vec_env(env_id, n_envs=1, seed=seed, env_kwargs=env_kwargs)
    cls = PPO if algo == "ppo" else SAC
    model = cls(policy, vec_env, seed=seed, device=device, verbose=verbose, **params)
    callback = _TqdmCallback(total_timesteps, f"{algo}{'+her' if her else ''} {env_id}") if progress_bar else None
    model.learn(total_timesteps=total_timesteps, callback=callback)
    return model


def evaluate_agent(
    agent: PredictsActions,
    env_id: str,
    n_episodes: int = 50,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    deterministic: bool = True,
) -> dict[str, Any]:
    """Run ``n_episodes`` episodes of ``agent`` in ``env_id`` and summarise them, as SB3's ``evaluate_policy`` would.

    The agent sees what a one-env ``DummyVecEnv`` shows it (observations with a leading dim of 1 and
    ``episode_start`` flags); the episodes run in the package's one episode loop
    (:func:`~mpc_grasp.control.episodes.run_episodes`): the first reset gets ``seed``, later episodes continue
    the env's RNG, so the k-th start/goal is the same for every agent. ``success`` is ``info["is_success"]`` at
    an episode's last step; ``success_any`` whether it held at any step (they differ on cart-pole swing-up,
    which does not end on success). Returns a JSON-friendly dict (summary + per-episode lists).
    """
    if not is_integer_at_least(n_episodes, 1):
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    if not callable(getattr(agent, "predict", None)):
        raise TypeError(
            f"agent must have a predict(obs, state, episode_start, deterministic) method, got {type(agent).__name__}"
        )
    env_kwargs = dict(env_kwargs or {})
    env = make_env(env_id, **env_kwargs)  # clear error for an unknown id / bad kwargs
    try:
        _require_success_flag(env, env_id)
        records = run_episodes(env, _VecEnvView(agent, deterministic), int(n_episodes), int(seed), progress=False)
    finally:
        env.close()
    summary = summarize_episodes(records)
    return {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "seed": int(seed),
        "n_episodes": int(n_episodes),
        "deterministic": bool(deterministic),
        **{key: summary[key] for key in _SUMMARY_KEYS},
        "eval_time_s": summary["wall_time_s"],
        "episode_returns": [r.episode_return for r in records],
        "episode_lengths": [r.steps for r in records],
        "episode_success": [bool(r.success) for r in records],
        "episode_first_success_step": [r.first_success_step for r in records],
    }


_SUMMARY_KEYS = (
    "successes",
    "success_rate",
    "success_ci95",
    "success_any_rate",
    "success_any_ci95",
    "mean_return",
    "std_return",
    "mean_length",
)


def _require_success_flag(env: gym.Env, env_id: str) -> None:
    """One reset and one step: an env that does not report ``info["is_success"]`` fails before any episode."""
    env.reset(seed=0)
    *_, info = env.step(env.action_space.sample())
    if "is_success" not in info:
        raise ValueError(f"env {env_id!r} does not report info['is_success']; cannot measure success")


class _VecEnvView:
    """``agent`` as a one-env vector env's policy sees the world: batched observations, ``episode_start`` flags."""

    def __init__(self, agent: PredictsActions, deterministic: bool) -> None:
        self.agent, self.deterministic = agent, deterministic
        self._state: Any = None
        self._start = True

    def reset(self) -> None:
        self._state, self._start = None, True

    def predict(self, observation: Any, deterministic: bool = True) -> tuple[np.ndarray, None]:
        del deterministic  # the view's own flag decides, as evaluate_policy's does
        batched = (
            {key: np.asarray(value)[None] for key, value in observation.items()}
            if isinstance(observation, Mapping)
            else np.asarray(observation)[None]
        )
        action, self._state = self.agent.predict(
            batched, state=self._state, episode_start=np.array([self._start]), deterministic=self.deterministic
        )
        self._start = False
        return np.asarray(action)[0], None
