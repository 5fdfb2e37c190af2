"""Planning from pixels (issue 5): GRASP vs GRASP without detach vs CEM / MPPI / GD shooting in
the latent space of a learned :class:`~mpc_grasp.models.pixel.PixelWorldModel`, measured in the
REAL pixel grid world ``wall`` (``mpc_grasp/PixelGridWorldWall-v0``).

* The model (keypoint encoder, sprite decoder, latent MLP dynamics) is trained once from images
  and actions only and cached (``--model-path``, default ``checkpoints/pixel_wall.pt``, git-ignored).
* Tasks: fixed start/goal pairs, the same for every planner and horizon; ``random`` (start and
  goal anywhere in free space, >= 1.5 apart) and ``across`` (opposite rooms below the door: the
  straight line is blocked by the wall). The planner sees only the start image and the goal image.
* Open loop: plan once for horizon H from ``encode(start image)`` to ``encode(goal image)``, execute
  the actions in the real env; success = the agent comes within the env's goal radius (0.3) at
  any step <= H. Also recorded: success under the model (the rollout ends within the latent goal
  tolerance), wall time per plan, model calls and transitions, iterations.
* Closed loop (``--closed-loop-pairs``): ``GraspMPC`` episodes (replanning every
  ``--replan-every`` steps, warm started, at most ``--max-episode-steps`` steps) in the real env.
* The latent goal tolerance (early stop, success under the model) is calibrated from data: the
  local slope of latent distance vs true distance on rendered frames, times the goal radius.

Outputs (``--out-dir``, default ``results/``; ``--quick`` adds ``_quick`` to every name):
``pixel_bench.json`` (every record, summaries with Wilson 95% intervals, the command, commit,
model training info), ``pixel_bench.md`` (tables), ``pixel_bench.png`` (success vs horizon),
``pixel_virtual_states.png`` (GRASP's virtual states and model rollout decoded to images next to
the real frames, with and without the detach) and ``pixel_grad_norms.png`` (gradient norms w.r.t.
virtual states and actions over the iterations, with and without the detach).

    python experiments/pixel_bench.py --quick          # ~1 minute smoke run (tiny model, 2 pairs)
    python experiments/pixel_bench.py                  # default: 20 pairs per family, ~25 min on a shared 2-core CPU
    python experiments/pixel_bench.py --pairs 50       # the full >= 50-pair benchmark
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import mpc_grasp  # noqa: F401  (registers the env ids)
from mpc_grasp import GraspMPC, make_planner
from mpc_grasp.planners import PLANNERS, GraspConfig
from mpc_grasp.diagnostics import gradient_reshaping_histories, plan_filmstrip
from mpc_grasp.models.pixel import PixelWorldModel, load_or_train_pixel_world_model
from mpc_grasp.plotting import save_figure
from mpc_grasp.reporting import git_commit
from mpc_grasp.rl import wilson_interval
from planner_bench import feasible, shortest_path_length  # noqa: E402  (experiments/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]
ENV_ID = "mpc_grasp/PixelGridWorldWall-v0"
FAMILIES = ("random", "across")
LATENT_GRASP: dict[str, Any] = {"lr_states": 0.01, "noise_scale": 0.01, "init_state_noise": 0.01}
"""GRASP at its default budget, in latent units: the virtual-state step size and noise are in state units, and a latent
step (``model.delta_std`` ~0.05) is ~5x smaller than a grid-world step (0.25), so lr_states /
noise / initial noise are 0.01 instead of 0.1 / 0.05 / 0.05. Chosen on the first 8 ``random`` pairs
at H=30 (300 it., 16 cand.): 4/8 real successes vs 2/8 with the defaults, whose virtual states
leave the latent manifold (dynamics loss ~240 vs ~5 after 300 iterations; decoded, the agent fades)."""
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # name -> (planner, config); budgets: GRASP and GD at a few hundred gradient steps, CEM/MPPI at
    # the usual 30 x 256 samples
    "grasp": ("grasp", dict(LATENT_GRASP)),
    "grasp_no_detach": ("grasp", {**LATENT_GRASP, "detach_states": False}),
    "grasp_paper": ("grasp", {  # the published planner, as options (goal_tolerance is set per run)
        key: value for key, value in dataclasses.asdict(GraspConfig.paper(num_candidates=16, **LATENT_GRASP)).items() if key != "goal_tolerance"
    }),
    "cem": ("cem", {"iterations": 30, "num_candidates": 256, "elites": 32}),
    "mppi": ("mppi", {"iterations": 30, "num_candidates": 256}),
    "gd": ("gd", {"iterations": 150, "num_candidates": 8}),
}
TRAIN_KWARGS: dict[str, Any] = {"n_steps": 10_000, "episode_length": 50, "seed": 0}
"""The cached model: 10k env steps of correlated random actions, the package's default training."""
QUICK_TRAIN_KWARGS: dict[str, Any] = {
    "n_steps": 600, "episode_length": 40, "iterations": 60, "batch_size": 16, "dynamics_iterations": 150, "latent_dim": 8, "seed": 0,
}
QUICK_SCALE = 0.25
"""``--quick`` multiplies every planner's iterations by this."""


# --------------------------------------------------------------------------------- setup


def load_model(path: Path, quick: bool) -> tuple[PixelWorldModel, dict[str, Any]]:
    """Load the cached pixel model or train (and cache) it; returns the model and what it cost."""
    existed = path.exists()
    started = time.perf_counter()
    kwargs = QUICK_TRAIN_KWARGS if quick else TRAIN_KWARGS
    model = load_or_train_pixel_world_model(ENV_ID, path, progress=False, **kwargs)
    model.eval()
    info = model.training_info
    return model, {
        "path": str(path),
        "loaded_from_cache": existed,
        "seconds_this_run": time.perf_counter() - started,
        "requested_train_kwargs": kwargs,
        "iterations": info.get("iterations"),
        "dynamics_iterations": len(info.get("dynamics_history", [])) and info["dynamics_history"][-1]["iteration"] + 1,
        "collect_seconds": info.get("collect_seconds"),
        "train_seconds": info.get("train_seconds"),
        "dynamics_seconds": info.get("dynamics_seconds"),
        "total_training_seconds": info.get("total_seconds"),
        "transitions": info.get("transitions"),
        "latent_dim": model.latent_dim,
        "validation": info.get("validation"),
    }


@torch.no_grad()
def calibrate_tolerance(model: PixelWorldModel, env: gym.Env, seed: int, count: int = 400) -> dict[str, float]:
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


def make_tasks(env: gym.Env, family: str, pairs: int, seed: int) -> list[dict[str, Any]]:
    """Fixed start/goal pairs sampled by the env itself (``task`` = ``family``), with the length
    of the shortest collision-free path (L-infinity, for the feasibility bound)."""
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


def task_images(env: gym.Env, task: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reset the env onto ``task``; the first observation (start image + goal image) and info."""
    return env.reset(options={"start": task["start"], "goal": task["goal"]})


def execute(env: gym.Env, task: dict[str, Any], actions: np.ndarray) -> dict[str, Any]:
    """Run ``actions`` open loop in the real env from the task's start; frames and success."""
    obs, info = task_images(env, task)
    frames, positions, success_step = [obs["observation"]], [info["state"]], None
    for t, action in enumerate(actions):
        obs, _, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        frames.append(obs["observation"])
        positions.append(info["state"])
        if info["is_success"]:
            success_step = t + 1
            break
        if terminated or truncated:
            break
    goal = np.asarray(task["goal"])
    distances = np.linalg.norm(np.asarray(positions) - goal, axis=1)
    return {
        "frames": np.stack(frames),
        "positions": np.stack(positions),
        "success": success_step is not None,
        "success_step": success_step,
        "final_distance": float(distances[-1]),
        "min_distance": float(distances.min()),
    }


def _json_value(value: Any) -> Any:
    """numpy scalars -> Python numbers; anything else (a config object) -> its repr."""
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def budget(variant: str, quick: bool) -> tuple[str, dict[str, Any]]:
    kind, config = VARIANTS[variant]
    config = {"iterations": PLANNERS[kind].config_class.iterations, **config}  # the planner's default unless set
    if quick:
        config["iterations"] = max(2, int(round(config["iterations"] * QUICK_SCALE)))
    return kind, config


# --------------------------------------------------------------------------------- runs


def run_open_loop(
    model: PixelWorldModel,
    env: gym.Env,
    variant: str,
    horizon: int,
    tasks: Sequence[dict[str, Any]],
    latents: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]],
    tolerance: float,
    quick: bool,
    bar: Any,
) -> list[dict[str, Any]]:
    """One plan per task, executed open loop in the real env."""
    kind, config = budget(variant, quick)
    planner = make_planner(kind, model, horizon, action_space=env.action_space, goal_tolerance=tolerance, **config)
    records = []
    for task in tasks:
        start, goal = latents[(task["family"], task["index"])]
        result = planner.plan(start, goal)
        run = execute(env, task, result.actions.numpy())
        reached = result.info.get("reached_under_model")
        records.append(
            {
                "mode": "open_loop",
                "family": task["family"],
                "pair": task["index"],
                "variant": variant,
                "horizon": horizon,
                "success": run["success"],
                "success_step": run["success_step"],
                "feasible": feasible(task, horizon, float(env.unwrapped.goal_radius)),
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
        bar.update(1)
    return records


def run_closed_loop(
    model: PixelWorldModel,
    env: gym.Env,
    variant: str,
    horizon: int,
    tasks: Sequence[dict[str, Any]],
    tolerance: float,
    replan_every: int,
    max_steps: int,
    quick: bool,
    bar: Any,
) -> list[dict[str, Any]]:
    """GraspMPC episodes (the agent reads the goal image from the observation)."""
    kind, config = budget(variant, quick)
    agent = GraspMPC(model, planner=kind, horizon=horizon, action_space=env.action_space, replan_every=replan_every, goal_tolerance=tolerance, **config)
    records = []
    for task in tasks:
        agent.reset()
        agent.diagnostics.clear()
        obs, info = task_images(env, task)
        started = time.perf_counter()
        success_step, steps = None, 0
        for steps in range(1, max_steps + 1):
            action, _ = agent.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            if info["is_success"]:
                success_step = steps
                break
            if terminated or truncated:
                break
        plan_times = [d.wall_time for d in agent.diagnostics]
        records.append(
            {
                "mode": "closed_loop",
                "family": task["family"],
                "pair": task["index"],
                "variant": variant,
                "horizon": horizon,
                "success": success_step is not None,
                "success_step": success_step,
                "steps": steps,
                "final_distance": float(np.linalg.norm(info["state"] - np.asarray(task["goal"]))),
                "plans": len(plan_times),
                "wall_time": float(np.median(plan_times)),
                "episode_seconds": time.perf_counter() - started,
            }
        )
        bar.update(1)
    return records


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Success count, rate, Wilson 95% interval, medians of time / calls / iterations."""
    n = len(records)
    k = sum(r["success"] for r in records)
    lo, hi = wilson_interval(k, n)
    out: dict[str, Any] = {"n": n, "successes": k, "rate": k / n, "ci95": [lo, hi], "median_wall_time": float(np.median([r["wall_time"] for r in records]))}
    under = [r["success_under_model"] for r in records if r.get("success_under_model") is not None]
    if under:
        out["rate_under_model"] = float(np.mean(under))
    feasible_flags = [r["feasible"] for r in records if "feasible" in r]
    if feasible_flags:
        out["feasible_fraction"] = float(np.mean(feasible_flags))
    for key in ("model_calls", "model_transitions", "iterations", "plans", "episode_seconds"):
        values = [r[key] for r in records if key in r]
        if values:
            out[f"median_{key}"] = float(np.median(values))
    steps = [r["success_step"] for r in records if r["success"]]
    out["median_steps_to_success"] = float(np.median(steps)) if steps else None
    return out


def summaries(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = sorted({(r["mode"], r["family"], r["variant"], r["horizon"]) for r in records}, key=lambda k: (k[0], FAMILIES.index(k[1]), list(VARIANTS).index(k[2]), k[3]))
    rows = []
    for mode, family, variant, horizon in keys:
        group = [r for r in records if (r["mode"], r["family"], r["variant"], r["horizon"]) == (mode, family, variant, horizon)]
        rows.append({"mode": mode, "family": family, "variant": variant, "horizon": horizon, **summarize(group)})
    return rows


# --------------------------------------------------------------------------------- figures and report


def plot_success(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    panels = sorted({(r["mode"], r["family"]) for r in rows}, key=lambda p: (p[0] != "open_loop", FAMILIES.index(p[1])))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (mode, family) in zip(axes[0], panels):
        for variant in VARIANTS:
            sel = sorted((r for r in rows if (r["mode"], r["family"], r["variant"]) == (mode, family, variant)), key=lambda r: r["horizon"])
            if not sel:
                continue
            h = np.array([r["horizon"] for r in sel])
            rate = np.array([r["rate"] for r in sel])
            err = np.array([[r["rate"] - r["ci95"][0], r["ci95"][1] - r["rate"]] for r in sel]).T
            ax.errorbar(h, rate, yerr=err, marker="o", capsize=3, label=variant, color=f"C{list(VARIANTS).index(variant)}")
        n = max(r["n"] for r in rows if (r["mode"], r["family"]) == (mode, family))
        ax.set_title(f"{mode.replace('_', ' ')}, {family} tasks (n={n})")
        ax.set_xlabel("horizon H")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("success in the real env (95% CI)")
    axes[0, 0].legend(fontsize=8)
    return save_figure(fig, path)


def plot_grad_norms(histories: dict[str, dict[str, np.ndarray]], meta: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    labels = {"detached": "GRASP (detach_states=True)", "full": "no detach (full gradients)"}
    for name, hist in histories.items():
        its = np.arange(1, len(hist["state_grad_norm"]) + 1)
        axes[0].plot(its, hist["state_grad_norm"], label=labels[name])
        axes[1].plot(its, hist["action_grad_norm"], label=labels[name])
        axes[2].plot(its, hist["dynamics_loss"], label=f"{labels[name]}: dynamics")
        axes[2].plot(its, hist["goal_loss"], "--", label=f"{labels[name]}: goal term")
    for ax, title in zip(axes, ("‖∇ virtual states‖ per candidate", "‖∇ actions‖ per candidate", "lifted loss terms")):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=7)
    fig.suptitle(
        f"GRASP in the pixel model's latent space, H={meta['horizon']}, mean over {meta['problems']} {meta['family']} tasks x "
        f"{meta['num_candidates']} candidates (sync every {meta['sync_every']} it.)",
        fontsize=10,
    )
    return save_figure(fig, path)


def plot_filmstrips(panels: Sequence[tuple[str, list[tuple[str, np.ndarray]]]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    rows = [(f"{title}\n{label}", image) for title, strip_rows in panels for label, image in strip_rows]
    width = max(image.shape[1] for _, image in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(width / 60, 1.25 * len(rows)), squeeze=False)
    for ax, (label, image) in zip(axes[:, 0], rows):
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return save_figure(fig, path)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Planning from pixels: pixel grid world `wall` (issue 5)",
        "",
        f"Command: `{report['command']}` (commit {report['commit']}, {report['finished']}, {report['total_seconds'] / 60:.1f} min, "
        f"torch threads {report['threads']}).",
        "",
        f"Model: `PixelWorldModel` (latent {report['model']['latent_dim']}), trained once from images and actions "
        f"({report['model']['transitions']} transitions) in {report['model']['total_training_seconds']:.0f} s "
        f"(collection {report['model']['collect_seconds'] or 0:.0f} s, image phase {report['model']['train_seconds']:.0f} s, "
        f"dynamics phase {report['model']['dynamics_seconds']:.0f} s); cached at `{report['model']['path']}`. Held-out latent/true "
        f"distance Spearman {report['model']['validation'].get('latent_spearman', float('nan')):.4f}.",
        f"Latent goal tolerance {report['tolerance']['tolerance']:.4f} (slope {report['tolerance']['slope']:.4f} latent units per "
        f"world unit x goal radius {report['tolerance']['goal_radius']}).",
        "",
        "Success = the REAL env agent came within the goal radius at some step <= H (open loop) or within the episode "
        "(closed loop). Cells: success k/n (Wilson 95% interval) | success under the model | median wall time per plan | "
        "median model calls.",
        "",
    ]
    for mode in ("open_loop", "closed_loop"):
        rows = [r for r in report["summaries"] if r["mode"] == mode]
        if not rows:
            continue
        for family in FAMILIES:
            sel = [r for r in rows if r["family"] == family]
            if not sel:
                continue
            horizons = sorted({r["horizon"] for r in sel})
            lines += [f"## {mode.replace('_', ' ')}, {family} tasks", "", "| planner | " + " | ".join(f"H={h}" for h in horizons) + " |", "|---|" + "---|" * len(horizons)]
            if mode == "open_loop":
                bound = [next((x["feasible_fraction"] for x in sel if x["horizon"] == h and "feasible_fraction" in x), None) for h in horizons]
                lines.append("| *feasible at H (upper bound)* | " + " | ".join("—" if b is None else f"{100 * b:.0f}%" for b in bound) + " |")
            for variant in VARIANTS:
                cells = []
                for h in horizons:
                    r = next((x for x in sel if x["variant"] == variant and x["horizon"] == h), None)
                    if r is None:
                        cells.append("—")
                        continue
                    text = f"{r['successes']}/{r['n']} ({100 * r['ci95'][0]:.0f}–{100 * r['ci95'][1]:.0f}%)"
                    if "rate_under_model" in r:
                        text += f" \\| model {100 * r['rate_under_model']:.0f}%"
                    text += f" \\| {r['median_wall_time']:.2f} s"
                    if "median_model_calls" in r:
                        text += f" \\| {r['median_model_calls']:.0f} calls"
                    if mode == "closed_loop":
                        text += f" \\| {r['median_plans']:.0f} plans/ep."
                    cells.append(text)
                if any(c != "—" for c in cells):
                    lines.append(f"| {variant} | " + " | ".join(cells) + " |")
            lines.append("")
    g = report["grad_norms"]
    lines += [
        "## Gradient reshaping (pixel_grad_norms.png)",
        "",
        f"GRASP at H={g['horizon']} on {g['problems']} {g['family']} tasks, {g['iterations']} iterations, with and without "
        "the stop-gradient on the model's state input. Median over iterations of the mean per-candidate gradient norm:",
        "",
        "| variant | ‖∇ states‖ | ‖∇ actions‖ | final latent distance (median) |",
        "|---|---|---|---|",
    ]
    for name, stats in g["summary"].items():
        lines.append(f"| {name} | {stats['state_grad_norm']:.3g} | {stats['action_grad_norm']:.3g} | {stats['final_distance']:.3f} |")
    lines += ["", "Budgets: " + ", ".join(f"{v}: {VARIANTS[v][0]} {VARIANTS[v][1]}" for v in report["variants"]) + "."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--pairs", type=int, default=None, help="start/goal pairs per task family (default 20; --quick 3)")
    parser.add_argument("--horizons", type=int, nargs="+", default=None, help="random tasks; default 15 30 50 (--quick 15 30)")
    parser.add_argument(
        "--across-horizons", type=int, nargs="+", default=None,
        help="across tasks; default 30 50 (--quick 30): the shortest path around the wall is >= 23 steps, so H=15 is infeasible",
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--closed-loop-pairs", type=int, default=None, help="pairs per family for GraspMPC episodes (default 6; --quick 1; 0 = skip)")
    parser.add_argument("--closed-loop-variants", nargs="+", default=["grasp", "cem"], choices=list(VARIANTS))
    parser.add_argument("--closed-loop-horizon", type=int, default=30)
    parser.add_argument("--replan-every", type=int, default=10)
    parser.add_argument("--max-episode-steps", type=int, default=None, help="closed-loop episode length (default 100; --quick 20)")
    parser.add_argument("--grad-problems", type=int, default=None, help="tasks for the gradient-norm diagnostic (default 8; --quick 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task sampler")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, 2 pairs, H 15 (across 30), quarter iterations")
    parser.add_argument("--model-path", type=Path, default=None, help="default checkpoints/pixel_wall.pt (--quick: pixel_wall_quick.pt)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "results")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.pairs = args.pairs if args.pairs is not None else (2 if args.quick else 20)
    args.horizons = args.horizons or ([15] if args.quick else [15, 30, 50])
    args.max_episode_steps = args.max_episode_steps or (20 if args.quick else 100)
    args.grad_problems = args.grad_problems or (2 if args.quick else 8)
    args.across_horizons = args.across_horizons or ([30] if args.quick else [30, 50])
    args.closed_loop_pairs = args.closed_loop_pairs if args.closed_loop_pairs is not None else (1 if args.quick else 6)
    args.model_path = args.model_path or REPO / "checkpoints" / ("pixel_wall_quick.pt" if args.quick else "pixel_wall.pt")
    for name in ("pairs", "threads", "replan_every", "max_episode_steps", "grad_problems", "closed_loop_horizon"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.closed_loop_pairs < 0:
        parser.error("--closed-loop-pairs must be >= 0")
    if any(h < 2 for h in [*args.horizons, *args.across_horizons]):
        parser.error("--horizons must be >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    suffix = "_quick" if args.quick else ""
    model, model_info = load_model(args.model_path, args.quick)
    print(f"model: {'loaded' if model_info['loaded_from_cache'] else 'trained'} {args.model_path} (training took {model_info['total_training_seconds']:.0f} s)", flush=True)
    env = gym.make(ENV_ID, max_episode_steps=max(args.max_episode_steps, *args.horizons, *args.across_horizons) + 1)
    tolerance = calibrate_tolerance(model, env, args.seed)
    print(f"latent goal tolerance {tolerance['tolerance']:.4f}", flush=True)

    tasks = {family: make_tasks(env, family, args.pairs, args.seed) for family in args.families}
    latents: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.no_grad():
        for family_tasks in tasks.values():
            for task in family_tasks:
                obs, _ = task_images(env, task)
                latents[(task["family"], task["index"])] = (model.encode(obs["observation"]), model.encode(obs["desired_goal"]))

    records: list[dict[str, Any]] = []
    horizons = {"random": args.horizons, "across": args.across_horizons}
    total = sum(len(args.variants) * len(horizons[f]) * args.pairs for f in args.families)
    total += len(args.closed_loop_variants) * args.closed_loop_pairs * len(args.families)
    bar = tqdm(total=total, desc="pixel bench", disable=args.no_progress)
    for family in args.families:
        for horizon in horizons[family]:
            for variant in args.variants:
                records += run_open_loop(model, env, variant, horizon, tasks[family], latents, tolerance["tolerance"], args.quick, bar)
    if args.closed_loop_pairs:
        for family in args.families:
            for variant in args.closed_loop_variants:
                records += run_closed_loop(
                    model, env, variant, args.closed_loop_horizon, tasks[family][: args.closed_loop_pairs], tolerance["tolerance"],
                    args.replan_every, args.max_episode_steps, args.quick, bar,
                )
    bar.close()

    # gradient-norm diagnostic: the same problems, with and without the detach
    grad_family = args.families[0]
    family_horizons = horizons[grad_family]
    grad_horizon = 30 if 30 in family_horizons else family_horizons[len(family_horizons) // 2]
    grad_tasks = tasks[grad_family][: args.grad_problems]
    kind, grasp_config = budget("grasp", args.quick)
    grad_options = {k: v for k, v in grasp_config.items() if k not in ("iterations", "detach_states")}
    starts = torch.stack([latents[(grad_family, t["index"])][0] for t in grad_tasks])
    goals = torch.stack([latents[(grad_family, t["index"])][1] for t in grad_tasks])
    histories = gradient_reshaping_histories(model, starts, goals, grad_horizon, iterations=grasp_config["iterations"], **grad_options)
    from mpc_grasp.planners.grasp import GraspConfig

    grad_meta = {
        "family": grad_family, "horizon": grad_horizon, "problems": len(grad_tasks), "iterations": grasp_config["iterations"],
        "num_candidates": grasp_config.get("num_candidates", GraspConfig.num_candidates), "sync_every": make_planner("grasp", model, 2, **grasp_config).sync_every,
    }
    grad_summary = {
        name: {"state_grad_norm": float(np.median(h["state_grad_norm"])), "action_grad_norm": float(np.median(h["action_grad_norm"])), "final_distance": float(np.median(h["final_distance"]))}
        for name, h in histories.items()
    }
    plot_grad_norms(histories, grad_meta, args.out_dir / f"pixel_grad_norms{suffix}.png")

    # virtual states decoded next to the real frames, for the first random task GRASP solved at H=30
    film_horizon = grad_horizon
    solved = [r for r in records if r["mode"] == "open_loop" and r["variant"] == "grasp" and r["horizon"] == film_horizon and r["family"] == grad_family and r["success"]]
    film_task = tasks[grad_family][solved[0]["pair"] if solved else 0]
    panels = []
    for variant in ("grasp", "grasp_no_detach"):
        kind, config = budget(variant, args.quick)
        planner = make_planner(kind, model, film_horizon, action_space=env.action_space, goal_tolerance=tolerance["tolerance"], **config)
        start, goal = latents[(grad_family, film_task["index"])]
        plan = planner.plan(start, goal)
        run = execute(env, film_task, plan.actions.numpy())
        outcome = f"real env: {'reached the goal at step ' + str(run['success_step']) if run['success'] else 'missed, final distance %.2f' % run['final_distance']}"
        panels.append((f"{variant} ({outcome})", plan_filmstrip(model, plan, goal, run["frames"], every=max(1, film_horizon // 10))))
    plot_filmstrips(panels, args.out_dir / f"pixel_virtual_states{suffix}.png")

    report = {
        "command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name if argv is None else "pixel_bench.py", *(sys.argv[1:] if argv is None else argv)]),
        "commit": git_commit(),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "threads": args.threads,
        "total_seconds": time.perf_counter() - started,
        "env_id": ENV_ID,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "variants": {v: {"planner": VARIANTS[v][0], "config": budget(v, args.quick)[1]} for v in args.variants},
        "model": model_info,
        "tolerance": tolerance,
        "tasks": tasks,
        "summaries": summaries(records),
        "records": records,
        "grad_norms": {**grad_meta, "summary": grad_summary, "histories": {n: {k: v.tolist() for k, v in h.items()} for n, h in histories.items()}},
        "filmstrip_task": film_task,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"pixel_bench{suffix}.json").write_text(json.dumps(report, indent=1, default=_json_value))
    (args.out_dir / f"pixel_bench{suffix}.md").write_text(markdown(report))
    plot_success(report["summaries"], args.out_dir / f"pixel_bench{suffix}.png")
    print(markdown(report))
    env.close()
    return report


if __name__ == "__main__":
    main()
