"""The speed suite (issue 13): how long planning takes, as two measurements sharing one timing core.

* **Speed** (:func:`run_speed`, ``results/speed.{json,md,png}``): milliseconds per cold plan and per
  warm-started ``GraspMPC`` control step for every planner at its defaults (MLP world model 256x2, grid
  world ``wall``) across horizons, and ms per planner iteration at given candidate counts (a plan of
  ``iterations + 1`` iterations minus one of 1, so the per-plan selection rollout cancels).
* **Peer** (in :func:`run_speed`, :mod:`bench.suites.peers`): the same model and objective driven by ``GraspMPC``
  (GRASP, CEM, MPPI) and by the peer library pytorch_mppi (a small sweep of its samples and lambda), closed loop on
  the exact cart-pole swing-up (env reward) and grid world ``wall`` (goal): success, mean return, ms per step.
* **Profile** (:func:`run_profile`, ``results/profile_grasp.{json,md}``): one GRASP iteration against its
  floor, one forward+backward of the model (MLP 256x3) on the same [B·T] batch: GRASP without the sync,
  with the default sync amortised, and GD shooting, optionally with a ``torch.compile``'d model.

Every measurement is a work unit run in-process by :func:`bench.engine.run_units` (never in
parallel: concurrent timings measure contention). Timings depend on the machine's load, so a run is
only comparable with runs on the same, quiet machine.
"""

from __future__ import annotations

import datetime as _dt
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from bench.engine import REPO_ROOT, ResumeLog, WorkUnit, run_units
from bench.report import median, write_report
from bench.suites.peers import (
    GRID_MODELS,
    PEER,
    PEER_PROBLEMS,
    markdown_peers,
    peer_available,
    peer_row,
    plot_peers,
)
from mpc_grasp.planners import PLANNERS, make_planner

if TYPE_CHECKING:
    from mpc_grasp.models.base import WorldModel

__all__ = [
    "ProfileConfig",
    "SpeedConfig",
    "floor_ms",
    "markdown_profile",
    "markdown_speed",
    "plan_ms",
    "plot_speed",
    "run_profile",
    "run_speed",
    "sample_ms",
]

ENV_ID = "mpc_grasp/GridWorldWall-v0"
SPEED_HIDDEN = (256, 256)
PROFILE_HIDDEN = (256, 256, 256)


@dataclass(frozen=True)
class SpeedConfig:
    """Cold/warm ms per plan per planner and horizon, and ms per iteration per candidate count."""

    planners: tuple[str, ...] = tuple(sorted(PLANNERS))
    horizons: tuple[int, ...] = (25, 50, 100, 200)
    steps: int = 8
    """Control steps per timed episode (1 cold plan, the rest warm)."""
    candidates: tuple[int, ...] = (8, 64)
    iterations: int = 20
    device: str = "cpu"
    threads: int = 2
    out_dir: Path = REPO_ROOT / "results"
    resume: bool = False
    peer_problems: tuple[str, ...] = PEER_PROBLEMS
    """Closed-loop problems of the peer comparison (``cartpole``, ``wall``); empty: none."""
    peer_planners: tuple[str, ...] = ("grasp", "cem", "mppi")
    """``GraspMPC`` planners (at their defaults) beside the peer."""
    peer_samples: tuple[int, ...] = (256, 512, 1024)
    """pytorch_mppi's ``num_samples`` swept."""
    peer_lambdas: tuple[float, ...] = (0.1, 1.0)
    """pytorch_mppi's ``lambda_`` swept."""
    peer_noise_sigma: float = 0.25
    """pytorch_mppi's ``noise_sigma`` (the diagonal of the control noise covariance)."""
    peer_horizon: int = 50
    peer_episodes: int = 4
    """Fixed-seed episodes per controller (the same starts for all)."""
    peer_steps: int | None = None
    """Control steps per episode at most (None: the env's limit, 250 on cart-pole, 100 on the grid)."""
    peer_threads: int = 1
    """Torch threads of every peer-comparison row (one for everyone)."""
    peer_grid_model: str = "exact"
    """The grid-world model of the peer rows (:data:`bench.suites.peers.GRID_MODELS`)."""
    peer_grid_task: str = "across"
    """The grid world's task: ``across`` (start and goal in opposite rooms) or ``random``."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.peer_problems) - set(PEER_PROBLEMS))
        if unknown:
            raise ValueError(f"unknown peer problem(s) {unknown}; choose from {list(PEER_PROBLEMS)}")
        if self.peer_grid_model not in GRID_MODELS:
            raise ValueError(f"unknown peer grid model {self.peer_grid_model!r}; choose one of {list(GRID_MODELS)}")
        if self.peer_episodes < 1 or self.peer_horizon < 1 or self.peer_threads < 1:
            raise ValueError("peer_episodes, peer_horizon and peer_threads must be positive")
        if self.peer_steps is not None and self.peer_steps < 1:
            raise ValueError(f"peer_steps must be positive or None, got {self.peer_steps}")


@dataclass(frozen=True)
class ProfileConfig:
    """GRASP's ms per iteration vs the floor of one forward+backward, per horizon (and model mode)."""

    horizons: tuple[int, ...] = (25, 50, 80)
    candidates: int = 16
    iterations: int = 100
    repeats: int = 3
    threads: int = 1
    compile_model: bool = False
    """Also profile a ``torch.compile``'d model (slow first call)."""
    quick: bool = False
    out_dir: Path = REPO_ROOT / "results"
    resume: bool = False

    @property
    def modes(self) -> tuple[str, ...]:
        return ("eager", "compiled") if self.compile_model else ("eager",)


PROFILE_QUICK: dict[str, Any] = {"horizons": (25,), "iterations": 50, "repeats": 1}
"""``profile_grasp.py --quick``."""


# ----------------------------------------------------------------------------- the timing core


def sample_ms(function: Callable[[], Any], repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``function`` after one warm-up call (allocator, lazy init, compile)."""
    function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _mlp(hidden: Sequence[int], device: str = "cpu", compiled: bool = False, seed: int = 0) -> WorldModel:
    """An untrained MLP world model of the grid world (speed does not depend on the weights)."""
    from mpc_grasp.models.mlp import MLPWorldModel

    torch.manual_seed(seed)
    model = MLPWorldModel(2, 2, hidden_sizes=tuple(hidden)).to(device)
    model.eval()
    if not compiled:
        return model
    fast = torch.compile(model, dynamic=False)
    fast.state_dim, fast.action_dim = model.state_dim, model.action_dim  # type: ignore[attr-defined]
    return cast("WorldModel", fast)


def plan_ms(
    model: WorldModel,
    planner: str,
    horizon: int,
    iterations: int,
    repeats: int,
    statistic: Callable[[list[float]], float],
    device: str = "cpu",
    **options: Any,
) -> float:
    """``statistic`` of the ms of one full plan (``iterations`` iterations, no early stop) from 0 to 1."""
    planned = make_planner(planner, model, horizon, iterations=iterations, device=device, seed=0, **options)
    start, goal = torch.zeros(model.state_dim), torch.ones(model.state_dim)
    return statistic(sample_ms(lambda: planned.plan(start, goal), repeats))


def floor_ms(model: WorldModel, rows: int, repeats: int) -> float:
    """Median ms of one forward+backward of the model on ``rows`` transitions (gradient w.r.t. the action input)."""
    states = torch.randn(rows, model.state_dim)
    actions = torch.randn(rows, model.action_dim, requires_grad=True)

    def step() -> None:
        actions.grad = None
        model(states, actions).square().sum().backward()

    return statistics.median(sample_ms(step, repeats))


# ----------------------------------------------------------------------------- the measurements (work units)


def time_episode(planner: str, horizon: int, steps: int, device: str, seed: int = 0) -> dict[str, Any]:
    """One ``GraspMPC`` episode of ``steps`` control steps after one untimed plan: the first plan is cold, the rest
    warm-started."""
    from mpc_grasp.control.agent import GraspMPC
    from mpc_grasp.data import make_env

    env = make_env(ENV_ID)
    agent = GraspMPC(
        _mlp(SPEED_HIDDEN, device, seed=seed),
        planner,
        horizon=horizon,
        action_space=env.action_space,
        device=device,
        seed=seed,
    )
    obs, _ = env.reset(seed=seed)
    agent.predict(obs)  # untimed: the process's first autograd/allocator work would be billed to the cold plan
    agent.reset()
    agent.diagnostics.clear()
    started = time.perf_counter()
    for _ in range(steps):
        action, _ = agent.predict(obs)
        obs, *_ = env.step(action)
    total = time.perf_counter() - started
    warm = [d.wall_time for d in agent.diagnostics[1:]]
    warm_median = median(warm) if warm else None
    return {
        "planner": planner,
        "horizon": horizon,
        "device": device,
        "steps": steps,
        "cold_ms": 1000 * agent.diagnostics[0].wall_time,
        "warm_ms_median": 1000 * warm_median if warm_median is not None else None,
        "warm_iterations": agent.diagnostics[-1].iterations,
        "cold_iterations": agent.diagnostics[0].iterations,
        "episode_s": total,
    }


def per_iteration_ms(
    planner: str, horizon: int, candidates: int, device: str, iterations: int = 20, seed: int = 0
) -> dict[str, Any]:
    """ms per planner iteration at ``candidates`` candidates (samples for CEM/MPPI): the difference of the
    best of 2 plans of ``iterations + 1`` iterations and of 1 iteration, over ``iterations``. GRASP's syncs
    are amortised into its iterations. This is the paper's time-per-iteration-vs-H figure."""
    model = _mlp(SPEED_HIDDEN, device, seed=seed)
    options = {"num_candidates": candidates, **({"elites": max(2, candidates // 8)} if planner == "cem" else {})}
    longer = plan_ms(model, planner, horizon, iterations + 1, 2, min, device, **options)
    return {
        "planner": planner,
        "horizon": horizon,
        "candidates": candidates,
        "device": device,
        "ms_per_iteration": max(
            0.0, (longer - plan_ms(model, planner, horizon, 1, 2, min, device, **options)) / iterations
        ),
    }


def profile_row(mode: str, horizon: int, candidates: int, iterations: int, repeats: int) -> dict[str, Any]:
    """Floor, GRASP without / with the sync and GD, ms per iteration, at one horizon."""
    model = _mlp(PROFILE_HIDDEN, compiled=mode == "compiled")
    floor = floor_ms(model, candidates * horizon, repeats * 5)
    median_ = statistics.median
    no_sync = (
        plan_ms(model, "grasp", horizon, iterations, repeats, median_, num_candidates=candidates, sync_every=0)
        / iterations
    )
    with_sync = plan_ms(model, "grasp", horizon, iterations, repeats, median_, num_candidates=candidates) / iterations
    gd_iterations = max(10, iterations // 5)
    gd = plan_ms(model, "gd", horizon, gd_iterations, repeats, median_, num_candidates=candidates) / gd_iterations
    return {
        "model": mode,
        "horizon": horizon,
        "candidates": candidates,
        "rows_per_call": candidates * horizon,
        "floor_ms": floor,
        "grasp_no_sync_ms": no_sync,
        "grasp_ms": with_sync,
        "gd_ms": gd,
        "grasp_no_sync_over_floor": no_sync / floor,
        "grasp_over_floor": with_sync / floor,
        "gd_over_floor": gd / floor,
    }


def run_unit(task: Mapping[str, Any]) -> dict[str, Any]:
    """Worker of every speed-suite unit (``kind``: episode, iteration or profile)."""
    kind, args = task["kind"], {k: v for k, v in task.items() if k != "kind"}
    runners: dict[str, Callable[..., dict[str, Any]]] = {
        "episode": time_episode,
        "iteration": per_iteration_ms,
        "profile": profile_row,
        "peer": peer_row,
    }
    return runners[kind](**args)


def _run(units: list[WorkUnit], out_dir: Path, stem: str, resume: bool, threads: int, desc: str) -> list[Any]:
    torch.set_num_threads(threads)
    log = ResumeLog(Path(out_dir) / f"{stem}.partial.jsonl", resume=resume)
    return run_units(run_unit, units, log=log, desc=desc)


def _unit(kind: str, **task: Any) -> WorkUnit:
    return WorkUnit({"kind": kind, **task}, {}, {"kind": kind, **task})


def run_speed(config: SpeedConfig, command: str) -> dict[str, Any]:
    """Time every planner x horizon (cold/warm) and planner x candidates x horizon (per iteration); write ``speed.*``."""
    episodes = [
        _unit("episode", planner=p, horizon=h, steps=config.steps, device=config.device)
        for p in config.planners
        for h in config.horizons
    ]
    iterations = [
        _unit("iteration", planner=p, horizon=h, candidates=c, device=config.device, iterations=config.iterations)
        for p in config.planners
        for c in config.candidates
        for h in config.horizons
    ]
    peers, missing = _peer_units(config)
    results = _run(
        [*episodes, *iterations, *peers], config.out_dir, "speed", config.resume, config.threads, "speed units"
    )
    first_peer = len(episodes) + len(iterations)
    report = {
        "command": command,
        "device": config.device,
        "threads": config.threads,
        "planners": list(config.planners),
        "iterations": config.iterations,
        "rows": results[: len(episodes)],
        "iteration_rows": results[len(episodes) : first_peer],
        "peer_rows": results[first_peer:],
        "peer_settings": _peer_settings(config),
        "peer_missing": missing,
    }
    write_report(config.out_dir, "speed", report, markdown_speed, plot_speed)
    return report


def _peer_settings(config: SpeedConfig) -> dict[str, Any]:
    return {
        "problems": list(config.peer_problems),
        "planners": list(config.peer_planners),
        "samples": list(config.peer_samples),
        "lambdas": list(config.peer_lambdas),
        "noise_sigma": config.peer_noise_sigma,
        "horizon": config.peer_horizon,
        "episodes": config.peer_episodes,
        "steps": config.peer_steps,
        "threads": config.peer_threads,
        "grid_model": config.peer_grid_model,
        "grid_task": config.peer_grid_task,
    }


def _peer_units(config: SpeedConfig) -> tuple[list[WorkUnit], str | None]:
    """The peer comparison's units (GraspMPC rows, then the pytorch_mppi sweep, per problem), and why the
    pytorch_mppi rows are left out (None: they are not)."""
    missing = None
    if config.peer_problems and not peer_available():
        missing = "pytorch_mppi is not installed (pip install -e '.[peers]')"
        print(f"speed suite: {missing}; the GraspMPC rows of the peer comparison run alone", flush=True)
    common = {
        "horizon": config.peer_horizon,
        "episodes": config.peer_episodes,
        "max_steps": config.peer_steps,
        "device": config.device,
        "threads": config.peer_threads,
        "grid_model": config.peer_grid_model,
        "grid_task": config.peer_grid_task,
    }
    units = []
    for problem in config.peer_problems:
        units += [_unit("peer", problem=problem, planner=planner, **common) for planner in config.peer_planners]
        if missing is None:
            units += [
                _unit(
                    "peer",
                    problem=problem,
                    planner=PEER,
                    num_samples=samples,
                    lambda_=lambda_,
                    noise_sigma=config.peer_noise_sigma,
                    **common,
                )
                for samples in config.peer_samples
                for lambda_ in config.peer_lambdas
            ]
    return units, missing


def run_profile(config: ProfileConfig, command: str) -> dict[str, Any]:
    """Profile GRASP against its floor per horizon (and model mode); write ``profile_grasp[_quick].{json,md}``."""
    stem = "profile_grasp_quick" if config.quick else "profile_grasp"
    units = [
        _unit(
            "profile",
            mode=mode,
            horizon=h,
            candidates=config.candidates,
            iterations=config.iterations,
            repeats=config.repeats,
        )
        for mode in config.modes
        for h in config.horizons
    ]
    rows = _run(units, config.out_dir, stem, config.resume, config.threads, "profile units")
    meta = {
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "threads": config.threads,
        "platform": platform.platform(),
    }
    report = {"command": command, "meta": meta, "rows": rows}
    write_report(config.out_dir, stem, report, markdown_profile)
    return report


# ----------------------------------------------------------------------------- report


def markdown_speed(report: Mapping[str, Any]) -> str:
    lines = [
        "# Planner speed: GraspMPC on grid world `wall`, MLP 256x2, every planner at its defaults",
        "",
        f"Device {report['device']}, {report['threads']} torch thread(s).",
        "",
        "| planner | H | cold plan ms (iterations) | warm step ms, median (iterations) |",
        "|---|---|---|---|",
    ]
    for row in report["rows"]:
        warm = "—" if row["warm_ms_median"] is None else f"{row['warm_ms_median']:.1f} ({row['warm_iterations']})"
        lines.append(
            f"| {row['planner']} | {row['horizon']} | {row['cold_ms']:.0f} ({row['cold_iterations']}) | {warm} |"
        )
    sizes = sorted({row["candidates"] for row in report["iteration_rows"]})
    horizons = sorted({row["horizon"] for row in report["iteration_rows"]})
    n = report.get("iterations", 20)
    lines += [
        "",
        f"ms per iteration ({n + 1}-iteration plan minus 1-iteration plan, over {n}; columns: H):",
        "",
        "| planner | candidates | " + " | ".join(f"H={h}" for h in horizons) + " |",
        "|---|---|" + "---|" * len(horizons),
    ]
    for planner in report["planners"]:
        for size in sizes:
            cells = [
                next(
                    f"{r['ms_per_iteration']:.2f}"
                    for r in report["iteration_rows"]
                    if r["planner"] == planner and r["candidates"] == size and r["horizon"] == h
                )
                for h in horizons
            ]
            lines.append(f"| {planner} | {size} | " + " | ".join(cells) + " |")
    lines += markdown_peers(report)
    return "\n".join(lines) + "\n"


def plot_speed(report: Mapping[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import save_figure

    peer_problems = list(dict.fromkeys(row["problem"] for row in report.get("peer_rows") or []))
    if peer_problems:
        fig, grid = plt.subplots(2, 3, figsize=(16, 8.5))
        axes, peer_axes = grid[0], grid[1]
        plot_peers(report, peer_axes)
    else:
        fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for planner in report["planners"]:
        rows = [r for r in report["rows"] if r["planner"] == planner]
        horizons = [r["horizon"] for r in rows]
        axes[0].plot(horizons, [r["cold_ms"] for r in rows], "o-", label=planner)
        axes[1].plot(horizons, [r["warm_ms_median"] or np.nan for r in rows], "o-", label=planner)
    for axis, title in zip(axes, ("cold plan", "warm control step (median)")):
        axis.set(xlabel="horizon H", ylabel="ms", yscale="log", title=title)
    axes[1].axhline(50, color="grey", ls=":", label="50 ms")
    axes[1].legend(fontsize=8)
    size = max(row["candidates"] for row in report["iteration_rows"])
    for planner in report["planners"]:
        rows = [r for r in report["iteration_rows"] if r["planner"] == planner and r["candidates"] == size]
        axes[2].plot([r["horizon"] for r in rows], [r["ms_per_iteration"] for r in rows], "o-", label=planner)
    axes[2].set(
        xlabel="horizon H", ylabel="ms per iteration", title=f"time per iteration, {size} candidates", yscale="log"
    )
    axes[2].legend(fontsize=8)
    fig.suptitle(f"GraspMPC speed, MLP 256x2, {report['device']}, {report['threads']} thread(s)")
    return save_figure(fig, path)


def markdown_profile(report: Mapping[str, Any]) -> str:
    """The profile table (also renders ``results/profile_grasp.json`` of the earlier script, whose command is in ``meta``)."""
    meta, rows = report["meta"], report["rows"]
    source = "" if "command" in report else f" by `{meta['command']}` (commit `{meta['commit']}`)"
    lines = [
        "# GRASP iteration profile (CPU)",
        "",
        f"Generated {meta['generated']}{source}, torch {meta['torch']}, {meta['threads']} thread(s), MLP world model 256x3, "
        f"{rows[0]['candidates']} candidates.",
        "",
        "Floor = one forward+backward of the model on the same [B·T] batch. GRASP no-sync = the lifted iteration alone; "
        "GRASP = with the default shooting sync amortised.",
        "",
        "| model | H | rows/call | floor ms | GRASP no-sync ms/it (× floor) | GRASP ms/it (× floor) | GD ms/it (× floor) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['horizon']} | {row['rows_per_call']} | {row['floor_ms']:.2f} | "
            f"{row['grasp_no_sync_ms']:.2f} ({row['grasp_no_sync_over_floor']:.2f}×) | {row['grasp_ms']:.2f} ({row['grasp_over_floor']:.2f}×) | "
            f"{row['gd_ms']:.2f} ({row['gd_over_floor']:.2f}×) |"
        )
    return "\n".join(lines) + "\n"
