"""The benchmark (DESIGN.md §7): GRASP vs CEM vs MPPI vs GD (+ GRASP ablations, + RL rows) across
horizons, in the *real* environments.

* Envs (``ENVS``): grid world ``wall`` / ``umaze`` / ``maze`` with non-greedy start/goal pairs from
  :func:`mpc_grasp.envs.grid_world.sample_task`, cart-pole swing-up (start hanging down, goal upright at
  rest), and optionally ``pixel_wall`` (grid world ``wall`` seen through 64x64 images, planning in the
  latent space of a :class:`~mpc_grasp.models.PixelWorldModel`).
* World models: ``learned`` — an :class:`~mpc_grasp.models.MLPWorldModel` per env trained on a stated
  data budget (cached under ``checkpoints/benchmark/``, keyed by env, budget and seed); ``analytic`` —
  :class:`~mpc_grasp.models.analytic.PointMassWalls` for the grid worlds, which separates planner failures
  from model failures.
* Open loop: one plan per start/goal pair (``plan_batch`` over chunks of pairs), the actions executed in
  the real env; success = within the env's goal region at any step <= H. Success *under the model*
  is the same test on the model rollout.
* Closed loop: :class:`~mpc_grasp.control.agent.GraspMPC` episodes via :func:`mpc_grasp.control.episodes.run_episodes`,
  seeded like the RL baselines' evaluation, so the k-th start/goal is the one PPO/SAC faced.

Every unit of work (one chunk of plans, one closed-loop cell) is a :class:`~bench.engine.WorkUnit`
run by the engine (in-process or on Ray, ``--backend``), logged with a fingerprint of its settings and of the
code; ``--resume`` reuses matching units. The environments, tasks and execution are in
:mod:`bench.suites.real_env`; outputs are written by :mod:`bench.suites.benchmark_report`. Entry points: ``python
experiments/benchmark.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import functools
import json
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from bench.engine import REPO_ROOT, ResumeLog, WorkUnit, code_fingerprint, run_units
from bench.report import git_commit, median, pct
from bench.suites.real_env import (
    DEFAULT_BUDGETS,
    DEFAULT_ENVS,
    DEFAULT_PLANNERS,
    ENVS,
    MODEL_KINDS,
    QUICK_SCALE,
    RL_ENV_KEYS,
    VARIANTS,
    BenchEnv,
    PlannerVariant,
    Task,
    execute_open_loop,
    load_or_train_mlp,
    load_rl_runs,
    make_tasks,
    plan_chunk,
    run_closed_loop,
    success_steps,
    summarize_open_loop,
)
from mpc_grasp.data import make_env
from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments
from mpc_grasp.planners import make_planner

if TYPE_CHECKING:
    from mpc_grasp.envs.grid_world import GridWorldEnv

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
    "run_benchmark",
    "success_steps",
]


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
    parallel: ParallelOptions = field(default_factory=ParallelOptions)
    """Where the work units run (``--backend local|ray``, ``--address``, ``--workers``)."""

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
    (the archived tuning sweep's ``results/tuning.json``). Unknown planners or options raise ``ValueError``."""
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
        raise ValueError(
            f'--configs: {path} must map planner names to option objects, e.g. {{"grasp": {{"iterations": 300}}}}'
        )
    from mpc_grasp.models.analytic import LinearSystem

    probe = LinearSystem.point()
    for label, options in data.items():
        if label not in VARIANTS:
            raise ValueError(f"--configs: unknown planner {label!r} in {path}; choose from {sorted(VARIANTS)}")
        try:  # fail fast on unknown / invalid options
            make_planner(VARIANTS[label].planner, probe, 2, **{**DEFAULT_BUDGETS[VARIANTS[label].planner], **options})
        except (TypeError, ValueError) as error:
            raise ValueError(f"--configs: bad options for {label!r} in {path}: {error}") from None
    return {label: dict(options) for label, options in data.items()}


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
        from mpc_grasp.models.analytic import PointMassWalls

        assert env.layout is not None, f"grid env {env.name!r} has no layout"
        geo = cast("GridWorldEnv", make_env(env.env_id).unwrapped)
        model = PointMassWalls.from_layout(env.layout, agent_radius=geo.agent_radius, step_size=geo.step_size)
        return model, {
            "kind": "analytic",
            "class": "PointMassWalls",
            "layout": env.layout,
            "smoothing": float(model.smoothing) if hasattr(model, "smoothing") else None,
        }
    steps = config.steps_of(env)
    if env.kind == "pixel":
        from mpc_grasp.models import load_or_train_pixel_world_model

        path = config.model_dir / f"{env.name}_{steps}_seed{config.seed}.pt"
        started = time.perf_counter()
        pixel_model = load_or_train_pixel_world_model(
            env.env_id, path, n_steps=steps, seed=config.seed, progress=config.progress
        )
        return pixel_model, {
            "kind": "learned",
            "class": "PixelWorldModel",
            "path": _display(path),
            "data_steps": steps,
            "build_time_s": time.perf_counter() - started,
        }
    path = config.model_dir / f"{env.name}_{steps}_seed{config.seed}_{'x'.join(map(str, config.hidden))}.pt"
    model, info = load_or_train_mlp(
        env.env_id,
        steps,
        path,
        seed=config.seed,
        hidden=config.hidden,
        train_seconds=config.train_seconds,
        progress=config.progress,
    )
    return model, {
        "kind": "learned",
        "class": "MLPWorldModel",
        "hidden": list(config.hidden),
        **info,
        "path": _display(path),
    }


# ----------------------------------------------------------------------------- the run


def rl_rows(path: Path, envs: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """RL baseline rows (closed loop, their own evaluation) for the benchmarked envs, from ``rl_baselines.json``."""
    runs, header = load_rl_runs(path)
    wanted = {RL_ENV_KEYS[name]: name for name in envs if name in RL_ENV_KEYS}
    rows = []
    for run in runs:
        if run.get("env") not in wanted:
            continue
        ev = run["eval"]
        rows.append(
            {
                "env": wanted[run["env"]],
                "planner": run["algo"] + ("+her" if run.get("her") else "") + f" ({run['budget']} budget)",
                "algo": run["algo"],
                "budget": run["budget"],
                "env_steps_trained": run.get("env_steps"),
                "n": ev["n_episodes"],
                "success_rate": ev["success_any_rate"],
                "success_ci95": ev["success_any_ci95"],
                "success_last_step_rate": ev["success_rate"],
                "mean_return": ev["mean_return"],
                "median_steps_to_success": median(ev.get("episode_first_success_step", [])),
                "eval_seed": ev.get("seed"),
            }
        )
    return rows, {k: header.get(k) for k in ("command", "git_commit", "eval_seed", "n_eval")}


def cell_units(
    env: BenchEnv, kind: str, model_id: Mapping[str, Any], tasks: Sequence[Task], config: BenchmarkConfig
) -> list[WorkUnit]:
    """The work units of one (env, model): a unit per open-loop chunk of pairs and per closed-loop cell."""
    units = []
    for mode in config.modes:
        for horizon in config.horizons_of(env, mode):
            for label in config.labels_of(env, mode):
                budget = {**config.budget_of(label), **dict(env.planner_options)}
                cell = {"env": env.name, "model": kind, "mode": mode, "planner": label, "horizon": horizon}
                if mode == "open_loop":
                    for first in range(0, len(tasks), config.batch_size):
                        chunk = [task.to_json() for task in tasks[first : first + config.batch_size]]
                        settings = {"budget": budget, "tasks": chunk, "model": dict(model_id), "seed": config.seed}
                        units.append(
                            WorkUnit(
                                {**cell, "first": first},
                                settings,
                                {**cell, "budget": budget, "tasks": chunk, "seed": first},
                            )
                        )
                else:
                    settings = {
                        "budget": budget,
                        "model": dict(model_id),
                        "eval_seed": config.eval_seed,
                        "episodes": config.closed_loop_pairs,
                        "quick": config.quick,
                    }
                    units.append(WorkUnit(cell, settings, {**cell, **settings}))
    return units


def run_unit(model: Any, unit: Mapping[str, Any]) -> Any:
    """One work unit: a chunk of open-loop plans (a list of records) or a closed-loop cell (episodes + summary)."""
    torch.set_num_threads(1)
    env = ENVS[unit["env"]]
    if unit["mode"] == "open_loop":
        tasks = [Task(t["index"], tuple(t["start"]), tuple(t["goal"]), tuple(t["env_start"])) for t in unit["tasks"]]
        gym_env = make_env(env.env_id)
        try:
            return plan_chunk(
                env, model, gym_env, unit["planner"], unit["budget"], unit["horizon"], tasks, seed=unit["seed"]
            )
        finally:
            gym_env.close()
    return run_closed_loop(
        env,
        model,
        unit["planner"],
        unit["budget"],
        unit["horizon"],
        episodes=unit["episodes"],
        eval_seed=unit["eval_seed"],
        quick=unit["quick"],
    )


def _cells(units: Sequence[WorkUnit], results: Sequence[Any]) -> list[dict[str, Any]]:
    """Group unit results into cells (one per env x model x mode x planner x horizon) with their summaries."""
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    for unit, result in zip(units, results):
        key = tuple(unit.key[name] for name in ("env", "model", "mode", "planner", "horizon"))
        cell = cells.setdefault(
            key,
            {
                **{name: unit.key[name] for name in ("env", "model", "mode", "planner", "horizon")},
                "budget": dict(unit.settings["budget"]),
                "records": [],
            },
        )
        if unit.key["mode"] == "open_loop":
            cell["records"].extend(result)
            cell["summary"] = summarize_open_loop(cell["records"])
        else:
            cell.update(records=result["episodes"], summary=result["summary"], max_steps=result["max_steps"])
    return list(cells.values())


def run_benchmark(config: BenchmarkConfig, command: str) -> dict[str, Any]:
    """Run every requested cell through the engine (reusing the resume log), write the outputs, return the report."""
    from bench.suites.benchmark_report import write_outputs

    torch.set_num_threads(1)
    started = time.perf_counter()
    sources = code_fingerprint()
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = ResumeLog(out_dir / f"{config.prefix}.partial.jsonl", resume=config.resume)
    cells: list[dict[str, Any]] = []
    tasks_by_env: dict[str, list[dict[str, Any]]] = {}
    models_info: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for env_name in config.envs:
        env = ENVS[env_name]
        tasks = make_tasks(env, config.pairs, config.seed)
        tasks_by_env[env_name] = [t.to_json() for t in tasks]
        for kind in config.models:
            if kind == "analytic" and env.kind != "grid":
                skipped.append(f"{env_name}/analytic: no analytic model (PointMassWalls covers the grid worlds only)")
                continue
            model, model_info = build_model(env, kind, config)
            models_info[f"{env_name}/{kind}"] = model_info
            model_id = {
                k: v for k, v in model_info.items() if k not in ("reused", "build_time_s", "collect_train_time_s")
            }
            units = cell_units(env, kind, model_id, tasks, config)
            results = run_units(
                functools.partial(run_unit, model),
                units,
                log=log,
                sources=sources,
                parallel=config.parallel,
                progress=config.progress,
                desc=f"{env_name}/{kind}",
            )
            for cell in _cells(units, results):
                cells.append(cell)
                if config.progress:
                    s = cell["summary"]
                    print(
                        f"{env_name}/{kind} {cell['mode']} H={cell['horizon']} {cell['planner']}: env {pct(s['success_rate'])} "
                        f"model {pct(s['success_model_rate'])} {s['median_wall_time_per_plan'] or float('nan'):.2f} s/plan",
                        flush=True,
                    )
    rl, rl_source = rl_rows(config.rl_results, config.envs) if "closed_loop" in config.modes else ([], {})
    changed = sorted(name for name, digest in code_fingerprint().items() if sources.get(name) != digest)
    report = {
        "command": command,
        "git_commit": git_commit(mark_dirty=True),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "threads": 1,
        },
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


def _config_json(config: BenchmarkConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    out["parallel"] = {"backend": config.parallel.backend, "num_workers": config.parallel.num_workers}
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
    parser.add_argument(
        "--envs",
        nargs="+",
        default=None,
        metavar="ENV",
        help=f"from {sorted(ENVS)} (default: {' '.join(DEFAULT_ENVS)})",
    )
    parser.add_argument(
        "--planners", nargs="+", default=None, metavar="PLANNER", help=f"from {list(VARIANTS)} (default: all)"
    )
    parser.add_argument(
        "--model",
        dest="models",
        nargs="+",
        default=None,
        metavar="KIND",
        help="learned and/or analytic (grid worlds only); default learned",
    )
    parser.add_argument(
        "--horizons",
        nargs="+",
        default=None,
        metavar="H|ENV=H,H",
        help="horizons for every env and/or per env, e.g. 50 80 cartpole=25,40 (default: grid 25 50 80, cart-pole 25 40 50; --quick one)",
    )
    parser.add_argument(
        "--ablation-envs",
        nargs="+",
        default=None,
        metavar="ENV",
        help="envs that get the GRASP ablation rows (default: all)",
    )
    parser.add_argument(
        "--closed-loop-envs", nargs="+", default=None, metavar="ENV", help="envs run in closed loop (default: all)"
    )
    parser.add_argument(
        "--closed-loop-horizons",
        type=int,
        nargs="+",
        default=None,
        help="closed-loop horizons (default: the open-loop ones)",
    )
    parser.add_argument(
        "--modes", nargs="+", default=None, metavar="MODE", help="open_loop and/or closed_loop (default both)"
    )
    parser.add_argument(
        "--pairs", type=int, default=None, help="open-loop start/goal pairs per cell (default 50, --quick 4)"
    )
    parser.add_argument(
        "--closed-loop-pairs", type=int, default=None, help="closed-loop episodes per cell (default 10, --quick 1)"
    )
    parser.add_argument(
        "--closed-loop-planners",
        nargs="+",
        default=None,
        metavar="PLANNER",
        help="rows run in closed loop (default grasp cem mppi gd)",
    )
    parser.add_argument("--batch-size", type=int, default=10, help="start/goal pairs per plan_batch call")
    parser.add_argument(
        "--configs",
        type=Path,
        default=None,
        help='per-planner options JSON: {"grasp": {...}, "cem": {...}} or a tune_planners report',
    )
    parser.add_argument(
        "--data-steps",
        nargs="+",
        default=None,
        metavar="ENV=STEPS",
        help="learned-model data budget per env (defaults: grid 20000, cart-pole 30000)",
    )
    parser.add_argument("--train-seconds", type=float, default=120.0, help="wall-time cap of world-model training")
    parser.add_argument("--seed", type=int, default=0, help="task sampler + model seed")
    parser.add_argument(
        "--eval-seed", type=int, default=1000, help="first closed-loop reset seed (the RL baselines' evaluation seed)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 4 pairs, one horizon per env, 1/4 of the iterations, 1 closed-loop episode",
    )
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results")
    parser.add_argument(
        "--prefix", default=None, help="output file prefix (default benchmark, --quick benchmark_quick)"
    )
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "checkpoints" / "benchmark")
    parser.add_argument("--rl-results", type=Path, default=REPO_ROOT / "results" / "rl_baselines.json")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse finished work units of an earlier run with identical settings and code",
    )
    parser.add_argument("--no-progress", action="store_true")
    add_parallel_arguments(parser)
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
        parallel=ParallelOptions.from_args(args),
    )


def main(argv: Sequence[str] | None = None, prog: str = "python experiments/benchmark.py") -> int:
    """Parse flags, run, print the markdown tables; exit status 1 with a one-line message on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])).parse_args(argv)
    return _run(args, f"{prog} {shlex.join(argv)}".strip())


def _run(args: argparse.Namespace, command: str) -> int:
    from bench.suites.benchmark_report import markdown_report

    try:
        config = config_from_args(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"benchmark: error: {error}", file=sys.stderr)
        return 1
    report = run_benchmark(config, command)
    if config.progress:
        print(markdown_report(report))
    smoke = " (a smoke run: its rates are not measurements)" if config.quick else ""
    print(f"wrote {config.out_dir / config.prefix}.{{json,csv,md}} and plots in {report['total_seconds']:.0f} s{smoke}")
    return 0
