"""The real-environment benchmark's pieces (DESIGN.md §7): its environments and tasks, planner rows, how a
plan is executed in the real env and judged, and the closed-loop episodes. :mod:`bench.suites.benchmark`
turns them into work units for the engine; other suites (pixels) reuse them.

* Envs (``ENVS``): grid world ``wall`` / ``umaze`` / ``maze`` with non-greedy start/goal pairs from
  :func:`mpc_grasp.envs.grid_world.sample_task`, cart-pole swing-up (start hanging down, goal upright at
  rest), and ``pixel_wall`` (grid world ``wall`` seen through 64x64 images, planned in a latent space).
* Open loop (:func:`plan_chunk`): one ``plan_batch`` call over a chunk of pairs, every plan's actions executed
  in the real env; success = within the env's goal region at any step <= H; success *under the model* is the
  same test on the model rollout.
* Closed loop (:func:`run_closed_loop`): ``GraspMPC`` episodes seeded like the RL baselines' evaluation, so
  the k-th start/goal is the one PPO/SAC faced.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from bench.report import median, success_rate
from mpc_grasp.data import collect_transitions, make_env
from mpc_grasp.planners import make_planner

__all__ = [
    "DEFAULT_BUDGETS",
    "ENVS",
    "VARIANTS",
    "BenchEnv",
    "PlannerVariant",
    "Task",
    "execute_open_loop",
    "load_or_train_mlp",
    "load_rl_runs",
    "make_tasks",
    "plan_chunk",
    "run_closed_loop",
    "success_steps",
    "summarize_closed_loop",
    "summarize_open_loop",
]


@dataclass(frozen=True)
class BenchEnv:
    """One benchmark environment: how to make it, its tasks, horizons and model data budget."""

    name: str
    env_id: str
    kind: str
    """'grid' (state = position), 'cartpole' (state = the 5-dim observation) or 'pixel' (latent)."""
    layout: str | None
    horizons: tuple[int, ...]
    quick_horizon: int
    data_steps: int
    """Transitions of random (correlated) exploration the learned model is trained on."""
    goal_tolerance: float
    """Early-stop tolerance of every planner (the env's goal radius for the grid worlds)."""
    closed_loop_steps: int
    """Episode length cap of the closed-loop runs."""
    replan_every: int
    replan_threshold: float | None
    planner_options: tuple[tuple[str, Any], ...] = ()
    """Options every planner gets on this env (the objective, not the budget)."""


CARTPOLE_STATE_WEIGHTS = (0.1, 0.05, 1.0, 1.0, 0.05)
"""Goal-cost weights of [x, x_dot, cos, sin, theta_dot] on cart-pole: the unweighted terminal cost lets the
velocity terms dominate and no planner got the pole up within 2 s (measured); the same for every planner."""

ENVS: dict[str, BenchEnv] = {
    "wall": BenchEnv("wall", "mpc_grasp/GridWorldWall-v0", "grid", "wall", (25, 50, 80), 50, 20_000, 0.3, 100, 10, 0.2),
    "umaze": BenchEnv(
        "umaze", "mpc_grasp/GridWorldUMaze-v0", "grid", "umaze", (25, 50, 80), 50, 20_000, 0.3, 100, 10, 0.2
    ),
    "maze": BenchEnv("maze", "mpc_grasp/GridWorldMaze-v0", "grid", "maze", (25, 50, 80), 80, 20_000, 0.3, 100, 10, 0.2),
    # 30k = the RL baselines' "same" budget; the swing-up success region is a box, 0.3 is the planners' early-stop radius
    "cartpole": BenchEnv(
        "cartpole",
        "mpc_grasp/CartPoleSwingup-v0",
        "cartpole",
        None,
        (25, 40, 50),
        25,
        30_000,
        0.3,
        100,
        5,
        None,
        (("state_weights", CARTPOLE_STATE_WEIGHTS),),
    ),
    "pixel_wall": BenchEnv(
        "pixel_wall", "mpc_grasp/PixelGridWorldWall-v0", "pixel", "wall", (25, 50, 80), 50, 10_000, 0.3, 100, 10, None
    ),
}
DEFAULT_ENVS = ("wall", "umaze", "maze", "cartpole")
MODEL_KINDS = ("learned", "analytic")
RL_ENV_KEYS = {"wall": "wall", "cartpole": "cartpole"}
"""Benchmark env -> env key of ``results/rl_baselines.json``."""


@dataclass(frozen=True)
class PlannerVariant:
    """A benchmark row: a planner plus fixed options (the GRASP ablations are variants of ``grasp``)."""

    label: str
    planner: str
    options: tuple[tuple[str, Any], ...] = ()
    description: str = ""


VARIANTS: dict[str, PlannerVariant] = {
    "grasp": PlannerVariant("grasp", "grasp", (), "GRASP, all mechanisms on"),
    "cem": PlannerVariant("cem", "cem", (), "cross-entropy method"),
    "mppi": PlannerVariant("mppi", "mppi", (), "MPPI"),
    "gd": PlannerVariant("gd", "gd", (), "gradient descent through the rollout (shooting)"),
    "grasp_no_detach": PlannerVariant(
        "grasp_no_detach", "grasp", (("detach_states", False),), "GRASP, full gradients into the model's state input"
    ),
    "grasp_no_noise": PlannerVariant("grasp_no_noise", "grasp", (("noise_scale", 0.0),), "GRASP without state noise"),
    "grasp_no_goal": PlannerVariant(
        "grasp_no_goal", "grasp", (("lifted_goal_weight", 0.0),), "GRASP without the dense goal term"
    ),
    "grasp_no_sync": PlannerVariant(
        "grasp_no_sync", "grasp", (("sync_every", 0),), "GRASP without the periodic shooting sync"
    ),
}
DEFAULT_PLANNERS = tuple(VARIANTS)

DEFAULT_BUDGETS: dict[str, dict[str, Any]] = {
    # Equal *seconds*, not equal calls: the package defaults took GRASP 300x16 ~7 s, CEM 30x256 ~3 s, GD 300x16 ~9 s per
    # plan (learned wall model, H=50, chunks of 10, one thread, loaded machine); these take about the same time each
    # (0.3-0.4 s per plan at H=50 on the idle machine, ~2 s under load). Measured numbers: README "Benchmark".
    "grasp": {"iterations": 100, "num_candidates": 8},
    "cem": {"iterations": 30, "num_candidates": 128, "elites": 16},
    "mppi": {"iterations": 25, "num_candidates": 128},
    "gd": {"iterations": 70, "num_candidates": 8},
}
QUICK_SCALE = 0.25
"""``--quick`` multiplies every planner's iterations by this."""


@dataclass(frozen=True)
class Task:
    """One start/goal pair: the planner's start/goal state and what the real env needs to start there."""

    index: int
    start: tuple[float, ...]
    goal: tuple[float, ...]
    env_start: tuple[float, ...]
    """Grid: the start position; cart-pole: the raw (x, x_dot, theta, theta_dot) state."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": list(self.start),
            "goal": list(self.goal),
            "env_start": list(self.env_start),
        }


# ----------------------------------------------------------------------------- tasks


def make_tasks(env: BenchEnv, pairs: int, seed: int) -> list[Task]:
    """``pairs`` fixed start/goal pairs of ``env`` (the same for every planner, model and horizon)."""
    from mpc_grasp.envs.cartpole import GOAL_OBS
    from mpc_grasp.envs.grid_world import sample_task

    tasks = []
    if env.kind in ("grid", "pixel"):
        rng = np.random.default_rng(seed)
        for index in range(pairs):
            start, goal = sample_task(env.layout, rng)
            tasks.append(Task(index, tuple(map(float, start)), tuple(map(float, goal)), tuple(map(float, start))))
    elif env.kind == "cartpole":
        gym_env = make_env(env.env_id)
        try:
            for index in range(pairs):
                obs, info = gym_env.reset(seed=seed * 100_003 + index)
                tasks.append(
                    Task(index, tuple(map(float, obs)), tuple(map(float, GOAL_OBS)), tuple(map(float, info["state"])))
                )
        finally:
            gym_env.close()
    else:
        raise ValueError(f"unknown env kind {env.kind!r}")
    return tasks


# ----------------------------------------------------------------------------- models


def load_or_train_mlp(
    env_id: str,
    steps: int,
    path: str | Path,
    *,
    seed: int = 0,
    hidden: Sequence[int] = (256, 256, 256),
    train_seconds: float = 120.0,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """The cached MLP world model of ``env_id`` trained on ``steps`` transitions, or collect + train + save it.

    A checkpoint at ``path`` is reused when its env id, data budget, seed and layer sizes match.
    Returns ``(model, info)`` with the one-step RMSE on held-out episodes and the build time.
    """
    from mpc_grasp.models import CheckpointError, load_world_model, one_step_error, save_world_model, train_world_model

    path = Path(path)
    wanted = {"env_id": env_id, "data_steps": int(steps), "seed": int(seed), "hidden": list(hidden)}
    if path.exists():
        try:
            model = load_world_model(path)
            meta = cast(dict[str, Any], model.metadata)  # nn.Module.__getattr__ hides the dict type
            if all(meta.get(key) == value for key, value in wanted.items()):
                return model, {
                    "path": str(path),
                    **{k: meta.get(k) for k in ("data_steps", "one_step_rmse", "collect_train_time_s")},
                    "reused": True,
                }
        except CheckpointError as error:
            print(f"cached model {path} unusable ({error}); retraining", file=sys.stderr, flush=True)
    started = time.perf_counter()
    dataset = collect_transitions(env_id, steps, seed=seed, num_envs=8, progress=progress)
    train, held_out = dataset.split(val_fraction=0.15, seed=seed)
    model = train_world_model(
        train,
        hidden_sizes=tuple(hidden),
        batch_size=512,
        lr=2e-3,
        epochs=100,
        max_time_s=train_seconds,
        seed=seed,
        progress=progress,
    )
    rmse = float(one_step_error(model, held_out)["rmse"])
    elapsed = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    save_world_model(model, path, metadata={**wanted, "one_step_rmse": rmse, "collect_train_time_s": elapsed})
    return model, {
        "path": str(path),
        "data_steps": int(steps),
        "one_step_rmse": rmse,
        "collect_train_time_s": elapsed,
        "reused": False,
    }


# ----------------------------------------------------------------------------- success and execution


def success_steps(env: BenchEnv, states: np.ndarray, goal: Sequence[float], goal_radius: float) -> np.ndarray:
    """[T+1] bool: is each state inside the env's goal region? Grid: within ``goal_radius`` of the goal
    position; cart-pole: the env's swing-up success test (``|theta| < 0.2``, ``|theta_dot| < 1``, ``|x| < 1``)
    applied to observation vectors."""
    states = np.asarray(states, dtype=np.float64)
    if env.kind in ("grid", "pixel"):
        return np.linalg.norm(states[..., :2] - np.asarray(goal, dtype=np.float64)[:2], axis=-1) <= goal_radius
    theta = np.arctan2(states[..., 3], states[..., 2])
    return (np.abs(theta) < 0.2) & (np.abs(states[..., 4]) < 1.0) & (np.abs(states[..., 0]) < 1.0)


def execute_open_loop(env: BenchEnv, gym_env: Any, task: Task, actions: np.ndarray) -> np.ndarray:
    """Execute ``actions`` [T, A] open loop in the real env from the task's start -> states [T'+1, S].

    Grid worlds: the exact physics ``GridWorldEnv.transition`` (positions). Cart-pole: ``reset`` to the
    start state and ``step`` (observations); a run that terminates (cart off the track) stops there.
    """
    actions = np.asarray(actions, dtype=np.float64)
    unwrapped = gym_env.unwrapped
    if env.kind in ("grid", "pixel"):
        positions = [np.asarray(task.env_start, dtype=np.float64)]
        for action in actions:
            positions.append(unwrapped.transition(positions[-1], action))
        return np.stack(positions)
    obs, _ = unwrapped.reset(options={"state": np.asarray(task.env_start, dtype=np.float64)})
    states = [np.asarray(obs, dtype=np.float64)]
    for action in actions:
        obs, _, terminated, _, _ = unwrapped.step(action)
        states.append(np.asarray(obs, dtype=np.float64))
        if terminated:
            break
    return np.stack(states)


def first_true(flags: np.ndarray) -> int | None:
    hits = np.flatnonzero(flags)
    return int(hits[0]) if hits.size else None


def planner_states(env: BenchEnv, model: Any, gym_env: Any, tasks: Sequence[Task]) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and goal tensors in the model's state space (pixel models: encoded images)."""
    if env.kind == "pixel":
        unwrapped = gym_env.unwrapped
        with torch.no_grad():
            starts = model.encode(np.stack([unwrapped.render_position(np.asarray(t.start), None) for t in tasks]))
            goals = model.encode(np.stack([unwrapped.goal_image(np.asarray(t.goal)) for t in tasks]))
        return starts.float().cpu(), goals.float().cpu()
    return torch.tensor([t.start for t in tasks], dtype=torch.float32), torch.tensor(
        [t.goal for t in tasks], dtype=torch.float32
    )


def plan_chunk(
    env: BenchEnv,
    model: Any,
    gym_env: Any,
    label: str,
    budget: Mapping[str, Any],
    horizon: int,
    tasks: Sequence[Task],
    seed: int,
) -> list[dict[str, Any]]:
    """Plan ``tasks`` in one ``plan_batch`` call, execute every plan in the real env; one record per task."""
    goal_radius = float(getattr(gym_env.unwrapped, "goal_radius", env.goal_tolerance))
    tolerance = None if env.kind == "pixel" else env.goal_tolerance  # no goal radius in a latent space
    planner = make_planner(
        VARIANTS[label].planner,
        model,
        horizon,
        action_space=gym_env.action_space,
        goal_tolerance=tolerance,
        seed=seed,
        **budget,
    )
    starts, goals = planner_states(env, model, gym_env, tasks)
    cpu_started = time.process_time()
    result = planner.plan_batch(starts, goals)
    cpu_time = time.process_time() - cpu_started
    info, n = result.info, len(tasks)
    records = []
    for row, task in enumerate(tasks):
        actions = result.actions[row].numpy()
        executed = execute_open_loop(env, gym_env, task, actions)
        env_hits = success_steps(env, executed, task.goal, goal_radius)
        record: dict[str, Any] = {
            "pair": task.index,
            "success_env": bool(env_hits.any()),
            "first_success_step_env": first_true(env_hits),
            "wall_time_per_plan": float(info["wall_time"]) / n,
            "cpu_time_per_plan": cpu_time / n,
            "chunk_size": n,
            "model_calls": int(info["model_calls"]),
            "model_transitions_per_plan": int(info["model_transitions"]) // n,
            "iterations": int(info["iterations"]),
            "early_stopped": bool(info["early_stopped"]),
            "cost": float(result.cost[row]),
        }
        if env.kind == "pixel":
            record["success_model"] = None
        else:
            model_hits = success_steps(env, result.states[row].numpy(), task.goal, goal_radius)
            record["success_model"] = bool(model_hits.any())
            record["first_success_step_model"] = first_true(model_hits)
            model_states = result.states[row].numpy().astype(np.float64)
            steps = min(len(model_states), len(executed))
            record["max_model_env_gap"] = float(np.abs(model_states[:steps] - executed[:steps]).max())
        if env.kind in ("grid", "pixel"):
            record["min_distance_env"] = float(np.linalg.norm(executed - np.asarray(task.goal), axis=-1).min())
        records.append(record)
    return records


# ----------------------------------------------------------------------------- summaries


def _rate(flags: Sequence[bool | None]) -> tuple[float | None, list[float] | None, int]:
    """(rate, Wilson 95% interval, successes) over the known flags."""
    rate, interval, count = success_rate(flags)
    return rate, interval, round((rate or 0.0) * count)


def summarize_open_loop(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Success in the real env (Wilson 95%) and under the model, medians of time / calls / steps."""
    rate, ci, wins = _rate([r["success_env"] for r in records])
    model_rate, model_ci, model_wins = _rate([r["success_model"] for r in records])
    return {
        "n": len(records),
        "successes": wins,
        "success_rate": rate,
        "success_ci95": ci,
        "success_model_rate": model_rate,
        "success_model_ci95": model_ci,
        "successes_model": model_wins,
        "median_wall_time_per_plan": median([r["wall_time_per_plan"] for r in records]),
        "median_cpu_time_per_plan": median([r["cpu_time_per_plan"] for r in records]),
        "median_time_to_success": median([r["wall_time_per_plan"] for r in records if r["success_env"]]),
        "median_steps_to_success": median([r["first_success_step_env"] for r in records]),
        "median_model_calls": median([r["model_calls"] for r in records]),
        "median_model_transitions": median([r["model_transitions_per_plan"] for r in records]),
        "median_iterations": median([r["iterations"] for r in records]),
        "early_stop_rate": float(np.mean([r["early_stopped"] for r in records])) if records else None,
    }


def summarize_closed_loop(episodes: Sequence[dict[str, Any]], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The closed-loop cell in the open-loop summary's vocabulary (success = goal reached at any step)."""
    rate, ci, wins = _rate([e["success_any"] for e in episodes])
    plans = summary["plans"]
    return {
        "n": len(episodes),
        "successes": wins,
        "success_rate": rate,
        "success_ci95": ci,
        "success_last_step_rate": summary["success_rate"],
        "success_model_rate": None,
        "success_model_ci95": None,
        "median_wall_time_per_plan": summary["median_plan_time_s"],
        "median_time_to_success": median([e["wall_time_s"] for e in episodes if e["success_any"]]),
        "median_steps_to_success": summary["median_steps_to_goal"],
        "median_model_calls": median([e["median_model_calls"] for e in episodes]),
        "median_model_transitions": median([e["median_model_transitions"] for e in episodes]),
        "median_iterations": summary["median_iterations_per_plan"],
        "plans": plans,
        "mean_return": summary["mean_return"],
        "env_steps": summary["env_steps"],
    }


class CountingAgent:
    """Delegates to a :class:`GraspMPC` and records (model calls, model transitions) of every plan, per episode."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.calls: list[list[tuple[int, int]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agent, name)

    def reset(self) -> None:
        self.agent.reset()
        self.calls.append([])

    def predict(self, observation: Any, *args: Any, **kwargs: Any) -> tuple[np.ndarray, None]:
        before = self.agent.last_plan
        out = self.agent.predict(observation, *args, **kwargs)
        plan = self.agent.last_plan
        if plan is not None and plan is not before:
            self.calls[-1].append((int(plan.info["model_calls"]), int(plan.info["model_transitions"])))
        return out


def run_closed_loop(
    env: BenchEnv,
    model: Any,
    label: str,
    budget: Mapping[str, Any],
    horizon: int,
    *,
    episodes: int,
    eval_seed: int,
    quick: bool = False,
) -> dict[str, Any]:
    """``episodes`` GraspMPC episodes in the real env from reset seed ``eval_seed`` on (the RL baselines' evaluation)."""
    from mpc_grasp.control.agent import GraspMPC
    from mpc_grasp.control.episodes import run_episodes, summarize_episodes

    kwargs = {"task": "across"} if env.kind in ("grid", "pixel") else {}
    gym_env = make_env(env.env_id, **kwargs)
    tolerance = None if env.kind == "pixel" else env.goal_tolerance
    agent = GraspMPC(
        model,
        VARIANTS[label].planner,
        horizon=horizon,
        action_space=gym_env.action_space,
        replan_every=env.replan_every,
        replan_threshold=env.replan_threshold,
        goal_tolerance=tolerance,
        **budget,
    )
    counting = CountingAgent(agent)
    max_steps = env.closed_loop_steps if not quick else min(env.closed_loop_steps, 2 * horizon)
    records = run_episodes(gym_env, counting, episodes, seed=eval_seed, max_steps=max_steps, progress=False)
    gym_env.close()
    items = []
    for record, calls in zip(records, counting.calls):
        item = record.to_json()
        item["median_model_calls"] = median([c for c, _ in calls])
        item["median_model_transitions"] = median([t for _, t in calls])
        items.append(item)
    summary = summarize_episodes(records)
    return {"episodes": items, "summary": summarize_closed_loop(items, summary), "max_steps": max_steps}


def load_rl_runs(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The RL baseline runs and their header (command, commit, evaluation seed and count) from ``rl_baselines.json``;
    empty when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return [], {}
    saved = json.loads(path.read_text())
    return saved.get("runs", []), {
        k: saved.get(k) for k in ("command", "git_commit", "eval_seed", "n_eval", "finished_utc")
    }
