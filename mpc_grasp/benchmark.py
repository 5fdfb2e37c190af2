"""The benchmark (DESIGN.md §7): GRASP vs CEM vs MPPI vs GD (+ GRASP ablations, + RL rows) across
horizons, in the *real* environments.

* Envs (``ENVS``): grid world ``wall`` / ``umaze`` / ``maze`` with non-greedy start/goal pairs from
  :func:`mpc_grasp.envs.grid_world.sample_task`, cart-pole swing-up (start hanging down, goal upright at
  rest), and optionally ``pixel_wall`` (grid world ``wall`` seen through 64x64 images, planning in the
  latent space of a :class:`~mpc_grasp.models.PixelWorldModel`).
* World models: ``learned`` — an :class:`~mpc_grasp.models.MLPWorldModel` per env trained on a stated
  data budget (cached under ``checkpoints/benchmark/``, keyed by env, budget and seed); ``analytic`` —
  :class:`~mpc_grasp.testbeds.PointMassWalls` for the grid worlds, which separates planner failures
  from model failures.
* Open loop: one plan per start/goal pair (``plan_batch`` over chunks of pairs), the actions executed in
  the real env; success = within the env's goal region at any step <= H. Success *under the model*
  is the same test on the model rollout.
* Closed loop: :class:`~mpc_grasp.agent.GraspMPC` episodes via :func:`mpc_grasp.evaluation.run_episodes`,
  seeded like the RL baselines' evaluation, so the k-th start/goal is the one PPO/SAC faced.

Every unit of work (one chunk of plans, one closed-loop cell) is appended to a JSON-lines log with a
fingerprint of its settings and of the code that computes it; ``--resume`` reuses matching units.
Outputs are written by :mod:`mpc_grasp.benchmark_report`. Entry points: ``python
experiments/benchmark.py`` and ``mpc-grasp benchmark`` (same flags).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpc_grasp.data import collect_transitions, make_env
from mpc_grasp.planners import PLANNERS, make_planner
from mpc_grasp.planners.base import canonical_options
from mpc_grasp.reporting import REPO_ROOT, ResumeLog, file_hashes, fingerprint, git_commit
from mpc_grasp.rl import wilson_interval

__all__ = [
    "DEFAULT_BUDGETS",
    "ENVS",
    "MODEL_KINDS",
    "VARIANTS",
    "BenchEnv",
    "BenchmarkConfig",
    "PlannerVariant",
    "Task",
    "build_parser",
    "execute_open_loop",
    "load_configs",
    "load_or_train_mlp",
    "main",
    "make_tasks",
    "register_benchmark",
    "run_benchmark",
    "success_steps",
]


# ----------------------------------------------------------------------------- what is benchmarked


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
    "umaze": BenchEnv("umaze", "mpc_grasp/GridWorldUMaze-v0", "grid", "umaze", (25, 50, 80), 50, 20_000, 0.3, 100, 10, 0.2),
    "maze": BenchEnv("maze", "mpc_grasp/GridWorldMaze-v0", "grid", "maze", (25, 50, 80), 80, 20_000, 0.3, 100, 10, 0.2),
    # 30k = the RL baselines' "same" budget; the swing-up success region is a box, 0.3 is the planners' early-stop radius
    "cartpole": BenchEnv(
        "cartpole", "mpc_grasp/CartPoleSwingup-v0", "cartpole", None, (25, 40, 50), 25, 30_000, 0.3, 100, 5, None,
        (("state_weights", CARTPOLE_STATE_WEIGHTS),),
    ),
    "pixel_wall": BenchEnv("pixel_wall", "mpc_grasp/PixelGridWorldWall-v0", "pixel", "wall", (25, 50, 80), 50, 10_000, 0.3, 100, 10, None),
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
    "grasp_no_detach": PlannerVariant("grasp_no_detach", "grasp", (("detach_states", False),), "GRASP, full gradients into the model's state input"),
    "grasp_no_noise": PlannerVariant("grasp_no_noise", "grasp", (("noise_scale", 0.0),), "GRASP without state noise"),
    "grasp_no_goal": PlannerVariant("grasp_no_goal", "grasp", (("lifted_goal_weight", 0.0),), "GRASP without the dense goal term"),
    "grasp_no_sync": PlannerVariant("grasp_no_sync", "grasp", (("sync_every", 0),), "GRASP without the periodic shooting sync"),
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
        return {"index": self.index, "start": list(self.start), "goal": list(self.goal), "env_start": list(self.env_start)}


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that determines the benchmark's numbers (and its output names)."""

    envs: tuple[str, ...] = DEFAULT_ENVS
    planners: tuple[str, ...] = DEFAULT_PLANNERS
    models: tuple[str, ...] = ("learned",)
    horizons: tuple[int, ...] | None = None
    """None: each env's own horizons (``--quick``: its quick horizon)."""
    env_horizons: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Per-env horizons (over ``horizons``)."""
    modes: tuple[str, ...] = ("open_loop", "closed_loop")
    pairs: int = 50
    ablation_envs: tuple[str, ...] | None = None
    """Envs on which the GRASP ablation rows run (None: all)."""
    closed_loop_pairs: int = 10
    closed_loop_planners: tuple[str, ...] = ("grasp", "cem", "mppi", "gd")
    closed_loop_envs: tuple[str, ...] | None = None
    """Envs run in closed loop (None: all)."""
    closed_loop_horizons: tuple[int, ...] | None = None
    """Closed-loop horizons (None: the open-loop ones)."""
    batch_size: int = 10
    """Start/goal pairs per ``plan_batch`` call (early stopping needs every pair of a chunk to arrive)."""
    budgets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per planner or variant label: config options over ``DEFAULT_BUDGETS`` (``--configs``)."""
    seed: int = 0
    """Task sampler seed; learned models use it too (data collection and training)."""
    eval_seed: int = 1000
    """First closed-loop reset seed (as the RL baselines' evaluation)."""
    data_steps: Mapping[str, int] = field(default_factory=dict)
    train_seconds: float = 120.0
    hidden: tuple[int, ...] = (256, 256, 256)
    quick: bool = False
    model_dir: Path = REPO_ROOT / "checkpoints" / "benchmark"
    out_dir: Path = REPO_ROOT / "results"
    prefix: str = "benchmark"
    rl_results: Path = REPO_ROOT / "results" / "rl_baselines.json"
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in self.envs:
            if name not in ENVS:
                raise ValueError(f"unknown env {name!r}; choose from {sorted(ENVS)}")
        for name in (*self.planners, *self.closed_loop_planners):
            if name not in VARIANTS:
                raise ValueError(f"unknown planner {name!r}; choose from {sorted(VARIANTS)}")
        for kind in self.models:
            if kind not in MODEL_KINDS:
                raise ValueError(f"unknown model {kind!r}; choose from {list(MODEL_KINDS)}")
        for mode in self.modes:
            if mode not in ("open_loop", "closed_loop"):
                raise ValueError(f"unknown mode {mode!r}; choose from ['open_loop', 'closed_loop']")
        for name in ("pairs", "closed_loop_pairs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (*self.env_horizons, *(self.ablation_envs or ()), *(self.closed_loop_envs or ())):
            if name not in ENVS:
                raise ValueError(f"unknown env {name!r}; choose from {sorted(ENVS)}")
        for values in (self.horizons, self.closed_loop_horizons, *self.env_horizons.values()):
            if values is not None and (not values or min(values) < 1):
                raise ValueError(f"horizons must be positive integers, got {values}")
        for label in self.budgets:
            if label not in VARIANTS:
                raise ValueError(f"configs: unknown planner {label!r}; choose from {sorted(VARIANTS)}")

    def horizons_of(self, env: BenchEnv, mode: str = "open_loop") -> tuple[int, ...]:
        """Horizons of ``env`` in ``mode`` (closed loop: ``closed_loop_horizons`` when given)."""
        if mode == "closed_loop" and self.closed_loop_horizons is not None:
            return tuple(sorted(self.closed_loop_horizons))
        if env.name in self.env_horizons:
            return tuple(sorted(self.env_horizons[env.name]))
        if self.horizons is not None:
            return tuple(sorted(self.horizons))
        return (env.quick_horizon,) if self.quick else env.horizons

    def labels_of(self, env: BenchEnv, mode: str) -> tuple[str, ...]:
        """The planner rows of ``env`` in ``mode``."""
        if mode == "closed_loop":
            if self.closed_loop_envs is not None and env.name not in self.closed_loop_envs:
                return ()
            return tuple(p for p in self.closed_loop_planners if p in self.planners)
        ablations = self.ablation_envs is None or env.name in self.ablation_envs
        return tuple(p for p in self.planners if ablations or VARIANTS[p].planner == p)

    def steps_of(self, env: BenchEnv) -> int:
        return int(self.data_steps.get(env.name, env.data_steps))

    def budget_of(self, label: str) -> dict[str, Any]:
        """Planner options of a row: default budget < --configs for the base planner < for the label; then ablation flags."""
        variant = VARIANTS[label]
        budget = dict(DEFAULT_BUDGETS[variant.planner])
        budget.update(self.budgets.get(variant.planner, {}))
        if label != variant.planner:
            budget.update(self.budgets.get(label, {}))
        if self.quick:
            budget["iterations"] = max(2, int(round(budget["iterations"] * QUICK_SCALE)))
        budget.update(dict(variant.options))
        return budget


def load_configs(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per-planner options from JSON: ``{"grasp": {...}, "cem": {...}}`` (keys: planner names or variant
    labels such as ``grasp_no_sync``), or a tuning report with ``{"chosen": {planner: {"config": {...}}}}``
    (``experiments/tune_planners.py``). Unknown planners or options raise ``ValueError``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--configs: no such file {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"--configs: {path} is not valid JSON ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("chosen"), dict):
        data = {name: item.get("config", {}) for name, item in data["chosen"].items()}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"--configs: {path} must map planner names to option objects, e.g. {{\"grasp\": {{\"iterations\": 300}}}}")
    from mpc_grasp.testbeds import LinearSystem

    probe = LinearSystem.point()
    for label, options in data.items():
        if label not in VARIANTS:
            raise ValueError(f"--configs: unknown planner {label!r} in {path}; choose from {sorted(VARIANTS)}")
        try:  # fail fast on unknown / invalid options (old names still load, renamed)
            data[label] = options = canonical_options(PLANNERS[VARIANTS[label].planner].config_class, options)
            make_planner(VARIANTS[label].planner, probe, 2, **{**DEFAULT_BUDGETS[VARIANTS[label].planner], **options})
        except (TypeError, ValueError) as error:
            raise ValueError(f"--configs: bad options for {label!r} in {path}: {error}") from None
    return {label: dict(options) for label, options in data.items()}


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
                tasks.append(Task(index, tuple(map(float, obs)), tuple(map(float, GOAL_OBS)), tuple(map(float, info["state"]))))
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
            meta = model.metadata
            if all(meta.get(key) == value for key, value in wanted.items()):
                return model, {"path": str(path), **{k: meta.get(k) for k in ("data_steps", "one_step_rmse", "collect_train_time_s")}, "reused": True}
        except CheckpointError as error:
            print(f"cached model {path} unusable ({error}); retraining", file=sys.stderr, flush=True)
    started = time.perf_counter()
    dataset = collect_transitions(env_id, steps, seed=seed, num_envs=8, progress=progress)
    train, held_out = dataset.split(val_fraction=0.15, seed=seed)
    model = train_world_model(
        train, hidden_sizes=tuple(hidden), batch_size=512, lr=2e-3, epochs=100, max_time_s=train_seconds, seed=seed, progress=progress
    )
    rmse = float(one_step_error(model, held_out)["rmse"])
    elapsed = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    save_world_model(model, path, metadata={**wanted, "one_step_rmse": rmse, "collect_train_time_s": elapsed})
    return model, {"path": str(path), "data_steps": int(steps), "one_step_rmse": rmse, "collect_train_time_s": elapsed, "reused": False}


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def build_model(env: BenchEnv, kind: str, config: BenchmarkConfig) -> tuple[Any, dict[str, Any]]:
    """The world model of one (env, model kind) pair and a JSON-able description of it."""
    if kind == "analytic":
        if env.kind != "grid":
            raise ValueError(f"--model analytic exists only for the grid worlds (PointMassWalls), not {env.name!r}")
        from mpc_grasp.testbeds import PointMassWalls

        geo = make_env(env.env_id).unwrapped
        model = PointMassWalls.from_layout(env.layout, agent_radius=geo.agent_radius, step_size=geo.step_size)
        return model, {"kind": "analytic", "class": "PointMassWalls", "layout": env.layout, "smoothing": float(model.smoothing) if hasattr(model, "smoothing") else None}
    steps = config.steps_of(env)
    if env.kind == "pixel":
        from mpc_grasp.models import load_or_train_pixel_world_model

        path = config.model_dir / f"{env.name}_{steps}_seed{config.seed}.pt"
        started = time.perf_counter()
        model = load_or_train_pixel_world_model(env.env_id, path, n_steps=steps, seed=config.seed, progress=config.progress)
        return model, {"kind": "learned", "class": "PixelWorldModel", "path": _display(path), "data_steps": steps, "build_time_s": time.perf_counter() - started}
    path = config.model_dir / f"{env.name}_{steps}_seed{config.seed}_{'x'.join(map(str, config.hidden))}.pt"
    model, info = load_or_train_mlp(env.env_id, steps, path, seed=config.seed, hidden=config.hidden, train_seconds=config.train_seconds, progress=config.progress)
    return model, {"kind": "learned", "class": "MLPWorldModel", "hidden": list(config.hidden), **info, "path": _display(path)}


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


def _first(flags: np.ndarray) -> int | None:
    hits = np.flatnonzero(flags)
    return int(hits[0]) if hits.size else None


def _planner_states(env: BenchEnv, model: Any, gym_env: Any, tasks: Sequence[Task]) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and goal tensors in the model's state space (pixel models: encoded images)."""
    if env.kind == "pixel":
        unwrapped = gym_env.unwrapped
        with torch.no_grad():
            starts = model.encode(np.stack([unwrapped.render_position(np.asarray(t.start), None) for t in tasks]))
            goals = model.encode(np.stack([unwrapped.goal_image(np.asarray(t.goal)) for t in tasks]))
        return starts.float().cpu(), goals.float().cpu()
    return torch.tensor([t.start for t in tasks], dtype=torch.float32), torch.tensor([t.goal for t in tasks], dtype=torch.float32)


def plan_chunk(
    env: BenchEnv, model: Any, gym_env: Any, label: str, budget: Mapping[str, Any], horizon: int, tasks: Sequence[Task], seed: int
) -> list[dict[str, Any]]:
    """Plan ``tasks`` in one ``plan_batch`` call, execute every plan in the real env; one record per task."""
    goal_radius = float(getattr(gym_env.unwrapped, "goal_radius", env.goal_tolerance))
    tolerance = None if env.kind == "pixel" else env.goal_tolerance  # no goal radius in a latent space
    planner = make_planner(VARIANTS[label].planner, model, horizon, action_space=gym_env.action_space, goal_tolerance=tolerance, seed=seed, **budget)
    starts, goals = _planner_states(env, model, gym_env, tasks)
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
            "first_success_step_env": _first(env_hits),
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
            record["first_success_step_model"] = _first(model_hits)
            model_states = result.states[row].numpy().astype(np.float64)
            steps = min(len(model_states), len(executed))
            record["max_model_env_gap"] = float(np.abs(model_states[:steps] - executed[:steps]).max())
        if env.kind in ("grid", "pixel"):
            record["min_distance_env"] = float(np.linalg.norm(executed - np.asarray(task.goal), axis=-1).min())
        records.append(record)
    return records


# ----------------------------------------------------------------------------- summaries


def _median(values: Sequence[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _rate(flags: Sequence[bool | None]) -> tuple[float | None, list[float] | None, int]:
    flags = [bool(f) for f in flags if f is not None]
    if not flags:
        return None, None, 0
    wins = sum(flags)
    return wins / len(flags), list(wilson_interval(wins, len(flags))), wins


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
        "median_wall_time_per_plan": _median([r["wall_time_per_plan"] for r in records]),
        "median_cpu_time_per_plan": _median([r["cpu_time_per_plan"] for r in records]),
        "median_time_to_success": _median([r["wall_time_per_plan"] for r in records if r["success_env"]]),
        "median_steps_to_success": _median([r["first_success_step_env"] for r in records]),
        "median_model_calls": _median([r["model_calls"] for r in records]),
        "median_model_transitions": _median([r["model_transitions_per_plan"] for r in records]),
        "median_iterations": _median([r["iterations"] for r in records]),
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
        "median_time_to_success": _median([e["wall_time_s"] for e in episodes if e["success_any"]]),
        "median_steps_to_success": summary["median_steps_to_goal"],
        "median_model_calls": _median([e["median_model_calls"] for e in episodes]),
        "median_model_transitions": _median([e["median_model_transitions"] for e in episodes]),
        "median_iterations": summary["median_iterations_per_plan"],
        "plans": plans,
        "mean_return": summary["mean_return"],
        "env_steps": summary["env_steps"],
    }


class _CountingAgent:
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


def run_closed_loop(env: BenchEnv, model: Any, label: str, budget: Mapping[str, Any], horizon: int, config: BenchmarkConfig) -> dict[str, Any]:
    """``closed_loop_pairs`` GraspMPC episodes in the real env, seeded as the RL baselines' evaluation."""
    from mpc_grasp.agent import GraspMPC
    from mpc_grasp.evaluation import run_episodes, summarize_episodes

    kwargs = {"task": "across"} if env.kind in ("grid", "pixel") else {}
    gym_env = make_env(env.env_id, **kwargs)
    tolerance = None if env.kind == "pixel" else env.goal_tolerance
    agent = GraspMPC(
        model, VARIANTS[label].planner, horizon=horizon, action_space=gym_env.action_space, replan_every=env.replan_every,
        replan_threshold=env.replan_threshold, goal_tolerance=tolerance, **budget,
    )
    counting = _CountingAgent(agent)
    max_steps = env.closed_loop_steps if not config.quick else min(env.closed_loop_steps, 2 * horizon)
    records = run_episodes(gym_env, counting, config.closed_loop_pairs, seed=config.eval_seed, max_steps=max_steps, progress=False)
    episodes = []
    for record, calls in zip(records, counting.calls):
        item = record.to_json()
        item["median_model_calls"] = _median([c for c, _ in calls])
        item["median_model_transitions"] = _median([t for _, t in calls])
        episodes.append((record, item))
    gym_env.close()
    summary = summarize_episodes([r for r, _ in episodes])
    items = [item for _, item in episodes]
    return {"episodes": items, "summary": summarize_closed_loop(items, summary), "max_steps": max_steps}


# ----------------------------------------------------------------------------- the run


def _source_files() -> list[Path]:
    """Code the records depend on besides this module (whose computing functions are fingerprinted by source)."""
    root = REPO_ROOT
    return [
        *sorted((root / "mpc_grasp" / "planners").glob("*.py")),
        root / "mpc_grasp" / "agent.py",
        root / "mpc_grasp" / "evaluation.py",
        root / "mpc_grasp" / "testbeds.py",
        root / "mpc_grasp" / "models" / "mlp.py",
        root / "mpc_grasp" / "models" / "pixel.py",
        root / "envs" / "grid_world.py",
        root / "envs" / "cartpole.py",
        root / "envs" / "pixels.py",
    ]


def source_fingerprints() -> dict[str, str]:
    """SHA-256 of the files in :func:`_source_files` and of the source of this module's computing functions
    (so editing the report code or the CLI does not invalidate the resume log)."""
    import hashlib
    import inspect

    out = file_hashes(_source_files())
    for function in (make_tasks, success_steps, execute_open_loop, _planner_states, plan_chunk, _CountingAgent, run_closed_loop, summarize_open_loop, summarize_closed_loop):
        out[f"mpc_grasp/benchmark.py:{function.__name__}"] = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()
    return out


def rl_rows(path: Path, envs: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """RL baseline rows (closed loop, their own evaluation) for the benchmarked envs, from ``rl_baselines.json``."""
    if not Path(path).is_file():
        return [], {}
    saved = json.loads(Path(path).read_text())
    wanted = {RL_ENV_KEYS[name]: name for name in envs if name in RL_ENV_KEYS}
    rows = []
    for run in saved.get("runs", []):
        if run.get("env") not in wanted:
            continue
        ev = run["eval"]
        rows.append({
            "env": wanted[run["env"]], "planner": run["algo"] + ("+her" if run.get("her") else "") + f" ({run['budget']} budget)",
            "algo": run["algo"], "budget": run["budget"], "env_steps_trained": run.get("env_steps"), "n": ev["n_episodes"],
            "success_rate": ev["success_any_rate"], "success_ci95": ev["success_any_ci95"],
            "success_last_step_rate": ev["success_rate"], "mean_return": ev["mean_return"],
            "median_steps_to_success": _median(ev.get("episode_first_success_step", [])), "eval_seed": ev.get("seed"),
        })  # fmt: skip
    return rows, {k: saved.get(k) for k in ("command", "git_commit", "eval_seed", "n_eval")}


def run_benchmark(config: BenchmarkConfig, command: str) -> dict[str, Any]:
    """Run every requested cell (reusing the resume log), write the outputs, return the report."""
    from mpc_grasp.benchmark_report import write_outputs

    torch.set_num_threads(1)
    started = time.perf_counter()
    sources = source_fingerprints()
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = ResumeLog(out_dir / f"{config.prefix}.partial.jsonl", resume=config.resume)
    cells: list[dict[str, Any]] = []
    tasks_by_env: dict[str, list[dict[str, Any]]] = {}
    models_info: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    total_units = _count_units(config)
    done_units = 0

    def progress(message: str) -> None:
        if config.progress:
            print(f"[{done_units}/{total_units} {time.perf_counter() - started:6.0f}s] {message}", flush=True)

    for env_name in config.envs:
        env = ENVS[env_name]
        tasks = make_tasks(env, config.pairs, config.seed)
        tasks_by_env[env_name] = [t.to_json() for t in tasks]
        gym_env = make_env(env.env_id)
        for kind in config.models:
            if kind == "analytic" and env.kind != "grid":
                skipped.append(f"{env_name}/analytic: no analytic model (PointMassWalls covers the grid worlds only)")
                continue
            progress(f"{env_name}: {kind} model")
            model, model_info = build_model(env, kind, config)
            models_info[f"{env_name}/{kind}"] = model_info
            model_id = {k: v for k, v in model_info.items() if k not in ("reused", "build_time_s", "collect_train_time_s")}
            for mode in config.modes:
                for horizon in config.horizons_of(env, mode):
                    for label in config.labels_of(env, mode):
                        budget = {**config.budget_of(label), **dict(env.planner_options)}
                        cell = {"env": env_name, "model": kind, "mode": mode, "planner": label, "horizon": horizon, "budget": budget}
                        if mode == "open_loop":
                            records = []
                            for first in range(0, len(tasks), config.batch_size):
                                chunk = tasks[first : first + config.batch_size]
                                key = ResumeLog.make_key({**{k: cell[k] for k in ("env", "model", "mode", "planner", "horizon")}, "first": first})
                                fp = fingerprint({"budget": budget, "tasks": [t.to_json() for t in chunk], "model": model_id, "sources": sources, "seed": config.seed})
                                payload = log.get(key, fp)
                                if payload is None:
                                    progress(f"{env_name}/{kind} open loop H={horizon} {label} pairs {first}-{first + len(chunk) - 1}")
                                    payload = plan_chunk(env, model, gym_env, label, budget, horizon, chunk, seed=first)
                                    log.put(key, fp, payload)
                                records.extend(payload)
                                done_units += 1
                            cell["records"] = records
                            cell["summary"] = summarize_open_loop(records)
                        else:
                            key = ResumeLog.make_key({k: cell[k] for k in ("env", "model", "mode", "planner", "horizon")})
                            fp = fingerprint({
                                "budget": budget, "model": model_id, "sources": sources, "eval_seed": config.eval_seed,
                                "episodes": config.closed_loop_pairs, "quick": config.quick,
                            })  # fmt: skip
                            payload = log.get(key, fp)
                            if payload is None:
                                progress(f"{env_name}/{kind} closed loop H={horizon} {label}: {config.closed_loop_pairs} episodes")
                                payload = run_closed_loop(env, model, label, budget, horizon, config)
                                log.put(key, fp, payload)
                            done_units += 1
                            cell["records"] = payload["episodes"]
                            cell["summary"] = payload["summary"]
                            cell["max_steps"] = payload["max_steps"]
                        cells.append(cell)
                        s = cell["summary"]
                        progress(
                            f"{env_name}/{kind} {mode} H={horizon} {label}: env {_pct(s['success_rate'])} model {_pct(s['success_model_rate'])} "
                            f"{s['median_wall_time_per_plan'] or float('nan'):.2f} s/plan"
                        )
        gym_env.close()

    rl, rl_source = rl_rows(config.rl_results, config.envs) if "closed_loop" in config.modes else ([], {})
    changed = sorted(name for name, digest in source_fingerprints().items() if sources.get(name) != digest)
    report = {
        "command": command,
        "git_commit": git_commit(mark_dirty=True),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(), "threads": 1},
        "config": _config_json(config),
        "envs": {name: dataclasses.asdict(ENVS[name]) for name in config.envs},
        "variants": {label: dataclasses.asdict(VARIANTS[label]) for label in config.planners},
        "budgets": {label: config.budget_of(label) for label in config.planners},
        "models": models_info,
        "tasks": tasks_by_env,
        "cells": cells,
        "rl_baselines": {"source": rl_source, "rows": rl},
        "skipped": skipped,
        "source_sha256": sources,
        "source_changed_during_run": changed,
        "units_reused_from_log": log.reused,
        "total_seconds": time.perf_counter() - started,
    }
    write_outputs(report, out_dir, config.prefix)
    return report


def _pct(value: float | None) -> str:
    return "  -" if value is None else f"{100 * value:3.0f}%"


def _count_units(config: BenchmarkConfig) -> int:
    total = 0
    for name in config.envs:
        env = ENVS[name]
        kinds = [k for k in config.models if k == "learned" or env.kind == "grid"]
        for mode in config.modes:
            units = math.ceil(config.pairs / config.batch_size) if mode == "open_loop" else 1
            total += len(kinds) * len(config.horizons_of(env, mode)) * len(config.labels_of(env, mode)) * units
    return total


def _config_json(config: BenchmarkConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    for key in ("model_dir", "out_dir", "rl_results"):
        out[key] = _display(out[key])
    out["budgets"] = {k: dict(v) for k, v in config.budgets.items()}
    out["data_steps"] = {name: config.steps_of(ENVS[name]) for name in config.envs}
    out["horizons"] = {name: list(config.horizons_of(ENVS[name])) for name in config.envs}
    out["closed_loop_horizons"] = {name: list(config.horizons_of(ENVS[name], "closed_loop")) for name in config.envs}
    out["env_horizons"] = {k: list(v) for k, v in config.env_horizons.items()}
    return out


# ----------------------------------------------------------------------------- command line


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the benchmark's flags to ``parser`` (a new one by default)."""
    parser = parser or argparse.ArgumentParser(prog="benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=None, metavar="ENV", help=f"from {sorted(ENVS)} (default: {' '.join(DEFAULT_ENVS)})")
    parser.add_argument("--planners", nargs="+", default=None, metavar="PLANNER", help=f"from {list(VARIANTS)} (default: all)")
    parser.add_argument("--model", dest="models", nargs="+", default=None, metavar="KIND", help="learned and/or analytic (grid worlds only); default learned")
    parser.add_argument(
        "--horizons", nargs="+", default=None, metavar="H|ENV=H,H",
        help="horizons for every env and/or per env, e.g. 50 80 cartpole=25,40 (default: grid 25 50 80, cart-pole 25 40 50; --quick one)",
    )
    parser.add_argument("--ablation-envs", nargs="+", default=None, metavar="ENV", help="envs that get the GRASP ablation rows (default: all)")
    parser.add_argument("--closed-loop-envs", nargs="+", default=None, metavar="ENV", help="envs run in closed loop (default: all)")
    parser.add_argument("--closed-loop-horizons", type=int, nargs="+", default=None, help="closed-loop horizons (default: the open-loop ones)")
    parser.add_argument("--modes", nargs="+", default=None, metavar="MODE", help="open_loop and/or closed_loop (default both)")
    parser.add_argument("--pairs", type=int, default=None, help="open-loop start/goal pairs per cell (default 50, --quick 4)")
    parser.add_argument("--closed-loop-pairs", type=int, default=None, help="closed-loop episodes per cell (default 10, --quick 1)")
    parser.add_argument("--closed-loop-planners", nargs="+", default=None, metavar="PLANNER", help="rows run in closed loop (default grasp cem mppi gd)")
    parser.add_argument("--batch-size", type=int, default=10, help="start/goal pairs per plan_batch call")
    parser.add_argument("--configs", type=Path, default=None, help='per-planner options JSON: {"grasp": {...}, "cem": {...}} or a tune_planners report')
    parser.add_argument("--data-steps", nargs="+", default=None, metavar="ENV=STEPS", help="learned-model data budget per env (defaults: grid 20000, cart-pole 30000)")
    parser.add_argument("--train-seconds", type=float, default=120.0, help="wall-time cap of world-model training")
    parser.add_argument("--seed", type=int, default=0, help="task sampler + model seed")
    parser.add_argument("--eval-seed", type=int, default=1000, help="first closed-loop reset seed (the RL baselines' evaluation seed)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 pairs, one horizon per env, 1/4 of the iterations, 1 closed-loop episode")
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--prefix", default=None, help="output file prefix (default benchmark, --quick benchmark_quick)")
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "checkpoints" / "benchmark")
    parser.add_argument("--rl-results", type=Path, default=REPO_ROOT / "results" / "rl_baselines.json")
    parser.add_argument("--resume", action="store_true", help="reuse finished work units of an earlier run with identical settings and code")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _choices(values: Sequence[str] | None, valid: Sequence[str], what: str) -> None:
    for value in values or ():
        if value not in valid:
            raise ValueError(f"unknown {what} {value!r}; choose from {list(valid)}")


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    """Validate the flags (clear ``ValueError`` messages) and build the frozen config."""
    _choices(args.envs, list(ENVS), "env")
    _choices(args.planners, list(VARIANTS), "planner")
    _choices(args.closed_loop_planners, list(VARIANTS), "planner")
    _choices(args.models, MODEL_KINDS, "model")
    _choices(args.modes, ("open_loop", "closed_loop"), "mode")
    horizons: list[int] = []
    env_horizons: dict[str, tuple[int, ...]] = {}
    for item in args.horizons or ():
        name, sep, raw = item.partition("=")
        try:
            if sep:
                if name not in ENVS:
                    raise ValueError(f"unknown env {name!r}; choose from {sorted(ENVS)}")
                env_horizons[name] = tuple(int(h) for h in raw.split(","))
            else:
                horizons.append(int(item))
        except ValueError as error:
            if "unknown env" in str(error):
                raise
            raise ValueError(f"--horizons expects integers or ENV=H,H,..., got {item!r}") from None
    _choices(args.ablation_envs, list(ENVS), "env")
    _choices(args.closed_loop_envs, list(ENVS), "env")
    data_steps = {}
    for item in args.data_steps or ():
        name, sep, raw = item.partition("=")
        if not sep or name not in ENVS or not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"--data-steps expects ENV=STEPS with ENV in {sorted(ENVS)}, got {item!r}")
        data_steps[name] = int(raw)
    quick = bool(args.quick)
    return BenchmarkConfig(
        envs=tuple(args.envs or DEFAULT_ENVS),
        planners=tuple(args.planners or DEFAULT_PLANNERS),
        models=tuple(args.models or ("learned",)),
        horizons=tuple(horizons) or None,
        env_horizons=env_horizons,
        ablation_envs=None if args.ablation_envs is None else tuple(args.ablation_envs),
        closed_loop_envs=None if args.closed_loop_envs is None else tuple(args.closed_loop_envs),
        closed_loop_horizons=None if args.closed_loop_horizons is None else tuple(args.closed_loop_horizons),
        modes=tuple(args.modes or ("open_loop", "closed_loop")),
        pairs=args.pairs if args.pairs is not None else (4 if quick else 50),
        closed_loop_pairs=args.closed_loop_pairs if args.closed_loop_pairs is not None else (1 if quick else 10),
        closed_loop_planners=tuple(args.closed_loop_planners or ("grasp", "cem", "mppi", "gd")),
        batch_size=args.batch_size,
        budgets=load_configs(args.configs) if args.configs is not None else {},
        seed=args.seed,
        eval_seed=args.eval_seed,
        data_steps=data_steps,
        train_seconds=(min(args.train_seconds, 20.0) if quick else args.train_seconds),
        quick=quick,
        model_dir=args.model_dir,
        out_dir=args.out_dir,
        prefix=args.prefix or ("benchmark_quick" if quick else "benchmark"),
        rl_results=args.rl_results,
        resume=bool(args.resume),
        progress=not args.no_progress,
    )


def main(argv: Sequence[str] | None = None, prog: str = "python experiments/benchmark.py") -> int:
    """Parse flags, run, print the markdown tables; exit status 1 with a one-line message on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])).parse_args(argv)
    return _run(args, f"{prog} {shlex.join(argv)}".strip())


def _run(args: argparse.Namespace, command: str) -> int:
    from mpc_grasp.benchmark_report import markdown_report

    try:
        config = config_from_args(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"benchmark: error: {error}", file=sys.stderr)
        return 1
    report = run_benchmark(config, command)
    if config.progress:
        print(markdown_report(report))
        print(f"wrote {config.out_dir / config.prefix}.{{json,csv,md}} and plots in {report['total_seconds']:.0f} s")
    return 0


def register_benchmark(subparsers: Any) -> None:
    """``mpc-grasp benchmark``: the same flags as ``experiments/benchmark.py``."""
    parser = subparsers.add_parser("benchmark", help="GRASP vs CEM/MPPI/GD (+ ablations, RL rows) across horizons in the real envs")
    build_parser(parser)
    parser.set_defaults(handler=lambda args: _run(args, "mpc-grasp benchmark " + shlex.join(sys.argv[2:])))
