"""The planner gym (issue 12): every planner, at its defaults, on problems with exact models and known
answers (``mpc_grasp.problems``); success rate with a 95% Wilson interval, median time per plan and
model calls, written to ``results/planner_gym.{json,md,png}``.

    python experiments/planner_gym.py                      # 32 instances per problem, 240 s cap per cell
    python experiments/planner_gym.py --instances 4 --problems double_integrator_2d --out /tmp/gym
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from mpc_grasp.plotting import save_figure
from mpc_grasp.planners import GraspConfig, make_planner
from mpc_grasp.problems import PROBLEMS, make_problem
from mpc_grasp.reporting import command_line, write_report
from mpc_grasp.rl import wilson_interval

PLANNERS: dict[str, tuple[str, dict[str, Any]]] = {
    "grasp": ("grasp", {}),
    "grasp_paper": ("grasp", {"config": GraspConfig.paper()}),
    "cem": ("cem", {}),
    "mppi": ("mppi", {}),
    "gd": ("gd", {}),
}


def run_cell(problem_name: str, planner_label: str, instances: int, seed: int, time_cap: float) -> dict[str, Any]:
    """Plan every instance (until ``time_cap`` seconds are spent); success judged on the exact model."""
    problem = make_problem(problem_name, instances, seed)
    name, options = PLANNERS[planner_label]
    planner = make_planner(name, problem.model, problem.horizon, **problem.planner_kwargs, **options)
    successes, times, calls = [], [], []
    spent = 0.0
    for start, goal in problem.instances:
        started = time.perf_counter()
        result = planner.plan(start, goal)
        spent += time.perf_counter() - started
        successes.append(problem.solved(result.states.numpy(), goal))
        times.append(float(result.info["wall_time"]))
        calls.append(int(result.info["model_calls"]))
        if spent > time_cap:
            break
    count = len(successes)
    low, high = wilson_interval(sum(successes), count)
    return {
        "problem": problem_name, "planner": planner_label, "instances": count, "successes": int(sum(successes)),
        "success_rate": sum(successes) / count, "ci95": [low, high], "median_time_s": float(np.median(times)),
        "median_model_calls": float(np.median(calls)), "horizon": problem.horizon, "description": problem.description,
    }


def markdown(report: dict[str, Any]) -> str:
    planners = report["planners"]
    lines = [
        "# Planner gym (exact models, open loop, each planner at its defaults)", "",
        f"{report['threads']} torch thread(s).", "",
        "Cell: success % (successes/instances) · median seconds per plan. Fewer instances than asked = the cell hit its time cap.", "",
        "| problem | " + " | ".join(planners) + " |", "|---|" + "---|" * len(planners),
    ]
    for problem in report["problems"]:
        cells = []
        for planner in planners:
            row = next(r for r in report["rows"] if r["problem"] == problem and r["planner"] == planner)
            cells.append(f"{100 * row['success_rate']:.0f}% ({row['successes']}/{row['instances']}) · {row['median_time_s']:.2f} s")
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    lines += ["", "Problems:", ""] + [f"- `{p}`: {next(r for r in report['rows'] if r['problem'] == p)['description']}" for p in report["problems"]]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    problems, planners = report["problems"], report["planners"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.8 / len(planners)
    for index, planner in enumerate(planners):
        rows = [next(r for r in report["rows"] if r["problem"] == p and r["planner"] == planner) for p in problems]
        x = np.arange(len(problems)) + index * width
        rate = np.array([r["success_rate"] for r in rows])
        err = np.array([[r["success_rate"] - r["ci95"][0], r["ci95"][1] - r["success_rate"]] for r in rows]).T
        axes[0].bar(x, 100 * rate, width, yerr=100 * err, label=planner, capsize=2)
        axes[1].bar(x, [r["median_time_s"] for r in rows], width, label=planner)
    for axis, label in zip(axes, ("success % (95% interval)", "median seconds per plan (log)")):
        axis.set_xticks(np.arange(len(problems)) + 0.4 - width / 2, problems, rotation=30, ha="right", fontsize=8)
        axis.set_ylabel(label)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("Planner gym: exact models, every planner at its defaults")
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--planners", nargs="+", default=list(PLANNERS), choices=list(PLANNERS))
    parser.add_argument("--instances", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-cap", type=float, default=240.0, help="seconds of planning per cell before it stops early")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    cells = [(p, q) for p in args.problems for q in args.planners]
    for problem, planner in tqdm(cells, desc="planner gym"):
        rows.append(run_cell(problem, planner, args.instances, args.seed, args.time_cap))
        tqdm.write(f"{problem:22s} {planner:12s} {rows[-1]['successes']}/{rows[-1]['instances']}  {rows[-1]['median_time_s']:.3f} s")
    report = {
        "command": command_line("experiments/planner_gym.py", argv),
        "threads": args.threads, "problems": args.problems, "planners": args.planners, "rows": rows,
    }
    write_report(args.out, "planner_gym", report, markdown, plot)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
