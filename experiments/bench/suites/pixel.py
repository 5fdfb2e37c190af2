"""The pixel benchmark (issue 5): GRASP vs GRASP without detach vs CEM / MPPI / GD in the latent space of a
learned :class:`~mpc_grasp.models.pixel.PixelWorldModel`, measured in the REAL pixel grid world ``wall``.

* The model (keypoint encoder, sprite decoder, latent MLP dynamics) is trained once from images and
  actions only and cached (``model_path``, default ``checkpoints/pixel_wall.pt``, git-ignored).
* Tasks: fixed start/goal pairs, the same for every planner and horizon; ``random`` (start and goal
  anywhere in free space, >= 1.5 apart) and ``across`` (opposite rooms below the door: the straight line
  is blocked by the wall). The planner sees only the start image and the goal image.
* Open loop (one work unit per family x horizon x variant): plan once per pair from ``encode(start
  image)`` to ``encode(goal image)``, execute the actions in the real env (the real-env benchmark's
  :func:`~bench.suites.real_env.execute_open_loop` and success test); success = within the env's goal
  radius at any step <= H. Also recorded: success under the model (the rollout ends within the latent
  goal tolerance), wall time per plan, model calls and transitions, iterations, and whether the pair is
  reachable in H steps at all (:func:`~bench.suites.problems.feasible`).
* Closed loop (one unit per family x variant): ``GraspMPC`` episodes from the same pairs
  (:func:`~mpc_grasp.control.episodes.run_episodes`), replanning every ``replan_every`` steps.
* Gradient reshaping (one unit): GRASP with and without the stop-gradient on the same problems
  (:func:`~bench.diagnostics.gradient_reshaping_histories`); a filmstrip of GRASP's decoded
  virtual states next to the real frames (:func:`~bench.diagnostics.plan_filmstrip`).
* The latent goal tolerance (early stop, success under the model) is calibrated from data: the local
  slope of latent distance vs true distance on rendered frames, times the goal radius.

Units run through :func:`bench.engine.run_units` (resume log ``<stem>.partial.jsonl``, in-process
or on Ray; workers load the cached model from its path). Tables and figures: :mod:`bench.suites.pixel_report`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from bench.engine import REPO_ROOT, ResumeLog, WorkUnit, file_hashes, run_units
from bench.report import median, success_rate, write_report
from bench.suites.problems import feasible, shortest_path_length
from bench.suites.real_env import (
    ENVS,
    QUICK_SCALE,
    PlannerVariant,
    Task,
    execute_open_loop,
    first_true,
    planner_states,
    success_steps,
)
from mpc_grasp.data import make_env
from mpc_grasp.parallel import ParallelOptions
from mpc_grasp.planners import PLANNERS, GraspConfig, GraspPlanner, make_planner

if TYPE_CHECKING:
    from mpc_grasp.envs.pixels import PixelGridWorldEnv

__all__ = [
    "ENV_ID",
    "FAMILIES",
    "QUICK",
    "VARIANTS",
    "PixelBenchConfig",
    "calibrate_tolerance",
    "make_tasks",
    "run_pixel_bench",
    "summaries",
]

ENV = ENVS["pixel_wall"]
ENV_ID = ENV.env_id
FAMILIES = ("random", "across")
_PAPER = dataclasses.asdict(GraspConfig.paper(num_candidates=16))
VARIANTS: dict[str, PlannerVariant] = {
    # budgets: GRASP and GD at a few hundred gradient steps, CEM/MPPI at the usual 30 x 256 samples
    "grasp": PlannerVariant("grasp", "grasp", (), "GRASP (defaults: state-side options in units of the latent scale)"),
    "grasp_no_detach": PlannerVariant("grasp_no_detach", "grasp", (("detach_states", False),), "GRASP, full gradients"),
    "grasp_paper": PlannerVariant(  # the published planner, as options (goal_tolerance is set per run)
        "grasp_paper", "grasp", tuple((k, v) for k, v in _PAPER.items() if k != "goal_tolerance"), "GraspConfig.paper()"
    ),
    "cem": PlannerVariant("cem", "cem", (("iterations", 30), ("num_candidates", 256), ("elites", 32))),
    "mppi": PlannerVariant("mppi", "mppi", (("iterations", 30), ("num_candidates", 256))),
    "gd": PlannerVariant("gd", "gd", (("iterations", 150), ("num_candidates", 8))),
}
TRAIN_KWARGS: dict[str, Any] = {"n_steps": 10_000, "episode_length": 50, "seed": 0}
"""The cached model: 10k env steps of correlated random actions, the package's default training."""
QUICK_TRAIN_KWARGS: dict[str, Any] = {
    "n_steps": 600,
    "episode_length": 40,
    "iterations": 60,
    "batch_size": 16,
    "dynamics_iterations": 150,
    "latent_dim": 8,
    "seed": 0,
}
QUICK: dict[str, Any] = {
    "pairs": 2,
    "horizons": (15,),
    "across_horizons": (30,),
    "closed_loop_pairs": 1,
    "max_episode_steps": 20,
    "grad_problems": 2,
    "model_path": REPO_ROOT / "checkpoints" / "pixel_wall_quick.pt",
}
"""What ``quick=True`` changes besides the tiny model and a quarter of every planner's iterations."""


@dataclass(frozen=True)
class PixelBenchConfig:
    """Everything that determines the benchmark's numbers (and its output names)."""

    pairs: int = 20
    horizons: tuple[int, ...] = (15, 30, 50)
    """Horizons of the ``random`` tasks."""
    across_horizons: tuple[int, ...] = (30, 50)
    """Horizons of the ``across`` tasks: the path around the wall is >= 23 steps, so H=15 is infeasible."""
    variants: tuple[str, ...] = tuple(VARIANTS)
    families: tuple[str, ...] = FAMILIES
    closed_loop_pairs: int = 6
    closed_loop_variants: tuple[str, ...] = ("grasp", "cem")
    closed_loop_horizon: int = 30
    replan_every: int = 10
    max_episode_steps: int = 100
    grad_problems: int = 8
    seed: int = 0
    quick: bool = False
    model_path: Path = REPO_ROOT / "checkpoints" / "pixel_wall.pt"
    out_dir: Path = REPO_ROOT / "results"
    threads: int = 1
    resume: bool = False
    progress: bool = True
    parallel: ParallelOptions = field(default_factory=ParallelOptions)

    def __post_init__(self) -> None:
        for name in ("pairs", "threads", "replan_every", "max_episode_steps", "grad_problems", "closed_loop_horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.closed_loop_pairs < 0:
            raise ValueError("--closed-loop-pairs must be >= 0")
        if any(h < 2 for h in (*self.horizons, *self.across_horizons)):
            raise ValueError("--horizons must be >= 2")
        for name in (*self.variants, *self.closed_loop_variants):
            if name not in VARIANTS:
                raise ValueError(f"unknown variant {name!r}; choose from {list(VARIANTS)}")
        for name in self.families:
            if name not in FAMILIES:
                raise ValueError(f"unknown task family {name!r}; choose from {list(FAMILIES)}")

    @property
    def stem(self) -> str:
        return "pixel_bench_quick" if self.quick else "pixel_bench"

    def horizons_of(self, family: str) -> tuple[int, ...]:
        return self.horizons if family == "random" else self.across_horizons

    def budget(self, variant: str) -> tuple[str, dict[str, Any]]:
        """(planner, options) of a variant: its options over the planner's default iterations; ``quick``: a quarter of them."""
        row = VARIANTS[variant]
        config = {"iterations": PLANNERS[row.planner].config_class.iterations, **dict(row.options)}
        if self.quick:
            config["iterations"] = max(2, int(round(config["iterations"] * QUICK_SCALE)))
        return row.planner, config


# ----------------------------------------------------------------------------- setup


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers (JSON-able)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else repr(v)))


def load_model(path: Path, quick: bool, progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """Load the cached pixel model or train (and cache) it; returns the model and what it cost."""
    from mpc_grasp.models.pixel import load_or_train_pixel_world_model

    existed = Path(path).exists()
    started = time.perf_counter()
    kwargs = QUICK_TRAIN_KWARGS if quick else TRAIN_KWARGS
    model = load_or_train_pixel_world_model(ENV_ID, path, progress=progress, **kwargs)
    model.eval()
    info = model.training_info
    return model, _plain(
        {
            "path": str(path),
            "loaded_from_cache": existed,
            "seconds_this_run": time.perf_counter() - started,
            "requested_train_kwargs": kwargs,
            "iterations": info.get("iterations"),
            "dynamics_iterations": len(info.get("dynamics_history", []))
            and info["dynamics_history"][-1]["iteration"] + 1,
            "collect_seconds": info.get("collect_seconds"),
            "train_seconds": info.get("train_seconds"),
            "dynamics_seconds": info.get("dynamics_seconds"),
            "total_training_seconds": info.get("total_seconds"),
            "transitions": info.get("transitions"),
            "latent_dim": model.latent_dim,
            "validation": info.get("validation"),
        }
    )


_MODELS: dict[tuple[str, float], Any] = {}


def _cached_model(path: str) -> Any:
    """The checkpoint at ``path``, loaded once per process (and again if the file changed)."""
    from mpc_grasp.models.pixel import load_pixel_world_model

    key = (path, Path(path).stat().st_mtime)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_pixel_world_model(path).eval()
    return _MODELS[key]


@torch.no_grad()
def calibrate_tolerance(model: Any, env: Any, seed: int, count: int = 400) -> dict[str, float]:
    """Latent goal tolerance = (local slope of latent vs true distance) x goal radius.

    Encodes the first frames of ``count`` env resets (uniform free start positions) and fits
    ``latent_d = k * true_d`` (least squares through the origin) on pairs closer than 1.0.
    """
    images, positions = [], []
    for k in range(count):
        obs, info = env.reset(seed=10_000_019 * (seed + 1) + k)
        images.append(obs["observation"])
        positions.append(info["state"])
    positions_a = np.stack(positions)
    latents = model.encode(np.stack(images)).numpy().astype(np.float64)
    i, j = np.triu_indices(count, k=1)
    true_d = np.linalg.norm(positions_a[i] - positions_a[j], axis=1)
    latent_d = np.linalg.norm(latents[i] - latents[j], axis=1)
    near = true_d < 1.0
    slope = float(true_d[near] @ latent_d[near] / (true_d[near] @ true_d[near]))
    radius = float(env.unwrapped.goal_radius)
    return {"slope": slope, "goal_radius": radius, "tolerance": slope * radius, "pairs": int(near.sum())}


def make_tasks(env: Any, family: str, pairs: int, seed: int) -> list[dict[str, Any]]:
    """Fixed start/goal pairs sampled by the env itself (``task`` = ``family``), with the length of the
    shortest collision-free path (and its L-infinity length, for the feasibility bound)."""
    tasks = []
    for k in range(pairs):
        _, info = env.reset(seed=seed * 100_003 + k, options={"task": family})
        start, goal = info["state"], info["goal_state"]
        tasks.append(
            {
                "family": family,
                "index": k,
                "start": start.tolist(),
                "goal": goal.tolist(),
                "path_length": shortest_path_length("wall", start, goal),
                "path_length_chebyshev": shortest_path_length("wall", start, goal, metric="chebyshev"),
            }
        )
    return tasks


def _bench_task(task: Mapping[str, Any]) -> Task:
    return Task(task["index"], tuple(task["start"]), tuple(task["goal"]), tuple(task["start"]))


def execute(gym_env: Any, task: Mapping[str, Any], actions: np.ndarray) -> dict[str, Any]:
    """Run ``actions`` open loop in the real env from the task's start until the goal radius is reached."""
    positions = execute_open_loop(ENV, gym_env, _bench_task(task), actions)
    step = first_true(success_steps(ENV, positions, task["goal"], float(gym_env.unwrapped.goal_radius)))
    positions = positions if step is None else positions[: step + 1]
    distances = np.linalg.norm(positions - np.asarray(task["goal"]), axis=1)
    return {
        "positions": positions,
        "success": step is not None,
        "success_step": step,
        "final_distance": float(distances[-1]),
        "min_distance": float(distances.min()),
    }


# ----------------------------------------------------------------------------- work units


def _open_loop(model: Any, gym_env: Any, unit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One plan per task, executed open loop in the real env."""
    planner = make_planner(
        unit["planner"],
        model,
        unit["horizon"],
        action_space=gym_env.action_space,
        goal_tolerance=unit["tolerance"],
        **unit["budget"],
    )
    starts, goals = planner_states(ENV, model, gym_env, [_bench_task(t) for t in unit["tasks"]])
    radius = float(gym_env.unwrapped.goal_radius)
    records = []
    for row, task in enumerate(unit["tasks"]):
        result = planner.plan(starts[row], goals[row])
        run = execute(gym_env, task, result.actions.numpy())
        reached = result.info.get("reached_under_model")
        records.append(
            {
                "mode": "open_loop",
                "family": task["family"],
                "pair": task["index"],
                "variant": unit["variant"],
                "horizon": unit["horizon"],
                "success": run["success"],
                "success_step": run["success_step"],
                "feasible": feasible(task, unit["horizon"], radius),
                "final_distance": run["final_distance"],
                "min_distance": run["min_distance"],
                "success_under_model": bool(reached) if reached is not None else None,
                "latent_final_distance": float(result.info["final_distance"]),
                "wall_time": float(result.info["wall_time"]),
                "model_calls": int(result.info["model_calls"]),
                "model_transitions": int(result.info["model_transitions"]),
                "iterations": int(result.info["iterations"]),
            }
        )
    return records


def _closed_loop(model: Any, unit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``GraspMPC`` episodes from the tasks' starts (the agent reads the goal image from the observation)."""
    from mpc_grasp.control.agent import GraspMPC
    from mpc_grasp.control.episodes import run_episodes

    env = make_env(ENV_ID, max_episode_steps=unit["max_steps"] + 1)
    agent = GraspMPC(
        model,
        planner=unit["planner"],
        horizon=unit["horizon"],
        action_space=env.action_space,
        replan_every=unit["replan_every"],
        goal_tolerance=unit["tolerance"],
        **unit["budget"],
    )
    records = []
    for task in unit["tasks"]:
        options = {"start": task["start"], "goal": task["goal"]}
        (episode,) = run_episodes(
            env, agent, 1, seed=None, max_steps=unit["max_steps"], reset_options=options, progress=False
        )
        records.append(
            {
                "mode": "closed_loop",
                "family": task["family"],
                "pair": task["index"],
                "variant": unit["variant"],
                "horizon": unit["horizon"],
                "success": bool(episode.success_any),
                "success_step": episode.first_success_step,
                "steps": episode.steps,
                "final_distance": float(
                    np.linalg.norm(cast("PixelGridWorldEnv", env.unwrapped).position - np.asarray(task["goal"]))
                ),
                "plans": len(episode.plans),
                "wall_time": median(episode.plan_times),
                "episode_seconds": episode.wall_time,
            }
        )
    env.close()
    return records


def _grad_norms(model: Any, gym_env: Any, unit: Mapping[str, Any]) -> dict[str, Any]:
    """GRASP's gradient norms with and without the detach on the same problems, averaged per iteration."""
    from bench.diagnostics import gradient_reshaping_histories

    budget = unit["budget"]
    starts, goals = planner_states(ENV, model, gym_env, [_bench_task(t) for t in unit["tasks"]])
    options = {k: v for k, v in budget.items() if k not in ("iterations", "detach_states")}
    histories = gradient_reshaping_histories(
        model, starts, goals, unit["horizon"], iterations=budget["iterations"], **options
    )
    return {
        "family": unit["family"],
        "horizon": unit["horizon"],
        "problems": len(unit["tasks"]),
        "iterations": budget["iterations"],
        "num_candidates": budget.get("num_candidates", GraspConfig.num_candidates),
        "sync_every": cast(GraspPlanner, make_planner("grasp", model, 2, **budget)).config.sync_every,
        "summary": {
            name: {key: float(np.median(h[key])) for key in ("state_grad_norm", "action_grad_norm", "final_distance")}
            for name, h in histories.items()
        },
        "histories": {name: {key: values.tolist() for key, values in h.items()} for name, h in histories.items()},
    }


def run_unit(unit: Mapping[str, Any]) -> Any:
    """Worker of every pixel-benchmark unit (``mode``: open_loop, closed_loop or grad_norms)."""
    model = _cached_model(unit["model_path"])
    if unit["mode"] == "closed_loop":
        return _closed_loop(model, unit)
    gym_env = make_env(ENV_ID)
    try:
        return _open_loop(model, gym_env, unit) if unit["mode"] == "open_loop" else _grad_norms(model, gym_env, unit)
    finally:
        gym_env.close()


def units(config: PixelBenchConfig, tasks: Mapping[str, list[dict[str, Any]]], tolerance: float) -> list[WorkUnit]:
    """Open loop: family x horizon x variant; closed loop: family x variant; one gradient-norm unit."""
    model = {"model_path": str(config.model_path)}
    shared = {"model_sha256": file_hashes([config.model_path]), "tolerance": tolerance}

    def unit(key: dict[str, Any], variant: str, unit_tasks: list[dict[str, Any]], **extra: Any) -> WorkUnit:
        planner, budget = config.budget(variant)
        settings = {**shared, "planner": planner, "budget": budget, "tasks": unit_tasks, **extra}
        return WorkUnit(key, settings, {**key, **settings, **model, "variant": variant})

    out = [
        unit({"mode": "open_loop", "family": family, "horizon": horizon, "variant": variant}, variant, tasks[family])
        for family in config.families
        for horizon in config.horizons_of(family)
        for variant in config.variants
    ]
    if config.closed_loop_pairs:
        out += [
            unit(
                {"mode": "closed_loop", "family": family, "horizon": config.closed_loop_horizon, "variant": variant},
                variant,
                tasks[family][: config.closed_loop_pairs],
                replan_every=config.replan_every,
                max_steps=config.max_episode_steps,
            )
            for family in config.families
            for variant in config.closed_loop_variants
        ]
    family = config.families[0]
    horizons = config.horizons_of(family)
    horizon = 30 if 30 in horizons else horizons[len(horizons) // 2]
    out.append(
        unit(
            {"mode": "grad_norms", "family": family, "horizon": horizon}, "grasp", tasks[family][: config.grad_problems]
        )
    )
    return out


# ----------------------------------------------------------------------------- summaries and the run


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Success count, rate, Wilson 95% interval, medians of time / calls / iterations."""
    rate, interval, n = success_rate([r["success"] for r in records])
    out: dict[str, Any] = {
        "n": n,
        "successes": sum(r["success"] for r in records),
        "rate": rate,
        "ci95": interval,
        "median_wall_time": median([r["wall_time"] for r in records]),
    }
    under = [r["success_under_model"] for r in records if r.get("success_under_model") is not None]
    if under:
        out["rate_under_model"] = float(np.mean(under))
    flags = [r["feasible"] for r in records if "feasible" in r]
    if flags:
        out["feasible_fraction"] = float(np.mean(flags))
    for key in ("model_calls", "model_transitions", "iterations", "plans", "episode_seconds"):
        values = [r[key] for r in records if key in r]
        if values:
            out[f"median_{key}"] = median(values)
    out["median_steps_to_success"] = median([r["success_step"] for r in records if r["success"]])
    return out


def summaries(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One summary per (mode, family, variant, horizon), in table order."""
    order = list(VARIANTS)
    keys = sorted(
        {(r["mode"], r["family"], r["variant"], r["horizon"]) for r in records},
        key=lambda k: (k[0], FAMILIES.index(k[1]), order.index(k[2]), k[3]),
    )
    return [
        {
            "mode": mode,
            "family": family,
            "variant": variant,
            "horizon": horizon,
            **summarize(
                [
                    r
                    for r in records
                    if (r["mode"], r["family"], r["variant"], r["horizon"]) == (mode, family, variant, horizon)
                ]
            ),
        }
        for mode, family, variant, horizon in keys
    ]


def filmstrip_panels(
    model: Any, config: PixelBenchConfig, task: Mapping[str, Any], horizon: int, tolerance: float
) -> list[tuple[str, Any]]:
    """GRASP's decoded virtual states and rollout next to the real frames, with and without the detach."""
    from bench.diagnostics import plan_filmstrip

    gym_env = make_env(ENV_ID)
    start, goal = planner_states(ENV, model, gym_env, [_bench_task(task)])
    panels = []
    for variant in ("grasp", "grasp_no_detach"):
        planner, budget = config.budget(variant)
        plan = make_planner(
            planner, model, horizon, action_space=gym_env.action_space, goal_tolerance=tolerance, **budget
        ).plan(start[0], goal[0])
        run = execute(gym_env, task, plan.actions.numpy())
        pixel_env = cast("PixelGridWorldEnv", gym_env.unwrapped)
        frames = np.stack([pixel_env.render_position(p, None) for p in run["positions"]])
        outcome = (
            f"reached the goal at step {run['success_step']}"
            if run["success"]
            else f"missed, final distance {run['final_distance']:.2f}"
        )
        panels.append(
            (
                f"{variant} (real env: {outcome})",
                plan_filmstrip(model, plan, goal[0], frames, every=max(1, horizon // 10)),
            )
        )
    gym_env.close()
    return panels


def run_pixel_bench(config: PixelBenchConfig, command: str) -> dict[str, Any]:
    """Run every unit (reusing the resume log), draw the diagnostics, write the outputs, return the report."""
    from bench.suites.pixel_report import markdown, plot_filmstrips, plot_grad_norms, plot_success

    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    model, model_info = load_model(config.model_path, config.quick)
    say = print if config.progress else (lambda *_, **__: None)
    say(
        f"model: {'loaded' if model_info['loaded_from_cache'] else 'trained'} {config.model_path} "
        f"(training took {model_info['total_training_seconds']:.0f} s)",
        flush=True,
    )
    env = make_env(ENV_ID)
    tolerance = calibrate_tolerance(model, env, config.seed)
    say(f"latent goal tolerance {tolerance['tolerance']:.4f}", flush=True)
    tasks = {family: make_tasks(env, family, config.pairs, config.seed) for family in config.families}
    env.close()

    work = units(config, tasks, tolerance["tolerance"])
    log = ResumeLog(Path(config.out_dir) / f"{config.stem}.partial.jsonl", resume=config.resume)
    results = run_units(run_unit, work, log=log, parallel=config.parallel, progress=config.progress, desc="pixel bench")
    records = [record for unit, result in zip(work, results) if unit.key["mode"] != "grad_norms" for record in result]
    grad = results[-1]

    suffix = "_quick" if config.quick else ""
    plot_grad_norms(grad, Path(config.out_dir) / f"pixel_grad_norms{suffix}.png")
    family, horizon = grad["family"], grad["horizon"]
    solved = [
        r
        for r in records
        if (r["mode"], r["variant"], r["horizon"], r["family"]) == ("open_loop", "grasp", horizon, family)
        and r["success"]
    ]
    film_task = tasks[family][solved[0]["pair"] if solved else 0]
    plot_filmstrips(
        filmstrip_panels(model, config, film_task, horizon, tolerance["tolerance"]),
        Path(config.out_dir) / f"pixel_virtual_states{suffix}.png",
    )

    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items() if k != "parallel"
    }
    report = {
        "command": command,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "threads": config.threads,
        "total_seconds": time.perf_counter() - started,
        "env_id": ENV_ID,
        "args": settings,
        "variants": {v: dict(zip(("planner", "config"), config.budget(v))) for v in config.variants},
        "model": model_info,
        "tolerance": tolerance,
        "tasks": tasks,
        "summaries": summaries(records),
        "records": records,
        "grad_norms": grad,
        "filmstrip_task": film_task,
        "units_reused_from_log": log.reused,
    }
    write_report(config.out_dir, config.stem, report, markdown, plot_success)
    return report
