"""The paper's protocol on the paper's tasks (issue 16): Point-Maze (UMaze, Medium) and Push-T, horizons 40-80,
open and closed loop, every planner at its defaults, success in the real env beside success under the model.

* Tasks (:data:`TASKS`): fixed start/goal pairs, the same for every planner and horizon, drawn with the adapters'
  reset options (Point-Maze: BFS path lengths ``{"path_length": k}`` cycled over the task's list; Push-T: the start
  block ``{"block_distance": d, "block_rotation": r}`` from the goal). A pair is its reset seed + options, so the
  real env restarts in exactly that state to execute a plan. Native env steps (no frameskip): at dt = 0.01 s the
  paper's horizons 40-80 span Point-Maze goals 1-4 cells away (docs/paper_tasks.md).
* World models (:func:`load_or_build_model`): ``collect_transitions`` (Point-Maze: correlated random exploration;
  Push-T: the noisy scripted pusher :func:`pushing_policy`) + ``train_world_model`` defaults, one thread; cached
  under ``checkpoints/paper_tasks/``.
* Open loop (:func:`run_open_loop_unit`, one unit per task, planner, horizon and chunk of pairs): each pair planned
  alone with ``plan`` (the wall time of one plan, as the planner gym), executed in the real env from its start;
  success = the env's own ``info["is_success"]`` at any step <= H; under the model = the same criterion on the
  model rollout (:func:`model_success_steps`: x-y within 0.45, the planners' goal tolerance; Push-T coverage > 0.95
  of the predicted block pose, :func:`tee_coverage`). Closed loop (:func:`run_closed_loop_unit`): ``GraspMPC``.

:func:`run_paper_tasks` runs the units with :func:`~bench.engine.run_units` and a resume log and writes
``paper_tasks.{json,md,csv,png}`` with :func:`~bench.report.write_report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from bench.engine import REPO_ROOT, ResumeLog, WorkUnit, file_hashes, fingerprint, run_units
from bench.report import ci_cell, median, number_cell, success_rate, write_report
from mpc_grasp.data import collect_transitions, make_env
from mpc_grasp.parallel import ParallelOptions
from mpc_grasp.planners import GraspConfig, make_planner

__all__ = [
    "PAPER_PLANNERS",
    "PAPER_REFERENCE",
    "TASKS",
    "PaperSuite",
    "PaperTask",
    "estimate_cost",
    "load_or_build_model",
    "make_pairs",
    "markdown",
    "model_coverage",
    "model_success_steps",
    "paired_time_ratio",
    "plot",
    "pushing_policy",
    "run_closed_loop_unit",
    "run_open_loop_unit",
    "run_paper_tasks",
    "summarize",
    "tee_coverage",
]

STEM = "paper_tasks"
_SOURCES = (
    "mpc_grasp/planners/*.py",
    "mpc_grasp/models/*.py",
    "mpc_grasp/control/*.py",
    "mpc_grasp/data/*.py",
    "envs/point_maze.py",
    "envs/pusht.py",
    "experiments/bench/suites/real_env.py",
)
"""With this file above its summary section: the code a unit's result depends on (its fingerprint); other edits keep the log valid."""
MODEL_DIR = REPO_ROOT / "checkpoints" / "paper_tasks"
PUSHT_WEIGHTS = (0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 1.0)
"""Push-T goal weights of the 8 features: the agent's goal position is arbitrary (docs/paper_tasks.md)."""


@dataclass(frozen=True)
class PaperTask:
    """One benchmark task: env, how its pairs are drawn, its model's data budget and its objective."""

    name: str
    env_id: str
    kind: str
    """'maze' (Point-Maze) or 'pusht'."""
    difficulties: tuple[float, ...]
    """Cycled over the pairs: BFS path lengths in cells (maze) or start-goal block distances in px (Push-T)."""
    data_steps: int
    goal_tolerance: float | None
    """Planners' early-stop tolerance (full-state distance of the last state); None: no early stop."""
    block_rotation: float = 0.0
    state_weights: tuple[float, ...] | None = None

    def reset_options(self, difficulty: float) -> dict[str, Any]:
        if self.kind == "maze":
            return {"path_length": int(difficulty)}
        return {"block_distance": float(difficulty), "block_rotation": self.block_rotation}

    def planner_kwargs(self) -> dict[str, Any]:
        return {} if self.state_weights is None else {"state_weights": list(self.state_weights)}


TASKS: dict[str, PaperTask] = {
    "umaze": PaperTask("umaze", "mpc_grasp/PointMazeUMaze-v0", "maze", (1, 2, 3), 20_000, 0.45),
    "medium": PaperTask("medium", "mpc_grasp/PointMazeMedium-v0", "maze", (1, 2, 3), 30_000, 0.45),
    "pusht": PaperTask("pusht", "mpc_grasp/PushT-v0", "pusht", (15.0, 30.0), 20_000, None, 0.1, PUSHT_WEIGHTS),
}

PAPER_PLANNERS: dict[str, str] = {"grasp": "grasp", "grasp_paper": "grasp", "cem": "cem", "mppi": "mppi", "gd": "gd"}
"""Row label -> planner; each at its defaults, ``grasp_paper`` with ``GraspConfig.paper()``."""

PAPER_REFERENCE: dict[int, dict[str, str]] = {
    40: {"cem": "61.4% / 35.3 s", "gd": "51.0% / 18.0 s", "grasp": "59.0% / 8.5 s"},
    50: {"cem": "30.2% / 96.2 s", "gd": "37.6% / 76.3 s", "grasp": "43.4% / 15.2 s"},
    60: {"cem": "7.2% / 83.1 s", "gd": "16.4% / 146.5 s", "grasp": "26.2% / 49.1 s"},
    80: {"cem": "2.8% / 132.2 s", "gd": "6.4% / 161.3 s", "grasp": "10.4% / 58.9 s"},
}
"""DESIGN.md §8: the GRASP paper, Push-T, DINO-WM visual model, open loop, success under the model / median time to success."""


def planner_options(label: str, task: PaperTask, seed: int) -> dict[str, Any]:
    """``make_planner`` / ``GraspMPC`` options of a row: the task's objective, its goal tolerance, a seed."""
    if label == "grasp_paper":
        return {"config": GraspConfig.paper(goal_tolerance=task.goal_tolerance, seed=seed), **task.planner_kwargs()}
    return {"goal_tolerance": task.goal_tolerance, "seed": seed, **task.planner_kwargs()}


# ----------------------------------------------------------------------------- pairs and success


def make_pairs(task: PaperTask, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` fixed start/goal pairs: reset seed, reset options, start and goal in the model's state space."""
    env = make_env(task.env_id)
    pairs = []
    try:
        for index in range(count):
            difficulty = task.difficulties[index % len(task.difficulties)]
            reset_seed, options = seed * 100_003 + index, task.reset_options(difficulty)
            obs, _ = env.reset(seed=reset_seed, options=options)
            pairs.append(
                {
                    "index": index,
                    "difficulty": difficulty,
                    "reset_seed": reset_seed,
                    "options": options,
                    "start": np.asarray(obs["observation"], dtype=np.float64).tolist(),
                    "goal": np.asarray(obs["desired_goal"], dtype=np.float64).tolist(),
                }
            )
    finally:
        env.close()
    return pairs


_TEE = None


def tee_coverage(block_poses: Any, goal_pose: Sequence[float]) -> np.ndarray:
    """gym-pusht's coverage (area of block T ∩ goal T / goal area) for block poses [..., 3] (px, px, rad):
    the env's own geometry (``PushTEnv.add_tee``: two 120x30 / 30x90 boxes, world = position + R(angle) local)."""
    from shapely.affinity import affine_transform
    from shapely.geometry import Polygon

    global _TEE
    if _TEE is None:
        scale, length = 30.0, 4.0
        bar = [
            (-length * scale / 2, scale),
            (length * scale / 2, scale),
            (length * scale / 2, 0),
            (-length * scale / 2, 0),
        ]
        stem = [(-scale / 2, scale), (-scale / 2, length * scale), (scale / 2, length * scale), (scale / 2, scale)]
        _TEE = Polygon(bar).union(Polygon(stem))

    def placed(pose: Any) -> Any:
        x, y, angle = (float(v) for v in pose)
        c, s = np.cos(angle), np.sin(angle)
        return affine_transform(_TEE, [c, -s, s, c, x, y])

    goal = placed(goal_pose)
    poses = np.asarray(block_poses, dtype=np.float64)
    flat = poses.reshape(-1, 3)
    out = np.array([goal.intersection(placed(pose)).area / goal.area for pose in flat])
    return out.reshape(poses.shape[:-1])


def model_success_steps(task: PaperTask, states: Any, goal: Any) -> np.ndarray:
    """[T+1] bool: the env's success criterion applied to (model) states [T+1, S]. Point-Maze: x-y within
    :data:`~mpc_grasp.envs.point_maze.SUCCESS_RADIUS` of the goal; Push-T: coverage of the goal T > 0.95."""
    states, goal = np.asarray(states, dtype=np.float64), np.asarray(goal, dtype=np.float64)
    if task.kind == "maze":
        from mpc_grasp.envs.point_maze import SUCCESS_RADIUS

        return np.linalg.norm(states[..., :2] - goal[:2], axis=-1) <= SUCCESS_RADIUS
    return model_coverage(states, goal) > 0.95


def model_coverage(states: Any, goal: Any) -> np.ndarray:
    """Push-T: the env's coverage of the goal T by the block pose in each 8-feature state [..., 8]."""
    from mpc_grasp.envs.pusht import state_from_features

    block = state_from_features(np.asarray(states, dtype=np.float64))[0][..., 2:5]
    return tee_coverage(block, state_from_features(np.asarray(goal, dtype=np.float64))[0][2:5])


def execute_in_env(
    env: Any, pair: Mapping[str, Any], actions: np.ndarray
) -> tuple[list[bool], np.ndarray, list[float]]:
    """Reset the real env to the pair's start, step ``actions``; (env success flag per step, states [T'+1, S],
    Push-T coverage per step, else [])."""
    obs, info = env.reset(seed=pair["reset_seed"], options=dict(pair["options"]))
    if not np.allclose(obs["observation"], pair["start"], atol=1e-6):
        raise RuntimeError(f"pair {pair['index']}: reset did not reproduce the start state")
    flags, states, coverage = (
        [bool(info.get("is_success", False))],
        [obs["observation"]],
        [float(info.get("coverage", np.nan))],
    )
    for action in actions:
        obs, _, terminated, truncated, info = env.step(action)
        flags.append(bool(info["is_success"]))
        states.append(obs["observation"])
        coverage.append(float(info.get("coverage", np.nan)))
        if terminated or truncated:
            break
    return flags, np.asarray(states, dtype=np.float64), [c for c in coverage if not np.isnan(c)]


def _first(flags: Sequence[bool] | np.ndarray) -> int | None:
    return int(np.flatnonzero(np.asarray(flags))[0]) if np.any(flags) else None


# ----------------------------------------------------------------------------- world models


def pushing_policy(
    seed: int, overshoot: float = 0.25, jitter: float = 0.15, random_fraction: float = 0.2
) -> Callable[[Any], np.ndarray]:
    """Noisy scripted Push-T explorer: aim the agent through the block's position and ``overshoot`` past it
    (normalised units), with Gaussian ``jitter``; a ``random_fraction`` of steps take a uniform target."""
    rng = np.random.default_rng(seed)

    def act(obs: Any) -> np.ndarray:
        state = np.asarray(obs["observation"] if isinstance(obs, Mapping) else obs, dtype=np.float64)
        if rng.random() < random_fraction:
            return rng.uniform(-1.0, 1.0, size=2)
        agent, block = state[0:2], state[4:6]
        direction = (block - agent) / (np.linalg.norm(block - agent) + 1e-6)
        return np.clip(block + overshoot * direction + rng.normal(0.0, jitter, size=2), -1.0, 1.0)

    return act


def model_path(task: PaperTask, seed: int, model_dir: Path = MODEL_DIR) -> Path:
    return Path(model_dir) / f"{task.name}_{task.data_steps}_seed{seed}.pt"


def load_or_build_model(
    task: PaperTask, seed: int, model_dir: Path = MODEL_DIR, progress: bool = False
) -> tuple[Any, dict[str, Any]]:
    """The task's cached world model, or collect + train (``train_world_model`` defaults, one thread) + save it."""
    from mpc_grasp.models import CheckpointError, load_world_model, one_step_error, save_world_model, train_world_model

    path = model_path(task, seed, model_dir)
    wanted = {"task": task.name, "env_id": task.env_id, "data_steps": task.data_steps, "seed": seed}
    if path.exists():
        try:
            model = load_world_model(path)
            meta = cast(dict[str, Any], model.metadata)
            if all(meta.get(key) == value for key, value in wanted.items()):
                return model, {"path": str(path), **meta, "reused": True}
        except CheckpointError:
            pass
    started = time.perf_counter()
    policy = pushing_policy(seed) if task.kind == "pusht" else None
    dataset = collect_transitions(task.env_id, task.data_steps, policy=policy, seed=seed, progress=progress)
    collect_s = time.perf_counter() - started
    train, held_out = dataset.split(val_fraction=0.1, seed=seed)
    model = train_world_model(train, seed=seed, num_threads=1, progress=progress)
    info = {
        **wanted,
        "exploration": "scripted pushing (pushing_policy)" if policy else "correlated random",
        "collect_s": collect_s,
        "train_s": time.perf_counter() - started - collect_s,
        "one_step_rmse": float(one_step_error(model, held_out)["rmse"]),
        "epochs": len(model.training_history["train_loss"]),
    }
    if task.kind == "pusht":
        moved = np.linalg.norm(dataset.next_observations[:, 4:6] - dataset.observations[:, 4:6], axis=-1) * 256.0 > 0.5
        info["block_moved_fraction"] = float(moved.mean())
    path.parent.mkdir(parents=True, exist_ok=True)
    save_world_model(model, path, metadata=info)
    return model, {"path": str(path), **info, "reused": False}


# ----------------------------------------------------------------------------- work units


def run_open_loop_unit(task_input: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Worker of one open-loop unit: plan each pair alone, execute in the real env; one record per pair; ``options``
    (optional) are planner options over the row's own. Stops early (fewer records) once ``time_cap`` seconds of planning are spent, as the planner gym does."""
    task = TASKS[task_input["task"]]
    model, _ = load_or_build_model(task, task_input["seed"], Path(task_input["model_dir"]))
    env = make_env(task.env_id)
    label, horizon = task_input["planner"], int(task_input["horizon"])
    options = {**planner_options(label, task, task_input["seed"]), **task_input.get("options", {})}
    planner = make_planner(PAPER_PLANNERS[label], model, horizon, action_space=env.action_space, **options)
    records, spent = [], 0.0
    try:
        for pair in task_input["pairs"]:
            result = planner.plan(pair["start"], pair["goal"])
            spent += float(result.info["wall_time"])
            flags, executed, coverage = execute_in_env(env, pair, result.actions.numpy())
            model_flags = model_success_steps(task, result.states.numpy(), pair["goal"])
            record = {
                "pair": pair["index"],
                "difficulty": pair["difficulty"],
                "success_env": any(flags),
                "first_success_step_env": _first(flags),
                "success_model": bool(model_flags.any()),
                "first_success_step_model": _first(model_flags),
                "wall_time": float(result.info["wall_time"]),
                "model_calls": int(result.info["model_calls"]),
                "model_transitions": int(result.info["model_transitions"]),
                "iterations": int(result.info["iterations"]),
                "early_stopped": bool(result.info["early_stopped"]),
            }
            if task.kind == "maze":
                goal_xy = np.asarray(pair["goal"])[:2]
                record["min_distance_env"] = float(np.linalg.norm(executed[:, :2] - goal_xy, axis=-1).min())
                record["min_distance_model"] = float(
                    np.linalg.norm(result.states.numpy()[:, :2] - goal_xy, axis=-1).min()
                )
            else:
                record["max_coverage_env"] = max(coverage)
                record["max_coverage_model"] = float(model_coverage(result.states.numpy(), pair["goal"]).max())
            records.append(record)
            if task_input.get("time_cap") is not None and spent > task_input["time_cap"]:
                break
    finally:
        env.close()
    return records


def run_closed_loop_unit(task_input: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Worker of one closed-loop cell: one ``GraspMPC`` episode (replanning every step) per pair; ``options``
    (optional) are planner options over the cell's own (``experiments/warm_candidates.py``)."""
    from bench.suites.real_env import CountingAgent
    from mpc_grasp.control.agent import GraspMPC
    from mpc_grasp.control.episodes import run_episodes

    task = TASKS[task_input["task"]]
    model, _ = load_or_build_model(task, task_input["seed"], Path(task_input["model_dir"]))
    env = make_env(task.env_id)
    label = task_input["planner"]
    options = {**planner_options(label, task, task_input["seed"]), **task_input.get("options", {})}
    agent = CountingAgent(
        GraspMPC(model, PAPER_PLANNERS[label], int(task_input["horizon"]), action_space=env.action_space, **options)
    )
    records = []
    try:
        for pair in task_input["pairs"]:
            (episode,) = run_episodes(
                env,
                agent,
                1,
                seed=pair["reset_seed"],
                reset_options=pair["options"],
                max_steps=task_input["max_steps"],
                progress=False,
            )
            calls = agent.calls[-1]
            records.append(
                {
                    "pair": pair["index"],
                    "difficulty": pair["difficulty"],
                    "success_env": bool(episode.success_any),
                    "first_success_step_env": episode.first_success_step,
                    "steps": episode.steps,
                    "episode_time": episode.wall_time,
                    "wall_time": median(episode.plan_times),
                    "plans": len(episode.plans),
                    "model_calls": median([c for c, _ in calls]),
                    "success_model": None,
                }
            )
    finally:
        env.close()
    return records


@dataclass(frozen=True)
class PaperSuite:
    """Which cells run, at which scale."""

    tasks: tuple[str, ...] = tuple(TASKS)
    planners: tuple[str, ...] = tuple(PAPER_PLANNERS)
    horizons: tuple[int, ...] = (40, 50, 60, 80)
    pairs: int = 50
    task_horizons: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    task_pairs: Mapping[str, int] = field(default_factory=dict)
    planner_pairs: Mapping[str, int] = field(default_factory=dict)
    """Per planner label, or ``task/label``: at most this many pairs (0 = not run; e.g. GD, whose plan takes longest)."""
    chunk: int = 10
    time_cap: float | None = None
    """Seconds of planning per open-loop unit after which it stops early (fewer pairs)."""
    closed_loop_tasks: tuple[str, ...] = ("umaze",)
    closed_loop_planners: tuple[str, ...] = ("grasp", "cem")
    closed_loop_horizon: int = 50
    closed_loop_pairs: int = 10
    closed_loop_steps: int = 200
    seed: int = 0
    model_dir: Path = MODEL_DIR

    def __post_init__(self) -> None:
        for name in (*self.tasks, *self.closed_loop_tasks, *self.task_horizons, *self.task_pairs):
            if name not in TASKS:
                raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
        for label in (*self.planners, *self.closed_loop_planners, *(key.split("/")[-1] for key in self.planner_pairs)):
            if label not in PAPER_PLANNERS:
                raise ValueError(f"unknown planner {label!r}; choose from {list(PAPER_PLANNERS)}")
        if (
            min(self.pairs, self.chunk, self.closed_loop_pairs, self.closed_loop_steps, *self.task_pairs.values(), 1)
            < 1
        ):
            raise ValueError("pairs, chunk and closed-loop sizes must be positive")

    def horizons_of(self, task: str) -> tuple[int, ...]:
        return tuple(self.task_horizons.get(task, self.horizons))

    def pairs_of(self, task: str, label: str | None = None) -> int:
        limit = self.planner_pairs.get(f"{task}/{label}", self.planner_pairs.get(str(label)))
        return (
            int(self.task_pairs.get(task, self.pairs))
            if limit is None
            else min(int(self.task_pairs.get(task, self.pairs)), int(limit))
        )

    def units(self) -> list[WorkUnit]:
        """Open loop: one unit per (task, planner, horizon, chunk of pairs); closed loop: one per (task, planner)."""
        units = []
        for name in self.tasks:
            task = TASKS[name]
            pairs = make_pairs(
                task,
                max(self.pairs_of(name), self.closed_loop_pairs if name in self.closed_loop_tasks else 0),
                self.seed,
            )
            base = {"seed": self.seed, "data_steps": task.data_steps, "model_dir": str(self.model_dir)}
            for label in self.planners:
                for horizon in self.horizons_of(name):
                    chosen = pairs[: self.pairs_of(name, label)]
                    for first in range(0, len(chosen), self.chunk):
                        key = {
                            "mode": "open_loop",
                            "task": name,
                            "planner": label,
                            "horizon": horizon,
                            "first_pair": first,
                        }
                        settings = {**base, "pairs": chosen[first : first + self.chunk], "time_cap": self.time_cap}
                        units.append(WorkUnit(key, settings))
            if name in self.closed_loop_tasks:
                for label in self.closed_loop_planners:
                    key = {
                        "mode": "closed_loop",
                        "task": name,
                        "planner": label,
                        "horizon": self.closed_loop_horizon,
                        "first_pair": 0,
                    }
                    settings = {**base, "pairs": pairs[: self.closed_loop_pairs], "max_steps": self.closed_loop_steps}
                    units.append(WorkUnit(key, settings))
        return units


def _run_unit(task_input: Mapping[str, Any]) -> list[dict[str, Any]]:
    return (run_open_loop_unit if task_input["mode"] == "open_loop" else run_closed_loop_unit)(task_input)


# ----------------------------------------------------------------------------- summary, estimate, run


_CLOSEST = ("min_distance_env", "min_distance_model", "max_coverage_env", "max_coverage_model")


def time_to_success_key(records: Sequence[Mapping[str, Any]]) -> str:
    """The record field that times a success: the episode's time in closed loop, the plan's wall time open loop."""
    return "episode_time" if records and "episode_time" in records[0] else "wall_time"


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Success in the real env and under the model (Wilson 95%), median s per plan, median s to success, model calls."""
    rate, ci, n = success_rate(r["success_env"] for r in records)
    model_rate, model_ci, _ = success_rate(r["success_model"] for r in records)
    time_key = time_to_success_key(records)
    return {
        "n": n,
        "successes": int(sum(bool(r["success_env"]) for r in records)),
        "success_rate": rate,
        "success_ci95": ci,
        "success_model_rate": model_rate,
        "success_model_ci95": model_ci,
        "successes_model": int(sum(bool(r["success_model"]) for r in records)) if model_rate is not None else None,
        "median_time_per_plan_s": median(r["wall_time"] for r in records),
        "median_time_to_success_s": median(r[time_key] for r in records if r["success_env"]),
        "median_time_to_success_model_s": median(r["wall_time"] for r in records if r["success_model"]),
        "median_model_calls": median(r["model_calls"] for r in records),
        "median_steps_to_success": median(r["first_success_step_env"] for r in records),
        **{f"median_{key}": median(r[key] for r in records) for key in _CLOSEST if records and key in records[0]},
        "by_difficulty": {
            str(d): success_rate(r["success_env"] for r in records if r["difficulty"] == d)[0]
            for d in sorted({r["difficulty"] for r in records})
        },
    }


def estimate_cost(suite: PaperSuite, horizon: int = 50) -> dict[str, Any]:
    """Seconds of one plan per (task, planner) at ``horizon`` (2nd pair); the full protocol's planning time, linear in H."""
    estimate: dict[str, Any] = {"horizon": horizon, "per_plan_s": {}, "full_protocol_s": {}}
    for name in suite.tasks:
        task = TASKS[name]
        model, _ = load_or_build_model(task, suite.seed, suite.model_dir)
        env = make_env(task.env_id)
        pair = make_pairs(task, 2, suite.seed)[-1]
        for label in suite.planners:
            options = planner_options(label, task, suite.seed)
            planner = make_planner(PAPER_PLANNERS[label], model, horizon, action_space=env.action_space, **options)
            seconds = float(planner.plan(pair["start"], pair["goal"]).info["wall_time"])
            estimate["per_plan_s"][f"{name}/{label}"] = seconds
            estimate["full_protocol_s"][f"{name}/{label}"] = seconds * 50 * sum(h / horizon for h in (40, 50, 60, 80))
        env.close()
    estimate["full_protocol_total_s"] = sum(estimate["full_protocol_s"].values())
    return estimate


def run_paper_tasks(
    suite: PaperSuite,
    out_dir: str | Path,
    *,
    command: str,
    resume: bool = False,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
    estimate: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Build (or reuse) the models, run every unit (resume log ``paper_tasks.partial.jsonl``), write the report."""
    started = time.perf_counter()
    models = {
        name: load_or_build_model(TASKS[name], suite.seed, suite.model_dir, progress=progress)[1]
        for name in suite.tasks
    }
    for info in models.values():
        info.pop("training_history", None)
    units = suite.units()
    log = ResumeLog(Path(out_dir) / f"{STEM}.partial.jsonl", resume=resume)
    sources = file_hashes([path for name in _SOURCES for path in sorted(REPO_ROOT.glob(name))])
    text = Path(__file__).read_text()
    sources[STEM] = fingerprint(text[: text.index("# " + "-" * 77 + " summary, estimate, run")])
    results = run_units(
        _run_unit, units, log=log, sources=sources, parallel=parallel, progress=progress, desc="paper tasks"
    )
    rows = []
    for name in suite.tasks:
        for mode in ("open_loop", "closed_loop"):
            for label in suite.planners if mode == "open_loop" else suite.closed_loop_planners:
                horizons = suite.horizons_of(name) if mode == "open_loop" else (suite.closed_loop_horizon,)
                for horizon in horizons:
                    cell = {"mode": mode, "task": name, "planner": label, "horizon": horizon}
                    records = [
                        r
                        for unit, res in zip(units, results)
                        if all(unit.key[k] == v for k, v in cell.items())
                        for r in res
                    ]
                    if records:
                        rows.append({**cell, **summarize(records), "records": records})
    report = {
        "command": command,
        "threads": torch.get_num_threads(),
        "units_reused_from_log": log.reused,
        "processes": 1 if parallel is None or parallel.backend == "local" else (parallel.num_workers or "all CPUs"),
        "run_time_s": time.perf_counter() - started,
        "models": models,
        "estimate": dict(estimate or {}),
        "notes": list(notes),
        "tasks": {name: asdict(TASKS[name]) for name in suite.tasks},
        "scale": {
            "planners": list(suite.planners),
            "horizons": {name: list(suite.horizons_of(name)) for name in suite.tasks},
            "pairs": {name: suite.pairs_of(name) for name in suite.tasks},
            "planner_pairs": dict(suite.planner_pairs),
            "time_cap": suite.time_cap,
            "closed_loop": {
                "tasks": list(suite.closed_loop_tasks),
                "planners": list(suite.closed_loop_planners),
                "horizon": suite.closed_loop_horizon,
                "episodes": suite.closed_loop_pairs,
                "max_steps": suite.closed_loop_steps,
            },
            "seed": suite.seed,
        },
        "rows": rows,
    }
    report["target"] = target_check(report)
    report["compute_s"] = sum(r.get("episode_time", r["wall_time"]) or 0.0 for row in rows for r in row["records"])
    write_report(out_dir, STEM, report, markdown, plot, csv_rows=csv_rows)
    return report


def target_check(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Issue 16's target per (mode, task, H >= 50): default GRASP's real-env success >= CEM's and its median time to
    success <= half of CEM's (open loop: s per successful plan; closed loop: episode s to success)."""
    out = []
    for row in report["rows"]:
        cem = next(
            (
                r
                for r in report["rows"]
                if r["planner"] == "cem" and all(r[k] == row[k] for k in ("mode", "task", "horizon"))
            ),
            None,
        )
        if row["planner"] != "grasp" or row["horizon"] < 50 or cem is None:
            continue
        g_time, c_time = row["median_time_to_success_s"], cem["median_time_to_success_s"]
        success_ok = (row["success_rate"] or 0.0) >= (cem["success_rate"] or 0.0)
        time_ok = None if g_time is None or c_time is None else g_time <= 0.5 * c_time
        out.append(
            {
                "mode": row["mode"],
                "task": row["task"],
                "horizon": row["horizon"],
                "grasp": row["success_rate"],
                "cem": cem["success_rate"],
                "grasp_time_to_success_s": g_time,
                "cem_time_to_success_s": c_time,
                **paired_time_ratio(row["records"], cem["records"]),
                "success_ok": success_ok,
                "time_ok": time_ok,
                "met": bool(success_ok and time_ok),
            }
        )
    return out


def paired_time_ratio(grasp: Sequence[Mapping[str, Any]], cem: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """GRASP's time to success over CEM's on the pairs both solve (``paired_pairs`` of them): the median of the per-pair
    ratios. The medians above are over each planner's own successes, so a planner that also solves the long pairs
    the other fails looks slower there; this compares like with like."""
    time_key = time_to_success_key(grasp)
    cem_by_pair = {r["pair"]: r for r in cem if r["success_env"]}
    ratios = [
        r[time_key] / cem_by_pair[r["pair"]][time_key] for r in grasp if r["success_env"] and r["pair"] in cem_by_pair
    ]
    return {"paired_pairs": len(ratios), "paired_time_ratio": median(ratios)}


# ----------------------------------------------------------------------------- report


def markdown(report: Mapping[str, Any]) -> str:
    scale, cl = report["scale"], report["scale"]["closed_loop"]
    lines = [
        "# The paper's tasks: Point-Maze and Push-T, open and closed loop (issue 16)",
        "",
        f"{report['threads']} torch thread(s) per process, {report.get('processes', 1)} process(es) at once; {report['compute_s'] / 60:.1f} min of planning / episodes in all; "
        f"this invocation {report['run_time_s'] / 60:.1f} min ({report['units_reused_from_log']} units reused from the resume log).",
        "",
    ]
    lines += [
        "## Scale of this run",
        "",
        f"- open loop: planners {', '.join(scale['planners'])}; horizons "
        + "; ".join(f"{t} {scale['horizons'][t]}" for t in scale["horizons"])
        + "; pairs per cell "
        + ", ".join(f"{t} {n}" for t, n in scale["pairs"].items())
        + (f" (at most {scale['planner_pairs']} for these planners)" if scale["planner_pairs"] else "")
        + (f"; a unit of 10 pairs stops after {scale['time_cap']:.0f} s of planning" if scale["time_cap"] else ""),
        f"- closed loop: {', '.join(cl['planners'])} on {', '.join(cl['tasks']) or 'none'}, H = {cl['horizon']}, "
        f"{cl['episodes']} episodes of at most {cl['max_steps']} steps",
    ]
    lines += [f"- {note}" for note in report["notes"]] + [""]
    difficulties = "; ".join(f"{name} {task['difficulties']}" for name, task in report["tasks"].items())
    lines += [
        "## Method",
        "",
        f"Fixed start/goal pairs (seeded, the same for every planner and H), difficulty cycled over the pairs: "
        f"{difficulties} (Point-Maze: BFS path length in cells; Push-T: start block distance from the goal block in px, turned "
        "0.1 rad, agent > 140 px away). Native env steps, no frameskip: on Point-Maze (dt = 0.01 s) H = 40 moves the ball at most "
        "~2 cells from rest, H = 80 ~4. Planner goal: Point-Maze [gx, gy, 0, 0] (at rest on the goal) with early-stop tolerance "
        "0.45 on the last state's full 4-D distance; Push-T the goal's 8 features with weight 0.1 on the agent's 4 (its goal "
        "position is arbitrary) and no early stop. Success under the model = the env's criterion applied to the model rollout "
        "(x-y within 0.45; coverage > 0.95 of the predicted block pose). Each open-loop plan is one `plan` call: s per plan is its "
        "wall time on one thread.",
        "",
    ]
    lines += [
        "## World models",
        "",
        "| task | env | data | exploration | collect s | train s | one-step RMSE |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, info in report["models"].items():
        extra = (
            f" (block moves in {100 * info['block_moved_fraction']:.0f}% of steps)"
            if "block_moved_fraction" in info
            else ""
        )
        lines.append(
            f"| {name} | `{info['env_id']}` | {info['data_steps']} | {info.get('exploration', '?')}{extra} | "
            f"{number_cell(info.get('collect_s'), 0)} | {number_cell(info.get('train_s'), 0)} | {number_cell(info.get('one_step_rmse'), 4)} |"
        )
    for mode, title in (("open_loop", "Open loop"), ("closed_loop", "Closed loop (GraspMPC, replanning every step)")):
        rows = [r for r in report["rows"] if r["mode"] == mode]
        if not rows:
            continue
        lines += [
            "",
            f"## {title}",
            "",
            "Success: the env's own flag at any step <= H (closed loop: within the episode cap); under the model: the same "
            "criterion on the model rollout. Times: median seconds per plan and median seconds to success "
            "(open loop: wall time of the successful plans; closed loop: episode time to success).",
            "",
            "| task | planner | H | pairs | success real env [95% CI] | under model [95% CI] | s per plan | s to success | "
            "model calls | closest: env / model | success by difficulty |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            by = ", ".join(f"{k}: {100 * v:.0f}%" for k, v in r["by_difficulty"].items() if v is not None)
            kind = "distance" if "median_min_distance_env" in r else "coverage"
            near = (
                f"{number_cell(r.get('median_min_' + kind + '_env'))} / {number_cell(r.get('median_min_' + kind + '_model'))}"
                if kind == "distance"
                else f"{number_cell(r.get('median_max_coverage_env'))} / {number_cell(r.get('median_max_coverage_model'))}"
            )
            lines.append(
                f"| {r['task']} | {r['planner']} | {r['horizon']} | {r['n']} | {ci_cell(r['success_rate'], r['success_ci95'])} | "
                f"{ci_cell(r['success_model_rate'], r['success_model_ci95'])} | {number_cell(r['median_time_per_plan_s'])} | "
                f"{number_cell(r['median_time_to_success_s'])} | {number_cell(r['median_model_calls'], 0)} | {near} | {by} |"
            )
    if report["target"]:
        lines += [
            "",
            "## Target (default GRASP at H >= 50: success >= CEM's at <= half CEM's median time to success)",
            "",
            "| mode | task | H | GRASP | CEM | GRASP s to success | CEM s to success | GRASP / CEM time, pairs both solve (n) "
            "| success ok | time ok | met |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for t in report["target"]:
            paired = f"{number_cell(t.get('paired_time_ratio'))} ({t.get('paired_pairs', '–')})"
            lines.append(
                f"| {t['mode'].replace('_', ' ')} | {t['task']} | {t['horizon']} | {ci_cell(t['grasp'], None)} | {ci_cell(t['cem'], None)} | "
                f"{number_cell(t['grasp_time_to_success_s'])} | {number_cell(t['cem_time_to_success_s'])} | {paired} | {t['success_ok']} | "
                f"{'– (no successes)' if t['time_ok'] is None else t['time_ok']} | **{'yes' if t['met'] else 'no'}** |"
            )
    lines += [
        "",
        "## Paper reference (DESIGN.md §8: Push-T, DINO-WM visual model, open loop, success under the model / median time to success)",
        "",
        "| H | CEM | GD | GRASP |",
        "|---|---|---|---|",
    ]
    lines += [f"| {h} | {ref['cem']} | {ref['gd']} | {ref['grasp']} |" for h, ref in PAPER_REFERENCE.items()]
    estimate = report["estimate"]
    if estimate:
        lines += [
            "",
            f"## Cost of the full protocol (one plan per planner timed at H = {estimate['horizon']})",
            "",
            "| task/planner | s per plan | full open-loop protocol (50 pairs x H 40-80), min |",
            "|---|---|---|",
        ]
        lines += [
            f"| {k} | {v:.2f} | {estimate['full_protocol_s'][k] / 60:.1f} |" for k, v in estimate["per_plan_s"].items()
        ]
        lines.append(f"| total | | **{estimate['full_protocol_total_s'] / 60:.0f} min** (planning only, one thread) |")
        lines += [
            "",
            "The full protocol (+ closed loop on every task): `python experiments/paper_tasks.py --closed-loop-tasks umaze medium pusht`.",
        ]
    return "\n".join(lines) + "\n"


def csv_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    drop = ("records", "by_difficulty", "success_ci95", "success_model_ci95")
    return [{k: v for k, v in row.items() if k not in drop} for row in report["rows"]]


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Success vs horizon per task: real env solid, under the model dashed; closed loop as a marker."""
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import save_figure

    tasks = list(report["models"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    colors = dict(zip(PAPER_PLANNERS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for axis, name in zip(axes[0], tasks):
        for label in PAPER_PLANNERS:
            rows = sorted(
                (r for r in report["rows"] if r["task"] == name and r["planner"] == label and r["mode"] == "open_loop"),
                key=lambda r: r["horizon"],
            )
            if rows:
                h = [r["horizon"] for r in rows]
                axis.plot(
                    h, [100 * r["success_rate"] for r in rows], "-o", color=colors[label], label=f"{label} (real env)"
                )
                axis.plot(
                    h, [100 * (r["success_model_rate"] or 0) for r in rows], "--x", color=colors[label], alpha=0.7
                )
            for r in report["rows"]:
                if r["task"] == name and r["planner"] == label and r["mode"] == "closed_loop":
                    offset = 1.5 * list(PAPER_PLANNERS).index(label)  # side by side: equal rates would hide each other
                    axis.plot(
                        [r["horizon"] + offset],
                        [100 * r["success_rate"]],
                        "*",
                        ms=12,
                        color=colors[label],
                        label=f"{label} closed loop",
                    )
        axis.set(title=f"{name} (dashed: under the model)", xlabel="horizon H", ylabel="success %", ylim=(-3, 103))
        axis.legend(fontsize=7)
    fig.suptitle("Open-loop success vs horizon, real env (solid) and under the model (dashed)")
    return save_figure(fig, path)
