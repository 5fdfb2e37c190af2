"""Planner benchmark on the analytic test beds (DESIGN.md §7): GRASP vs CEM vs MPPI vs GD shooting.

Two task families, open-loop, one plan per (planner, horizon, start/goal pair):

* ``wall``   — ``PointMassWalls.from_layout("wall")`` (the differentiable copy of grid world ``wall``),
  start/goal pairs from ``sample_task("wall", rng)``: opposite rooms below the door, the straight
  line is blocked, so the task is non-greedy. The shortest collision-free path (around the wall,
  through the door) is computed exactly for every pair, which gives the fraction of pairs that are
  *feasible* at horizon H (an upper bound on any planner's success).
* ``linear`` — ``LinearSystem.point()`` (s' = s + 0.25 a), goal at distance 0.6 · H · 0.25 from the
  start in a random direction: always reachable, no obstacle.

Success = the plan's rollout comes within ``goal_tolerance`` (0.3) of the goal at any step. On the
analytic test bed the model rollout *is* the ground-truth dynamics. For ``wall`` the plan's actions
are additionally executed open-loop in the exact grid-world physics (``GridWorldEnv.transition``)
and that success is reported too (``success_env``).

Also measured: GRASP's and GD shooting's time per iteration at long horizons (fixed iterations,
no early stopping, same number of candidates).

Outputs (``--out-dir``, default ``results/``): ``planner_bench.json`` (every number, the command,
commit, budgets), ``planner_bench.md`` (tables), ``planner_bench.png`` (success and time vs H) and
``planner_bench_example.png`` (one ``wall`` task: GRASP's virtual states and rollout, GD's and
CEM's rollouts).

    python experiments/planner_bench.py                 # full benchmark (50 pairs, H 10/25/50/80)
    python experiments/planner_bench.py --quick         # ~1 minute smoke run (6 pairs, H 10/50, half budgets)
    python experiments/planner_bench.py --pairs 100 --grasp-iterations 600 --set grasp.lr_actions=0.1
    python experiments/planner_bench.py --backend ray --workers 2   # the same plans as Ray tasks (local Ray)
    python experiments/planner_bench.py --backend ray --address auto  # ... on a running Ray cluster

Every plan is an independent task (planner x family x horizon x chunk of start/goal pairs, see
``BenchTask``); a plan's planner seed is its pair index, so the records are identical whatever
backend, chunking or order runs them (timings aside).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime as _dt
import heapq
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mpc_grasp.envs.grid_world import GridWorldEnv, map_size, sample_task, segment_hits_wall, wall_boxes
from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments
from mpc_grasp.planners import PLANNERS, make_planner
from mpc_grasp.plotting import plot_plans_on_layout, save_figure
from mpc_grasp.rl import wilson_interval
from mpc_grasp.reporting import file_hashes, git_commit
from mpc_grasp.testbeds import LinearSystem, PointMassWalls

REPO = Path(__file__).resolve().parents[1]
PLANNER_ORDER = ("grasp", "cem", "mppi", "gd")
FAMILIES = ("wall", "linear")
STEP_SIZE = 0.25
"""Displacement per unit action of both test beds (and of the grid world)."""
AGENT_RADIUS = 0.1
LINEAR_REACH_FRACTION = 0.6
"""Linear tasks put the goal at this fraction of the maximal reach H · STEP_SIZE."""

DEFAULT_BUDGETS: dict[str, dict[str, Any]] = {
    # roughly equal compute per plan at H = 50-80 for the gradient planners (GRASP's cost is dominated
    # by its periodic shooting sync); CEM/MPPI at the literature-standard 30 x 256 samples
    "grasp": {"iterations": 400, "num_candidates": 16},
    "gd": {"iterations": 100, "num_candidates": 8},
    "cem": {"iterations": 30, "num_candidates": 256, "elites": 32},
    "mppi": {"iterations": 30, "num_candidates": 256},
}
QUICK_SCALE = 0.5
"""``--quick`` multiplies every planner's iterations by this."""

_BUDGET_FLAGS = {  # CLI flag -> (planner, config field)
    "grasp_iterations": ("grasp", "iterations"),
    "grasp_candidates": ("grasp", "num_candidates"),
    "gd_iterations": ("gd", "iterations"),
    "gd_candidates": ("gd", "num_candidates"),
    "cem_iterations": ("cem", "iterations"),
    "cem_population": ("cem", "num_candidates"),
    "cem_elites": ("cem", "elites"),
    "mppi_iterations": ("mppi", "iterations"),
    "mppi_samples": ("mppi", "num_candidates"),
}


# ----------------------------------------------------------------------------- statistics


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


# ----------------------------------------------------------------------------- tasks


def _segment_blocked(p: np.ndarray, q: np.ndarray, boxes: np.ndarray) -> bool:
    """Does segment p->q pass through the open interior of any box (slab test)?"""
    d = q - p
    for box in boxes:
        lo_t, hi_t = 0.0, 1.0
        hit = True
        for axis in (0, 1):
            lo, hi = box[axis], box[axis + 2]
            if abs(d[axis]) < 1e-12:
                if not lo < p[axis] < hi:
                    hit = False
                    break
                continue
            a, b = (lo - p[axis]) / d[axis], (hi - p[axis]) / d[axis]
            lo_t, hi_t = max(lo_t, min(a, b)), min(hi_t, max(a, b))
        if hit and (hi_t - lo_t) * float(np.linalg.norm(d)) > 1e-9:
            return True
    return False


def shortest_path_length(
    layout: str, start: Sequence[float], goal: Sequence[float], agent_radius: float = AGENT_RADIUS, metric: str = "euclidean"
) -> float:
    """Length of the shortest collision-free path of the agent's centre, in the ``"euclidean"`` or
    ``"chebyshev"`` (L-infinity) metric: a visibility graph over the corners of the wall boxes inflated
    by ``agent_radius`` (in any norm some shortest path among polygonal obstacles bends only there).

    With per-axis action bounds |a_i| <= 1 a step moves at most ``STEP_SIZE`` in L-infinity, so the
    Chebyshev length / STEP_SIZE is a lower bound on the steps any plan needs."""
    order = {"euclidean": 2, "chebyshev": np.inf}[metric]
    boxes = wall_boxes(layout, inflate=agent_radius)
    width, height = map_size(layout)
    eps = 1e-6
    nodes = [np.asarray(start, dtype=float), np.asarray(goal, dtype=float)]
    for xmin, ymin, xmax, ymax in boxes:
        for x, y in ((xmin - eps, ymin - eps), (xmin - eps, ymax + eps), (xmax + eps, ymin - eps), (xmax + eps, ymax + eps)):
            if agent_radius <= x <= width - agent_radius and agent_radius <= y <= height - agent_radius:
                inside = (boxes[:, 0] < x) & (x < boxes[:, 2]) & (boxes[:, 1] < y) & (y < boxes[:, 3])
                if not inside.any():
                    nodes.append(np.array([x, y]))
    count = len(nodes)
    dist = [math.inf] * count
    dist[0] = 0.0
    queue = [(0.0, 0)]
    while queue:
        d, i = heapq.heappop(queue)
        if i == 1:
            return d
        if d > dist[i]:
            continue
        for j in range(count):
            if j == i or _segment_blocked(nodes[i], nodes[j], boxes):
                continue
            nd = d + float(np.linalg.norm(nodes[j] - nodes[i], ord=order))
            if nd < dist[j]:
                dist[j] = nd
                heapq.heappush(queue, (nd, j))
    return math.inf


def wall_tasks(pairs: int, seed: int) -> list[dict[str, Any]]:
    """``pairs`` non-greedy start/goal pairs of grid world ``wall`` (the same for every horizon)."""
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(pairs):
        start, goal = sample_task("wall", rng)
        tasks.append(
            {
                "start": start.tolist(),
                "goal": goal.tolist(),
                "straight_distance": float(np.linalg.norm(goal - start)),
                "path_length": shortest_path_length("wall", start, goal),
                "path_length_chebyshev": shortest_path_length("wall", start, goal, metric="chebyshev"),
                "straight_line_blocked": segment_hits_wall("wall", start, goal),
            }
        )
    return tasks


def linear_tasks(pairs: int, horizon: int, seed: int) -> list[dict[str, Any]]:
    """Start uniform in [-2, 2]², goal at 0.6 · H · 0.25 in a random direction (same starts and
    directions for every horizon; only the distance scales with H)."""
    rng = np.random.default_rng(seed + 1)
    distance = LINEAR_REACH_FRACTION * horizon * STEP_SIZE
    tasks = []
    for _ in range(pairs):
        start = rng.uniform(-2.0, 2.0, size=2)
        angle = rng.uniform(0.0, 2 * math.pi)
        goal = start + distance * np.array([math.cos(angle), math.sin(angle)])
        tasks.append({"start": start.tolist(), "goal": goal.tolist(), "straight_distance": distance, "path_length": distance})
    return tasks


def feasible(task: dict[str, Any], horizon: int, tolerance: float) -> bool:
    """Necessary condition for any length-``horizon`` plan to reach the goal region.

    A step moves at most ``STEP_SIZE`` in the L-infinity norm and the goal disc has L-infinity
    radius <= ``tolerance``, so a plan can only succeed if the shortest L-infinity path length minus
    ``tolerance`` is at most H · STEP_SIZE. The fraction of feasible pairs bounds every planner's
    success rate from above.
    """
    length = task.get("path_length_chebyshev", task["path_length"])
    return length - tolerance <= horizon * STEP_SIZE + 1e-9


# ----------------------------------------------------------------------------- running planners


def build_model(family: str) -> torch.nn.Module:
    if family == "wall":
        return PointMassWalls.from_layout("wall", agent_radius=AGENT_RADIUS, step_size=STEP_SIZE)
    if family == "linear":
        return LinearSystem.point(step_size=STEP_SIZE)
    raise ValueError(f"unknown task family {family!r}; choose from {FAMILIES}")


def execute_in_env(env: GridWorldEnv, start: Sequence[float], actions: np.ndarray) -> np.ndarray:
    """Open-loop execution of ``actions`` [T, 2] in the exact grid-world physics -> positions [T+1, 2]."""
    positions = [np.asarray(start, dtype=np.float64)]
    for action in actions:
        positions.append(env.transition(positions[-1], action))
    return np.stack(positions)


def run_plan(
    name: str,
    model: torch.nn.Module,
    horizon: int,
    task: dict[str, Any],
    seed: int,
    budget: dict[str, Any],
    goal_tolerance: float | None,
    env: GridWorldEnv | None = None,
) -> tuple[dict[str, Any], Any]:
    """Plan once; return a JSON-able record and the PlanResult."""
    planner = make_planner(name, model, horizon, seed=seed, goal_tolerance=goal_tolerance, **budget)
    goal = torch.tensor(task["goal"], dtype=torch.float32)
    cpu_started = time.process_time()
    result = planner.plan(task["start"], task["goal"])
    cpu_time = time.process_time() - cpu_started
    distances = (result.states - goal).norm(dim=-1)
    tolerance = goal_tolerance if goal_tolerance is not None else 0.3
    info = result.info
    record: dict[str, Any] = {
        "seed": seed,
        "success": bool(float(distances.min()) <= tolerance),
        "min_distance": float(distances.min()),
        "final_distance": float(distances[-1]),
        "first_success_step": int(torch.nonzero(distances <= tolerance)[0, 0]) if bool((distances <= tolerance).any()) else None,
        "wall_time": float(info["wall_time"]),
        "cpu_time": float(cpu_time),
        "model_calls": int(info["model_calls"]),
        "model_transitions": int(info["model_transitions"]),
        "iterations": int(info["iterations"]),
        "early_stopped": bool(info["early_stopped"]),
        "cost": float(result.cost),
    }
    if isinstance(model, PointMassWalls):
        # judged by the grid world's own wall geometry (not the test bed's boxes): > 0.05 inside an inflated wall
        inside = wall_boxes("wall", inflate=AGENT_RADIUS - 0.05)
        xy = result.states.numpy()[:, None, :]
        record["rollout_entered_wall"] = bool(
            ((inside[None, :, 0] < xy[..., 0]) & (xy[..., 0] < inside[None, :, 2]) & (inside[None, :, 1] < xy[..., 1]) & (xy[..., 1] < inside[None, :, 3])).any()
        )
    if env is not None:
        positions = execute_in_env(env, task["start"], result.actions.numpy().astype(np.float64))
        env_distance = np.linalg.norm(positions - np.asarray(task["goal"]), axis=-1)
        record["success_env"] = bool(env_distance.min() <= tolerance)
        record["min_distance_env"] = float(env_distance.min())
        record["model_env_gap"] = float(np.abs(positions - result.states.numpy()).max())
        # one-step disagreement from the *model's* states: large values mark steps where the test bed's
        # smooth push-out lets the plan do something the grid world forbids (e.g. cut a wall corner)
        model_states = result.states.numpy().astype(np.float64)
        env_steps = env.transition(model_states[:-1], result.actions.numpy().astype(np.float64))
        record["max_one_step_gap"] = float(np.abs(env_steps - model_states[1:]).max())
        record["success_clean"] = bool(record["success"] and record["max_one_step_gap"] <= 0.05 and not record["rollout_entered_wall"])
    return record, result


@dataclasses.dataclass(frozen=True)
class BenchTask:
    """One independent unit of benchmark work: one planner on one family and horizon, a chunk of
    start/goal pairs. Picklable; its result depends only on its fields (planner seed = pair index)."""

    family: str
    horizon: int
    planner: str
    pairs: tuple[int, ...]
    """Pair indices (the planner seeds)."""
    tasks: tuple[dict[str, Any], ...]
    """The start/goal dicts of those pairs."""
    budget: dict[str, Any]
    goal_tolerance: float | None
    example: bool = False
    """Also return the plans drawn in the example figure (wall, example horizon)."""


def run_bench_task(task: BenchTask) -> list[dict[str, Any]]:
    """Plan every pair of ``task``; one checkpoint item per plan (``family/h/planner/pair/record``)."""
    model = build_model(task.family)
    env = GridWorldEnv(layout="wall", step_size=STEP_SIZE, agent_radius=AGENT_RADIUS, goal_radius=task.goal_tolerance) if task.family == "wall" else None
    items = []
    for pair, pair_task in zip(task.pairs, task.tasks):
        record, result = run_plan(task.planner, model, task.horizon, pair_task, pair, task.budget, task.goal_tolerance, env=env)
        item: dict[str, Any] = {"family": task.family, "h": str(task.horizon), "planner": task.planner, "pair": pair, "record": record}
        if task.example and env is not None:
            item["example"] = {
                "states": result.states.numpy().tolist(),
                "virtual": None if result.virtual_states is None else result.virtual_states.numpy().tolist(),
                "success": record["success"],
                "min_distance": record["min_distance"],
                "executed": execute_in_env(env, pair_task["start"], result.actions.numpy().astype(np.float64)).tolist(),
            }
        items.append(item)
    return items


def bench_tasks(
    families: Sequence[str],
    horizons: Sequence[int],
    planners: Sequence[str],
    task_sets: dict[tuple[str, int], list[dict[str, Any]]],
    budgets: dict[str, dict[str, Any]],
    goal_tolerance: float | None,
    example_horizon: int,
    chunk: int,
    skip: set[tuple[str, str, str, int]] = frozenset(),  # type: ignore[assignment]
) -> list[BenchTask]:
    """Split the benchmark into ``BenchTask`` s of at most ``chunk`` pairs, leaving out ``skip``
    (plans already in the checkpoint)."""
    out = []
    for family in families:
        for h in horizons:
            for name in planners:
                todo = [pair for pair in range(len(task_sets[family, h])) if (family, str(h), name, pair) not in skip]
                for first in range(0, len(todo), chunk):
                    pairs = tuple(todo[first : first + chunk])
                    out.append(
                        BenchTask(
                            family=family, horizon=h, planner=name, pairs=pairs,
                            tasks=tuple(task_sets[family, h][pair] for pair in pairs), budget=budgets[name],
                            goal_tolerance=goal_tolerance,
                            example=family == "wall" and h == example_horizon and name in ("grasp", "gd", "cem"),
                        )
                    )  # fmt: skip
    return out


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate with its 95% Wilson interval, medians of time / calls / iterations."""
    n = len(records)
    wins = sum(r["success"] for r in records)
    low, high = wilson_interval(wins, n)
    summary: dict[str, Any] = {
        "n": n,
        "successes": wins,
        "success_rate": wins / n if n else 0.0,
        "success_ci95": [low, high],
        "median_wall_time": _median([r["wall_time"] for r in records]),
        "median_cpu_time": _median([r["cpu_time"] for r in records]),
        "median_wall_time_success": _median([r["wall_time"] for r in records if r["success"]]),
        "median_model_calls": _median([r["model_calls"] for r in records]),
        "median_model_transitions": _median([r["model_transitions"] for r in records]),
        "median_iterations": _median([r["iterations"] for r in records]),
        "early_stop_rate": sum(r["early_stopped"] for r in records) / n if n else 0.0,
        "median_min_distance": _median([r["min_distance"] for r in records]),
    }
    if records and "success_env" in records[0]:
        env_wins = sum(r["success_env"] for r in records)
        summary["success_env_rate"] = env_wins / n
        summary["success_env_ci95"] = list(wilson_interval(env_wins, n))
        summary["max_model_env_gap"] = max(r["model_env_gap"] for r in records)
        summary["plans_with_one_step_gap_over_0.05"] = sum(r["max_one_step_gap"] > 0.05 for r in records)
        clean_wins = sum(r["success_clean"] for r in records)
        summary["success_clean_rate"] = clean_wins / n
        summary["success_clean_ci95"] = list(wilson_interval(clean_wins, n))
    if records and "rollout_entered_wall" in records[0]:
        summary["rollouts_entering_walls"] = sum(r["rollout_entered_wall"] for r in records)
    return summary


def time_per_iteration(
    horizons: Sequence[int], iterations: int, candidates: int, repeats: int, seed: int, grasp_options: dict[str, Any]
) -> dict[str, Any]:
    """ms / iteration of GRASP (with its default sync, and with sync off) vs GD shooting.

    Same ``wall`` task, same number of candidates, fixed iterations, early stopping off; the
    median over ``repeats`` plans. Wall time includes the final candidate selection rollout.
    """
    model = build_model("wall")
    start, goal = sample_task("wall", np.random.default_rng(seed + 7))
    grasp_options = {k: v for k, v in grasp_options.items() if k not in ("iterations", "num_candidates")}
    variants = {
        "grasp": ("grasp", grasp_options),
        "grasp_no_sync": ("grasp", {**grasp_options, "sync_every": 0}),
        "gd": ("gd", {}),
    }
    out: dict[str, Any] = {
        "task": {"start": start.tolist(), "goal": goal.tolist()},
        "iterations": iterations,
        "num_candidates": candidates,
        "repeats": repeats,
        "goal_tolerance": None,
        "horizons": {},
    }
    for horizon in horizons:
        row: dict[str, Any] = {}
        for label, (name, options) in variants.items():
            wall, cpu, calls, transitions = [], [], [], []
            for repeat in range(repeats):
                planner = make_planner(
                    name, model, horizon, seed=repeat, goal_tolerance=None, iterations=iterations, num_candidates=candidates, **options
                )
                cpu_started = time.process_time()
                result = planner.plan(start, goal)
                cpu.append(time.process_time() - cpu_started)
                wall.append(result.info["wall_time"])
                calls.append(result.info["model_calls"])
                transitions.append(result.info["model_transitions"])
            row[label] = {
                "ms_per_iteration": 1000 * float(np.median(wall)) / iterations,
                "cpu_ms_per_iteration": 1000 * float(np.median(cpu)) / iterations,
                "model_calls_per_iteration": float(np.median(calls)) / iterations,
                "model_transitions_per_iteration": float(np.median(transitions)) / iterations,
                "wall_times": wall,
            }
        row["ratio_grasp_over_gd"] = row["grasp"]["ms_per_iteration"] / row["gd"]["ms_per_iteration"]
        row["ratio_grasp_no_sync_over_gd"] = row["grasp_no_sync"]["ms_per_iteration"] / row["gd"]["ms_per_iteration"]
        row["cpu_ratio_grasp_over_gd"] = row["grasp"]["cpu_ms_per_iteration"] / row["gd"]["cpu_ms_per_iteration"]
        out["horizons"][str(horizon)] = row
    return out


# ----------------------------------------------------------------------------- outputs


def source_hashes() -> dict[str, str]:
    """SHA-256 of the code the numbers depend on (the reproducibility anchor while nothing is committed)."""
    files = sorted((REPO / "mpc_grasp" / "planners").glob("*.py")) + [REPO / "mpc_grasp" / "testbeds.py", REPO / "envs" / "grid_world.py", Path(__file__).resolve()]
    return file_hashes(files, root=REPO)


def _cell(summary: dict[str, Any]) -> str:
    low, high = summary["success_ci95"]
    time_s = summary["median_wall_time"]
    return f"{100 * summary['success_rate']:.0f}% [{100 * low:.0f}, {100 * high:.0f}] / {time_s:.2f} s"


def markdown_report(report: dict[str, Any]) -> str:
    horizons = report["config"]["horizons"]
    planners = report["config"]["planners"]
    lines = [
        "# Planner benchmark (analytic test beds)",
        "",
        f"Generated {report['timestamp']} by `{report['command']}` (commit `{report['git_commit'] or 'none'}`).",
        "",
        "Cells: success rate [95% Wilson interval] / median wall time per plan. Success = the plan's rollout",
        f"comes within {report['config']['goal_tolerance']} of the goal at any step (on the analytic test bed the",
        "rollout is the true dynamics). Early stopping at the goal tolerance for every planner. "
        f"{report['config']['pairs']} start/goal pairs per cell, the same pairs for every planner.",
        "",
    ]
    for family in report["config"]["families"]:
        title = {
            "wall": "`wall`: PointMassWalls copy of grid world `wall`, non-greedy start/goal across the wall",
            "linear": "`linear`: LinearSystem.point(), goal at 0.6·H·0.25 in a random direction",
        }[family]
        lines += [f"## {title}", "", "| planner | " + " | ".join(f"H={h}" for h in horizons) + " |", "|---|" + "---|" * len(horizons)]
        for name in planners:
            cells = [_cell(report["results"][family][str(h)][name]) for h in horizons]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if family == "wall":
            feasible_cells = [f"{100 * report['tasks']['wall']['feasible_fraction'][str(h)]:.0f}%" for h in horizons]
            lines.append("| *feasible pairs (upper bound)* | " + " | ".join(feasible_cells) + " |")
        lines.append("")
        lines += ["Median model calls / model transitions (rows) / iterations per plan:", ""]
        lines += ["| planner | " + " | ".join(f"H={h}" for h in horizons) + " |", "|---|" + "---|" * len(horizons)]
        for name in planners:
            cells = []
            for h in horizons:
                s = report["results"][family][str(h)][name]
                cells.append(f"{s['median_model_calls']:.0f} / {s['median_model_transitions']:.0f} / {s['median_iterations']:.0f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        if family == "wall":
            lines += [
                "Fidelity checks against the grid world. Cells: success of the same actions executed open-loop in the exact",
                "grid-world physics (`GridWorldEnv.transition`) / *clean* success on the test bed (every step agrees with the",
                "grid world to 0.05, no wall entered):",
                "",
            ]
            lines += ["| planner | " + " | ".join(f"H={h}" for h in horizons) + " |", "|---|" + "---|" * len(horizons)]
            for name in planners:
                cells = []
                for h in horizons:
                    s = report["results"][family][str(h)][name]
                    clean = f" / {100 * s['success_clean_rate']:.0f}%" if "success_clean_rate" in s else ""
                    cells.append(f"{100 * s['success_env_rate']:.0f}%{clean}")
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
            key = "plans_with_one_step_gap_over_0.05"
            if key in report["results"][family][str(horizons[0])][planners[0]]:
                lines += ["Plans with a one-step test-bed / grid-world disagreement > 0.05 (e.g. a cut wall corner), count:", ""]
                lines += ["| planner | " + " | ".join(f"H={h}" for h in horizons) + " |", "|---|" + "---|" * len(horizons)]
                for name in planners:
                    cells = [str(report["results"][family][str(h)][name][key]) for h in horizons]
                    lines.append(f"| {name} | " + " | ".join(cells) + " |")
                lines.append("")
    timing = report.get("time_per_iteration")
    if timing:
        lines += [
            f"## Time per iteration, GRASP vs GD shooting (`wall`, {timing['num_candidates']} candidates, "
            f"{timing['iterations']} iterations, no early stopping, median of {timing['repeats']})",
            "",
            "| H | GRASP ms/it | GRASP (no sync) ms/it | GD ms/it | GRASP / GD | GRASP no-sync / GD |",
            "|---|---|---|---|---|---|",
        ]
        for h, row in timing["horizons"].items():
            lines.append(
                f"| {h} | {row['grasp']['ms_per_iteration']:.2f} | {row['grasp_no_sync']['ms_per_iteration']:.2f} | "
                f"{row['gd']['ms_per_iteration']:.2f} | {row['ratio_grasp_over_gd']:.2f} | {row['ratio_grasp_no_sync_over_gd']:.2f} |"
            )
        lines.append("")
    lines += ["## Budgets", "", "```json", json.dumps(report["budgets"], indent=1), "```", ""]
    if report["config"].get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in report["config"]["notes"]] + [""]
    return "\n".join(lines)


COLORS = {"grasp": "tab:orange", "cem": "tab:blue", "mppi": "tab:purple", "gd": "tab:red"}


def plot_report(report: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    families = report["config"]["families"]
    horizons = report["config"]["horizons"]
    fig, axes = plt.subplots(2, len(families), figsize=(5.2 * len(families), 7.5), squeeze=False)
    for col, family in enumerate(families):
        ax_s, ax_t = axes[0][col], axes[1][col]
        planners = report["config"]["planners"]
        spread = 0.012 * (max(horizons) - min(horizons) or 10)  # small x offsets so overlapping curves stay visible
        for index, name in enumerate(planners):
            summaries = [report["results"][family][str(h)][name] for h in horizons]
            rate = np.array([s["success_rate"] for s in summaries])
            ci = np.array([s["success_ci95"] for s in summaries])
            ax_s.errorbar(
                np.array(horizons) + (index - (len(planners) - 1) / 2) * spread, 100 * rate, yerr=100 * np.abs(np.stack([rate - ci[:, 0], ci[:, 1] - rate])), marker="o", capsize=3,
                color=COLORS.get(name), label=name,
            )
            if family == "wall" and "success_clean_rate" in summaries[0]:
                ax_s.plot(horizons, [100 * s["success_clean_rate"] for s in summaries], ":", marker="x", color=COLORS.get(name), lw=1)
            ax_t.plot(horizons, [s["median_wall_time"] for s in summaries], marker="o", color=COLORS.get(name), label=name)
        if family == "wall":
            fraction = [100 * report["tasks"]["wall"]["feasible_fraction"][str(h)] for h in horizons]
            ax_s.plot(horizons, fraction, "k--", lw=1, label="feasible (upper bound)")
            ax_s.plot([], [], "k:", marker="x", lw=1, label="clean success (no test-bed artefact)")
        ax_s.set_title(f"{family}: success (95% Wilson CI)")
        ax_s.set_xlabel("horizon H")
        ax_s.set_ylabel("success %")
        ax_s.set_ylim(-3, 103)
        ax_s.set_xticks(horizons)
        ax_s.legend(fontsize=8)
        ax_t.set_yscale("log")
        ax_t.set_title(f"{family}: median wall time per plan")
        ax_t.set_xlabel("horizon H")
        ax_t.set_ylabel("seconds (log)")
        ax_t.set_xticks(horizons)
        ax_t.grid(True, which="both", alpha=0.3)
        ax_t.legend(fontsize=8)
    fig.suptitle(f"Planner benchmark, {report['config']['pairs']} pairs per cell")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_example(example: dict[str, Any], path: Path) -> Path:
    """GRASP (virtual states + rollout), GD and CEM rollouts for one ``wall`` task."""
    panels = []
    for name in ("grasp", "gd", "cem"):
        if name not in example["plans"]:
            continue
        plan = example["plans"][name]
        panels.append(
            {
                "title": f"{name.upper()} H={example['horizon']}: {'success' if plan['success'] else 'fail'} "
                f"(min dist {plan['min_distance']:.2f})",
                "start": example["start"],
                "goal": example["goal"],
                "planned": plan["states"],
                "virtual": plan.get("virtual"),
                "executed": plan.get("executed"),
            }
        )
    return plot_plans_on_layout(
        "wall", panels, path,
        suptitle=f"wall task #{example['pair']}: plans on the analytic test bed (blue) and the same actions executed open-loop in the grid world (red)",
    )


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--pairs", type=int, default=None, help="start/goal pairs per family (default 50, --quick 6)")
    parser.add_argument("--horizons", type=int, nargs="+", default=None, help="default 10 25 50 80 (--quick 10 50)")
    parser.add_argument("--planners", nargs="+", default=list(PLANNER_ORDER), choices=sorted(PLANNERS))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--goal-tolerance", type=float, default=0.3)
    parser.add_argument("--check-every", type=int, default=None, help="early-stop check period for every planner (default: the package default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the task sampler; planner seed = pair index")
    parser.add_argument("--quick", action="store_true", help="6 pairs, H 10/50, half iterations, short timing run")
    for flag, (planner, key) in _BUDGET_FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", type=int, default=None, help=f"{planner} {key} (default {DEFAULT_BUDGETS[planner][key]})")
    parser.add_argument(
        "--set", action="append", default=[], metavar="PLANNER.FIELD=VALUE",
        help="any other planner config field, e.g. --set grasp.lr_actions=0.1 (repeatable)",
    )
    parser.add_argument("--timing-horizons", type=int, nargs="*", default=None, help="default 50 80 (--quick 50; empty list: skip)")
    parser.add_argument("--timing-iterations", type=int, default=None, help="default 100 (--quick 50)")
    parser.add_argument("--timing-candidates", type=int, default=16)
    parser.add_argument("--timing-repeats", type=int, default=None, help="default 3 (--quick 1)")
    parser.add_argument("--example-horizon", type=int, default=None, help="H of the example figure (default: the largest horizon)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "results")
    parser.add_argument("--prefix", default="planner_bench", help="output file name prefix")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--resume", action="store_true", help="reuse the plans of an interrupted run with identical settings and code")
    parser.add_argument("--chunk", type=int, default=1, help="start/goal pairs per task (larger: less scheduling overhead, coarser checkpoints)")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    if args.chunk < 1:
        parser.error(f"--chunk must be >= 1, got {args.chunk}")
    try:
        args.parallel = ParallelOptions.from_args(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def resolve_budgets(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    budgets = {name: dict(DEFAULT_BUDGETS[name]) for name in args.planners}
    if args.check_every is not None:
        for budget in budgets.values():
            budget["check_every"] = args.check_every
    if args.quick:
        for budget in budgets.values():
            budget["iterations"] = max(1, int(round(budget["iterations"] * QUICK_SCALE)))
    for flag, (planner, key) in _BUDGET_FLAGS.items():
        value = getattr(args, flag)
        if value is not None and planner in budgets:
            budgets[planner][key] = value
    for item in args.set:
        target, _, raw = item.partition("=")
        planner, _, key = target.partition(".")
        if not raw or not key or planner not in PLANNERS:
            raise SystemExit(f"--set expects PLANNER.FIELD=VALUE with PLANNER in {sorted(PLANNERS)}, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if planner in budgets:
            budgets[planner][key] = value
    for name, budget in budgets.items():  # fail fast on unknown / invalid fields
        make_planner(name, build_model("linear"), 2, **budget)
    return budgets


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = args.pairs if args.pairs is not None else (6 if args.quick else 50)
    horizons = sorted(args.horizons or ([10, 50] if args.quick else [10, 25, 50, 80]))
    timing_horizons = args.timing_horizons if args.timing_horizons is not None else ([50] if args.quick else [50, 80])
    timing_iterations = args.timing_iterations or (50 if args.quick else 100)
    timing_repeats = args.timing_repeats or (1 if args.quick else 3)
    planners = [name for name in PLANNER_ORDER if name in args.planners]
    budgets = resolve_budgets(args)
    example_horizon = args.example_horizon or max(horizons)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    hashes_at_start = source_hashes()  # the code imported now is the code that produced the numbers

    tasks_wall = wall_tasks(pairs, args.seed) if "wall" in args.families else []
    task_sets = {
        (family, h): (tasks_wall if family == "wall" else linear_tasks(pairs, h, args.seed)) for family in args.families for h in horizons
    }
    records: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        family: {str(h): {name: [] for name in planners} for h in horizons} for family in args.families
    }
    example_plans: dict[int, dict[str, Any]] = {}  # pair -> planner -> plan (wall, example horizon)

    # checkpoint: every finished plan is appended to a JSON-lines file; --resume reuses the lines written by
    # a run with the same settings and the same source code (a killed run continues where it stopped)
    checkpoint = out_dir / f"{args.prefix}.partial.jsonl"
    fingerprint = json.dumps(
        {"pairs": pairs, "seed": args.seed, "goal_tolerance": args.goal_tolerance, "budgets": budgets, "example_horizon": example_horizon, "source": hashes_at_start},
        sort_keys=True,
    )
    done: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    if args.resume and checkpoint.is_file():
        lines = checkpoint.read_text().splitlines()
        if lines and json.loads(lines[0]).get("fingerprint") == fingerprint:
            for line in lines[1:]:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a line cut off by the kill
                    continue
                done[item["family"], item["h"], item["planner"], item["pair"]] = item
    with checkpoint.open("w") as handle:  # rewrite: header + the reused lines
        handle.write(json.dumps({"fingerprint": fingerprint}) + "\n")
        for item in done.values():
            handle.write(json.dumps(item) + "\n")
    resumed = len(done)

    def finished(_: int, items: list[dict[str, Any]]) -> None:  # in this process, as each task's plans arrive
        with checkpoint.open("a") as handle:
            for item in items:
                handle.write(json.dumps(item) + "\n")
                done[item["family"], item["h"], item["planner"], item["pair"]] = item

    work = bench_tasks(args.families, horizons, planners, task_sets, budgets, args.goal_tolerance, example_horizon, args.chunk, skip=set(done))
    args.parallel.run(run_bench_task, work, progress=not args.no_progress, desc="planner bench", on_result=finished)
    for family in args.families:  # assemble in pair order, whatever order the tasks finished in
        for h in horizons:
            for name in planners:
                for pair in range(len(task_sets[family, h])):
                    item = done[family, str(h), name, pair]
                    records[family][str(h)][name].append(item["record"])
                    if "example" in item:
                        example_plans.setdefault(pair, {})[name] = item["example"]
    bench_time = time.perf_counter() - started

    timing = None
    if timing_horizons:
        grasp_extra = {k: v for k, v in budgets.get("grasp", DEFAULT_BUDGETS["grasp"]).items()}
        timing = time_per_iteration(timing_horizons, timing_iterations, args.timing_candidates, timing_repeats, args.seed, grasp_extra)

    results = {
        family: {h: {name: summarize(recs) for name, recs in by_planner.items()} for h, by_planner in by_h.items()}
        for family, by_h in records.items()
    }
    tasks_info: dict[str, Any] = {}
    if "wall" in args.families:
        tasks_info["wall"] = {
            "pairs": tasks_wall,
            "feasible_fraction": {str(h): float(np.mean([feasible(t, h, args.goal_tolerance) for t in tasks_wall])) for h in horizons},
            "median_path_length": float(np.median([t["path_length"] for t in tasks_wall])),
            "min_horizon_lower_bound": [math.ceil(max(0.0, t["path_length_chebyshev"] - args.goal_tolerance) / STEP_SIZE - 1e-9) for t in tasks_wall],
        }
    if "linear" in args.families:
        tasks_info["linear"] = {str(h): task_sets["linear", h] for h in horizons}

    example = None
    if "wall" in args.families and example_plans:
        # first pair where GRASP succeeded (else pair 0): the figure shows what a solved plan looks like
        chosen = next((p for p in sorted(example_plans) if example_plans[p].get("grasp", {}).get("success")), min(example_plans))
        example = {
            "pair": chosen,
            "horizon": example_horizon,
            "start": tasks_wall[chosen]["start"],
            "goal": tasks_wall[chosen]["goal"],
            "plans": example_plans[chosen],
        }

    notes = [
        "wall: feasible = shortest collision-free L-infinity path (visibility graph around the walls inflated by the "
        "agent radius) minus the goal tolerance is at most H*0.25 (a necessary condition, per-axis |a|<=1); no planner "
        "can exceed this fraction.",
        "wall: success_env = the same action sequence executed open-loop in the exact grid-world physics; "
        "max_model_env_gap = largest position difference between the test-bed rollout and that execution; "
        "max_one_step_gap = largest one-step difference between the test bed and the grid world from the same "
        "(model rollout) state and action (> 0.05: the plan uses a test-bed artefact such as cutting a wall corner).",
        "wall: success_clean = success on the test bed by a plan whose every step agrees with the grid-world physics "
        "to 0.05 (no test-bed artefact used) and whose rollout never enters a grid-world wall.",
        "Early stopping (every check_every iterations, see effective_configs) tests the rollout's *final* state; success counts any step, "
        "so a plan can succeed without early-stopping.",
        "Timings are wall-clock on a shared 2-core CPU with torch.set_num_threads(1): compare within a run, "
        "not across machines; cpu_time (process time) is recorded beside it.",
    ]
    if args.quick:
        notes.append(f"--quick: every planner's iterations scaled by {QUICK_SCALE}.")
    changed = sorted(name for name, digest in source_hashes().items() if hashes_at_start.get(name) != digest)
    if changed:
        notes.append(f"WARNING: these source files changed on disk during the run (numbers use the versions at start): {changed}")
    report: dict[str, Any] = {
        "command": "python experiments/planner_bench.py" + (" " + shlex.join(argv) if argv else ""),
        "git_commit": git_commit(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(), "threads": args.threads},
        "config": {
            "pairs": pairs,
            "horizons": horizons,
            "planners": planners,
            "families": list(args.families),
            "goal_tolerance": args.goal_tolerance,
            "check_every": args.check_every,
            "seed": args.seed,
            "quick": bool(args.quick),
            "step_size": STEP_SIZE,
            "linear_reach_fraction": LINEAR_REACH_FRACTION,
            "example_horizon": example_horizon,
            "notes": notes,
        },
        "budgets": budgets,
        "effective_configs": {
            name: dataclasses.asdict(make_planner(name, build_model("linear"), 2, goal_tolerance=args.goal_tolerance, **budget).config)
            for name, budget in budgets.items()
        },
        "source_sha256": hashes_at_start,
        "results": results,
        "time_per_iteration": timing,
        "tasks": tasks_info,
        "records": records,
        "example": example,
        "benchmark_seconds": bench_time,
        "plans_resumed_from_checkpoint": resumed,
        "execution": {"backend": args.parallel.backend, "address": args.parallel.address, "workers": args.parallel.num_workers, "chunk": args.chunk, "tasks": len(work)},
        "total_seconds": time.perf_counter() - started,
    }
    prefix = args.prefix
    (out_dir / f"{prefix}.json").write_text(json.dumps(report, indent=1))
    (out_dir / f"{prefix}.md").write_text(markdown_report(report))
    plot_report(report, out_dir / f"{prefix}.png")
    if example is not None:
        plot_example(example, out_dir / f"{prefix}_example.png")
    report["total_seconds"] = time.perf_counter() - started
    (out_dir / f"{prefix}.json").write_text(json.dumps(report, indent=1))
    checkpoint.unlink(missing_ok=True)  # everything is in the JSON now
    if not args.no_progress:
        print(markdown_report(report))
        print(f"wrote {out_dir / prefix}.{{json,md,png}} in {report['total_seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
