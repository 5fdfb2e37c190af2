"""Closed-loop episodes of any agent in a Gymnasium env, recorded for summaries, plots and GIFs.

:func:`run_episodes` is THE episode loop of the package: the ``mpc-grasp run`` command, the demo
and the experiments all use it. It works with anything that has SB3's ``predict`` (``GraspMPC``,
SB3 models); for ``GraspMPC`` it also keeps every plan the agent made (rollout states, GRASP's
virtual states, wall time), so the executed path can be drawn against what was planned.

Seeding follows :func:`mpc_grasp.rl.baselines.evaluate_agent`: the first reset gets ``seed``, later episodes
continue the env's RNG, so the k-th start/goal is the same as in the RL baselines' evaluation.

Success is optional: envs that report ``info["is_success"]`` get success rates (SB3's convention);
for any other env (``Pendulum-v1``, ...) success is ``None`` and the return is the measure.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from mpc_grasp.stats import wilson_interval

__all__ = [
    "EpisodeRecord",
    "PlanSnapshot",
    "check_model_matches_env",
    "env_goal_state",
    "quiet_renderer",
    "run_episodes",
    "summarize_episodes",
]


@dataclass(frozen=True)
class PlanSnapshot:
    """One plan the agent made during an episode (arrays are copies, on CPU)."""

    step: int
    """Control step at which the plan was made (0 = first step)."""
    states: np.ndarray
    """[T+1, S] model rollout of the plan's actions from the state at ``step``."""
    virtual_states: np.ndarray | None
    """[T-1, S] GRASP's lifted states (None for shooting/sampling planners)."""
    wall_time: float
    iterations: int
    cost: float
    warm_started: bool


@dataclass(frozen=True)
class EpisodeRecord:
    """Outcome and trace of one closed-loop episode."""

    index: int
    success: bool | None
    """``info["is_success"]`` at the last step that reported it (SB3's convention, as in
    :func:`mpc_grasp.rl.baselines.evaluate_agent`); None when the env never reported it (success unknown)."""
    success_any: bool | None
    """Whether ``info["is_success"]`` held at some step (differs on swing-up, which does not stop on
    success); None when the env never reported it."""
    first_success_step: int | None
    steps: int
    episode_return: float
    terminated: bool
    truncated: bool
    states: np.ndarray
    """[steps+1, S] executed states (the observation vector; ``obs_key`` entry of dict observations)."""
    goal: np.ndarray | None
    plans: tuple[PlanSnapshot, ...] = ()
    frames: tuple[np.ndarray, ...] = field(default=(), repr=False)
    wall_time: float = 0.0

    @property
    def plan_times(self) -> list[float]:
        return [plan.wall_time for plan in self.plans]

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly summary (no per-step arrays besides start and goal)."""
        times = self.plan_times
        return {
            "index": self.index,
            "success": self.success,
            "success_any": self.success_any,
            "first_success_step": self.first_success_step,
            "steps": self.steps,
            "return": self.episode_return,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "replans": len(self.plans),
            "median_plan_time_s": float(np.median(times)) if times else None,
            "median_iterations": float(np.median([p.iterations for p in self.plans])) if self.plans else None,
            "wall_time_s": self.wall_time,
            "start": self.states[0].tolist(),
            "goal": None if self.goal is None else np.asarray(self.goal).tolist(),
        }


def _state_of(observation: Any, obs_key: str) -> np.ndarray:
    if isinstance(observation, Mapping):
        if obs_key not in observation:
            raise ValueError(f"dict observation has no key {obs_key!r} (keys: {sorted(observation)})")
        observation = observation[obs_key]
    return np.array(observation, dtype=np.float64, copy=True)


def env_goal_state(observation: Any, info: Mapping[str, Any], goal_key: str = "desired_goal") -> np.ndarray | None:
    """The goal an env announces: ``observation[goal_key]`` for dict observations, else ``info["goal"]``."""
    if isinstance(observation, Mapping) and goal_key in observation:
        return np.array(observation[goal_key], dtype=np.float64, copy=True)
    if "goal" in info:
        return np.array(info["goal"], dtype=np.float64, copy=True)
    return None


def _episode_limit(env: gym.Env, max_steps: int | None) -> int:
    spec_limit = env.spec.max_episode_steps if env.spec is not None else None
    limits = [limit for limit in (max_steps, spec_limit) if limit is not None]
    if not limits:
        raise ValueError("the env has no TimeLimit (spec.max_episode_steps); pass max_steps")
    return int(min(limits))


def run_episodes(
    env: gym.Env,
    agent: Any,
    episodes: int,
    seed: int | None = 0,
    *,
    max_steps: int | None = None,
    reset_options: Mapping[str, Any] | None = None,
    goal_from_info: bool = True,
    record_frames: int = 0,
    obs_key: str = "observation",
    goal_key: str = "desired_goal",
    progress: bool = True,
) -> list[EpisodeRecord]:
    """Run ``episodes`` episodes of ``agent`` (SB3 ``predict``) in ``env``; one record per episode.

    ``agent.reset()`` (when present) starts each episode. With ``goal_from_info`` and plain (non-dict)
    observations, the env's ``info["goal"]`` after reset is handed to ``agent.set_goal`` (cart-pole
    announces its upright goal that way; dict observations carry theirs). The first
    ``record_frames`` episodes keep ``env.render()`` frames (make the env with
    ``render_mode="rgb_array"``; :func:`quiet_renderer` is applied). Episodes end at termination, truncation
    or ``max_steps``.
    Envs that never report ``info["is_success"]`` get records with ``success=None``.
    """
    if int(episodes) != episodes or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if not callable(getattr(agent, "predict", None)):
        raise TypeError(f"agent must have predict(obs, ...) -> (action, state), got {type(agent).__name__}")
    if record_frames and getattr(env, "render_mode", None) != "rgb_array":
        raise ValueError("record_frames needs an env made with render_mode='rgb_array'")
    if record_frames:
        quiet_renderer()
    limit = _episode_limit(env, max_steps)
    records: list[EpisodeRecord] = []
    on_terminal = sys.stderr.isatty()  # a piped log gets one line per episode instead of redrawn bars
    bar = tqdm(
        total=int(episodes), desc="episodes", unit="ep", disable=not (progress and on_terminal), dynamic_ncols=True
    )
    for index in range(int(episodes)):
        records.append(
            _run_one(
                env,
                agent,
                index,
                seed if index == 0 else None,
                limit,
                reset_options,
                goal_from_info,
                index < record_frames,
                obs_key,
                goal_key,
                progress and on_terminal,
            )
        )
        bar.set_postfix(_progress_postfix(records), refresh=False)
        bar.update(1)
        if progress and not on_terminal:
            print(_episode_line(records[-1], int(episodes)), file=sys.stderr, flush=True)
    bar.close()
    return records


def quiet_renderer() -> None:
    """Give SDL (pygame: Gymnasium's classic-control renderers) a private ``XDG_RUNTIME_DIR`` when none is
    set, so rendering prints no ``XDG_RUNTIME_DIR is invalid or not set`` line; a set value is kept.

    The folder is private (mode 0700), removed at exit, and shared by later calls."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="mpc_grasp-runtime-")
    os.environ["XDG_RUNTIME_DIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


def _episode_line(record: EpisodeRecord, episodes: int) -> str:
    """One log line per finished episode (for logs that are not a terminal)."""
    outcome = {None: "", True: "success, ", False: "no success, "}[record.success]
    return (
        f"episode {record.index + 1}/{episodes}: {outcome}{record.steps} steps, return {record.episode_return:.1f} "
        f"({record.wall_time:.1f} s)"
    )


def _run_one(
    env: gym.Env,
    agent: Any,
    index: int,
    seed: int | None,
    limit: int,
    reset_options: Mapping[str, Any] | None,
    goal_from_info: bool,
    record: bool,
    obs_key: str,
    goal_key: str,
    progress: bool,
) -> EpisodeRecord:
    started = time.perf_counter()
    obs, info, goal = _start_episode(env, agent, seed, reset_options, goal_from_info, goal_key)
    states = [_state_of(obs, obs_key)]
    frames: list[Any] = [env.render()] if record else []  # rgb_array frames
    plans: list[PlanSnapshot] = []
    last_plan = getattr(agent, "last_plan", None)
    episode_return, first_success = 0.0, None
    terminated = truncated = False
    success = _reported_success(info, None)
    steps_bar = tqdm(
        total=limit, desc=f"episode {index}", unit="step", leave=False, disable=not progress, dynamic_ncols=True
    )
    for step in range(limit):
        action, _ = agent.predict(obs, deterministic=True)
        plan = getattr(agent, "last_plan", None)
        if plan is not None and plan is not last_plan:
            plans.append(_snapshot(agent, plan, step))
            last_plan = plan
        obs, reward, terminated, truncated, info = env.step(action)
        states.append(_state_of(obs, obs_key))
        episode_return += float(reward)
        success = _reported_success(info, success)
        if success and first_success is None:
            first_success = step + 1
        if record:
            frames.append(env.render())
        steps_bar.update(1)
        if terminated or truncated:
            break
    steps_bar.close()
    return EpisodeRecord(
        index=index,
        success=success,
        success_any=None if success is None else first_success is not None,
        first_success_step=first_success,
        steps=len(states) - 1,
        episode_return=episode_return,
        terminated=bool(terminated),
        truncated=bool(truncated),
        states=np.stack(states),
        goal=goal,
        plans=tuple(plans),
        frames=tuple(frames),
        wall_time=time.perf_counter() - started,
    )


def _start_episode(
    env: gym.Env,
    agent: Any,
    seed: int | None,
    reset_options: Mapping[str, Any] | None,
    goal_from_info: bool,
    goal_key: str,
) -> tuple[Any, dict[str, Any], np.ndarray | None]:
    """Reset env and agent; hand a plain-observation env's ``info["goal"]`` to the agent. (obs, info, goal)."""
    obs, info = env.reset(seed=seed, options=dict(reset_options) if reset_options else None)
    if callable(getattr(agent, "reset", None)):
        agent.reset()
    goal = env_goal_state(obs, info, goal_key)
    hands_goal = goal_from_info and not isinstance(obs, Mapping) and goal is not None
    if hands_goal and callable(getattr(agent, "set_goal", None)):
        agent.set_goal(goal)
    return obs, info, goal


def _reported_success(info: Mapping[str, Any], previous: bool | None) -> bool | None:
    """``info["is_success"]`` when the env reports it, else the previous value (None: never reported)."""
    return bool(info["is_success"]) if "is_success" in info else previous


def _progress_postfix(records: Sequence[EpisodeRecord]) -> dict[str, str]:
    """Progress-bar text: successes so far, or the mean return for envs without success."""
    known = [r.success for r in records if r.success is not None]
    if known:
        return {"success": f"{sum(known)}/{len(known)}"}
    return {"mean_return": f"{np.mean([r.episode_return for r in records]):.1f}"}


def _snapshot(agent: Any, plan: Any, step: int) -> PlanSnapshot:
    """Copy of the newest plan (the first row of a batched plan); warm-start flag from the agent's diagnostics."""
    states = plan.states.numpy()
    virtual = None if plan.virtual_states is None else plan.virtual_states.numpy()
    if states.ndim == 3:
        states, virtual = states[0], None if virtual is None else virtual[0]
    diagnostics = getattr(agent, "diagnostics", None)
    warm = bool(diagnostics[-1].warm_started) if diagnostics else False
    return PlanSnapshot(
        step=step,
        states=states.copy(),
        virtual_states=None if virtual is None else virtual.copy(),
        wall_time=float(plan.info.get("wall_time", float("nan"))),
        iterations=int(plan.info.get("iterations", 0)),
        cost=float(plan.cost.float().mean()),
        warm_started=warm,
    )


def summarize_episodes(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    """Success rate with its Wilson 95% interval, mean return, steps to goal, median plan time per plan.

    Success counts only the episodes whose env reported ``info["is_success"]`` (``success_episodes``
    of them, as SB3's ``evaluate_policy``); with none, every success field is None (unknown, not 0).
    """
    if not records:
        raise ValueError("no episodes to summarize")
    n = len(records)
    reported = [r for r in records if r.success is not None]
    to_goal = [r.first_success_step for r in records if r.first_success_step is not None]
    plan_times = [t for r in records for t in r.plan_times]
    iterations = [p.iterations for r in records for p in r.plans]
    return {
        "episodes": n,
        **_success_fields(reported),
        "mean_return": float(np.mean([r.episode_return for r in records])),
        "std_return": float(np.std([r.episode_return for r in records])),
        "mean_length": float(np.mean([r.steps for r in records])),
        "env_steps": int(sum(r.steps for r in records)),
        "mean_steps_to_goal": float(np.mean(to_goal)) if to_goal else None,
        "median_steps_to_goal": float(np.median(to_goal)) if to_goal else None,
        "plans": len(plan_times),
        "median_plan_time_s": float(np.median(plan_times)) if plan_times else None,
        "median_iterations_per_plan": float(np.median(iterations)) if iterations else None,
        "total_plan_time_s": float(np.sum(plan_times)) if plan_times else 0.0,
        "wall_time_s": float(sum(r.wall_time for r in records)),
    }


def _success_fields(reported: Sequence[EpisodeRecord]) -> dict[str, Any]:
    """Successes, rates and Wilson intervals over the episodes that reported success (None if none did)."""
    m = len(reported)
    wins = sum(bool(r.success) for r in reported)
    wins_any = sum(bool(r.success_any) for r in reported)
    return {
        "success_episodes": m,
        "successes": wins if m else None,
        "success_rate": wins / m if m else None,
        "success_ci95": list(wilson_interval(wins, m)) if m else None,
        "success_any_rate": wins_any / m if m else None,
        "success_any_ci95": list(wilson_interval(wins_any, m)) if m else None,
    }


def check_model_matches_env(model: Any, env: gym.Env, obs_key: str = "observation") -> list[str]:
    """Raise ``ValueError`` when the model's state/action dims do not fit ``env``; return warnings.

    Warnings (not errors): the checkpoint says it was trained on another env id. Pixel models
    (with ``encode``) are not checked against the observation size.
    """
    action_space = env.action_space
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"planning needs a continuous Box action space; {_env_name(env)} has {action_space}")
    action_dim = int(np.prod(action_space.shape))
    if int(model.action_dim) != action_dim:
        raise ValueError(
            f"the model's action_dim is {model.action_dim} but {_env_name(env)} has {action_dim}-dim actions"
        )
    space = env.observation_space
    if isinstance(space, gym.spaces.Dict):
        if obs_key not in space.spaces:
            raise ValueError(
                f"{_env_name(env)} has dict observations without key {obs_key!r} (keys: {sorted(space.spaces)})"
            )
        space = space.spaces[obs_key]
    if getattr(model, "encode", None) is None:
        assert space.shape is not None, f"{_env_name(env)} observations have no shape"
        state_dim = int(np.prod(space.shape))
        if int(model.state_dim) != state_dim:
            raise ValueError(
                f"the model's state_dim is {model.state_dim} but {_env_name(env)} observations have {state_dim} dims "
                "(was the checkpoint trained on another env?)"
            )
    warnings = []
    trained_on = (getattr(model, "metadata", None) or {}).get("env_id")
    current = env.spec.id if env.spec is not None else None
    if trained_on and current and trained_on != current:
        warnings.append(f"the checkpoint was trained on {trained_on!r}, not {current!r}; dims match, so running anyway")
    return warnings


def _env_name(env: gym.Env) -> str:
    return repr(env.spec.id) if env.spec is not None else type(env.unwrapped).__name__
