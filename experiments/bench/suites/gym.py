"""The planner gym as a suite of the benchmark engine: every planner, at its defaults, on the problems
with exact models and known answers (:mod:`bench.suites.problems`).

One work unit per (problem, planner) cell plans the problem's seeded instances open loop, one after
another, until a time cap is spent, and judges each plan on the exact model. :func:`run_gym` runs the
cells through :func:`~bench.engine.run_units` (in-process or on Ray, a resume log under the
output folder) and writes ``planner_gym.{json,md,png}`` with :func:`~bench.report.write_report`.
The plan loop and its summary (:func:`plan_instances`, :func:`summarize`) are shared with the tuning
suite (:mod:`bench.suites.tuning`), the scale-out study (:mod:`bench.suites.scale_out`) and, with
:func:`judge`, the robustness suite (:mod:`bench.suites.robustness`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.engine import ResumeLog, WorkUnit, run_units
from bench.report import median, success_rate, write_report
from bench.suites.problems import PROBLEMS, PlanningProblem, make_problem
from mpc_grasp.parallel import ParallelOptions
from mpc_grasp.planners import GraspConfig, make_planner

__all__ = [
    "GYM_PLANNERS",
    "GymSuite",
    "judge",
    "markdown",
    "plan_instances",
    "plot",
    "problem_view",
    "run_cell",
    "run_gym",
    "summarize",
]

GYM_PLANNERS: dict[str, tuple[str, dict[str, Any]]] = {
    "grasp": ("grasp", {}),
    "grasp_paper": ("grasp", {"config": GraspConfig.paper()}),
    "cem": ("cem", {}),
    "mppi": ("mppi", {}),
    "gd": ("gd", {}),
}
"""Row label -> (planner, options): each planner at its defaults, and GRASP with the published settings."""

STEM = "planner_gym"


@dataclass(frozen=True)
class GymSuite:
    """Which cells the gym runs and how many instances each plans."""

    problems: tuple[str, ...] = tuple(PROBLEMS)
    planners: tuple[str, ...] = tuple(GYM_PLANNERS)
    instances: int = 32
    """Seeded (start, goal) instances per problem (the same for every planner)."""
    seed: int = 0
    """Seed of the instance sampler."""
    time_cap: float | None = 240.0
    """Seconds of planning per cell after which it stops early (fewer instances); None = no cap."""
    threads: int = 1
    """torch threads (recorded in the report; set by the caller and in every Ray task)."""

    def __post_init__(self) -> None:
        for name in self.problems:
            if name not in PROBLEMS:
                raise ValueError(f"unknown problem {name!r}; choose from {sorted(PROBLEMS)}")
        for label in self.planners:
            if label not in GYM_PLANNERS:
                raise ValueError(f"unknown gym planner {label!r}; choose from {list(GYM_PLANNERS)}")
        if int(self.instances) != self.instances or self.instances < 1:
            raise ValueError(f"instances must be a positive integer, got {self.instances!r}")
        if self.time_cap is not None and not self.time_cap > 0:
            raise ValueError(f"time_cap must be positive or None, got {self.time_cap!r}")

    def units(self) -> list[WorkUnit]:
        """One unit per (problem, planner) cell; the instance count, seed and time cap are its settings."""
        settings = {"instances": int(self.instances), "seed": int(self.seed), "time_cap": self.time_cap}
        return [
            WorkUnit({"problem": problem, "planner": label}, settings)
            for problem in self.problems
            for label in self.planners
        ]


# ----------------------------------------------------------------------------- plans and their summary


def problem_view(
    name: str, instances: int, seed: int, indices: Sequence[int] | None = None, horizon: int | None = None
) -> PlanningProblem:
    """Problem ``name`` with ``instances`` seeded instances, keeping only ``indices`` (all if None) and
    planning over ``horizon`` steps (the problem's own if None)."""
    problem = make_problem(name, instances, seed)
    if indices is not None:
        problem = replace(problem, instances=tuple(problem.instances[index] for index in indices))
    return problem if horizon is None else replace(problem, horizon=int(horizon))


def judge(problem: PlanningProblem, start: np.ndarray, goal: np.ndarray, states: np.ndarray) -> dict[str, Any]:
    """A plan's rollout [T+1, S] on the exact model judged: ``success`` (the problem's own test),
    ``closest_distance`` (in the problem's metric) and ``reachable`` (None where unknown)."""
    return {
        "success": bool(problem.solved(states, goal)),
        "closest_distance": problem.closest_distance(states, goal),
        "reachable": problem.reachable(start, goal),
    }


def plan_instances(
    problem: PlanningProblem, planner: str, options: Mapping[str, Any], time_cap: float | None = None
) -> list[dict[str, Any]]:
    """Plan every instance with one planner (seeded by its config, so a plan depends only on its
    instance), until ``time_cap`` seconds are spent; one record per plan, judged on the exact model."""
    runner = make_planner(planner, problem.model, problem.horizon, **problem.planner_kwargs, **options)
    records, spent = [], 0.0
    for start, goal in problem.instances:
        started = time.perf_counter()
        result = runner.plan(start, goal)
        spent += time.perf_counter() - started
        records.append(
            {
                **judge(problem, start, goal, result.states.numpy()),
                "wall_time": float(result.info["wall_time"]),
                "model_calls": int(result.info["model_calls"]),
                "model_transitions": int(result.info["model_transitions"]),
                "iterations": int(result.info["iterations"]),
            }
        )
        if time_cap is not None and spent > time_cap:
            break
    return records


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Success rate with its Wilson 95% interval, medians of time, model calls/transitions, iterations and
    closest distance; with ``reachable``, how many instances some plan of length H can solve at all."""
    rate, interval, count = success_rate(record["success"] for record in records)
    summary = {
        "instances": count,
        "successes": int(sum(record["success"] for record in records)),
        "success_rate": rate,
        "ci95": interval,
        **{
            f"median_{key}": median(record[key] for record in records)
            for key in ("model_calls", "model_transitions", "iterations", "closest_distance")
        },
        "median_time_s": median(record["wall_time"] for record in records),
    }
    if any(record["reachable"] is not None for record in records):
        summary["reachable"] = int(sum(bool(record["reachable"]) for record in records))
    return summary


def run_cell(task: Mapping[str, Any]) -> dict[str, Any]:
    """Worker of one gym cell (``task``: problem, planner, instances, seed, time_cap): the report row."""
    problem = make_problem(task["problem"], task["instances"], task["seed"])
    name, options = GYM_PLANNERS[task["planner"]]
    row = summarize(plan_instances(problem, name, options, task["time_cap"]))
    return {
        "problem": task["problem"],
        "planner": task["planner"],
        **row,
        "horizon": problem.horizon,
        "description": problem.description,
    }


def run_gym(
    suite: GymSuite,
    out_dir: str | Path,
    *,
    command: str,
    resume: bool = False,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every cell of ``suite`` (reusing those in ``out_dir/planner_gym.partial.jsonl`` with ``resume``),
    write ``planner_gym.{json,md,png}`` under ``out_dir`` and return the report."""
    log = ResumeLog(Path(out_dir) / f"{STEM}.partial.jsonl", resume=resume)
    rows = run_units(run_cell, suite.units(), log=log, parallel=parallel, progress=progress, desc="planner gym")
    report = {
        "command": command,
        "threads": suite.threads,
        "problems": list(suite.problems),
        "planners": list(suite.planners),
        "rows": rows,
        "settings": {"instances": suite.instances, "seed": suite.seed, "time_cap": suite.time_cap},
        "backend": (parallel or ParallelOptions()).backend,
        "units_reused_from_log": log.reused,
    }
    write_report(out_dir, STEM, report, markdown, plot)
    return report


# ----------------------------------------------------------------------------- report


def _row(report: Mapping[str, Any], problem: str, planner: str) -> Mapping[str, Any]:
    return next(row for row in report["rows"] if row["problem"] == problem and row["planner"] == planner)


def markdown(report: Mapping[str, Any]) -> str:
    """The gym table: success % (successes/instances) and median seconds per plan, problems x planners."""
    planners = report["planners"]
    lines = [
        "# Planner gym (exact models, open loop, each planner at its defaults)",
        "",
        f"{report['threads']} torch thread(s).",
        "",
        "Cell: success % (successes/instances) · median seconds per plan. Fewer instances than asked = the cell hit its time cap.",
        "",
        "| problem | " + " | ".join(planners) + " |",
        "|---|" + "---|" * len(planners),
    ]
    for problem in report["problems"]:
        cells = []
        for planner in planners:
            row = _row(report, problem, planner)
            cells.append(
                f"{100 * row['success_rate']:.0f}% ({row['successes']}/{row['instances']}) · {row['median_time_s']:.2f} s"
            )
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    lines += ["", "Problems:", ""]
    for problem in report["problems"]:
        first = _row(report, problem, planners[0])
        bound = (
            f" Reachable within H (upper bound on success): {first['reachable']}/{first['instances']}."
            if "reachable" in first
            else ""
        )
        lines.append(f"- `{problem}`: {first['description']}.{bound}")
    return "\n".join(lines) + "\n"


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Success (95% interval) and median seconds per plan, grouped by problem."""
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import save_figure

    problems, planners = report["problems"], report["planners"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.8 / len(planners)
    for index, planner in enumerate(planners):
        rows = [_row(report, problem, planner) for problem in problems]
        x = np.arange(len(problems)) + index * width
        rate = np.array([row["success_rate"] for row in rows])
        err = np.array([[row["success_rate"] - row["ci95"][0], row["ci95"][1] - row["success_rate"]] for row in rows]).T
        axes[0].bar(x, 100 * rate, width, yerr=100 * err, label=planner, capsize=2)
        axes[1].bar(x, [row["median_time_s"] for row in rows], width, label=planner)
    for axis, label in zip(axes, ("success % (95% interval)", "median seconds per plan (log)")):
        axis.set_xticks(np.arange(len(problems)) + 0.4 - width / 2, problems, rotation=30, ha="right", fontsize=8)
        axis.set_ylabel(label)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("Planner gym: exact models, every planner at its defaults")
    return save_figure(fig, path)
