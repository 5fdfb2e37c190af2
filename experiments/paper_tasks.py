"""The paper's protocol on Point-Maze (UMaze, Medium) and Push-T (issue 16): open loop at H 40-80 and GraspMPC
closed loop, every planner at its defaults, success in the real env beside success under the model; writes
``results/paper_tasks.{json,md,csv,png}``. The suite is ``bench.suites.paper_tasks``.

    python experiments/paper_tasks.py                        # the full protocol: 50 pairs, all planners, H 40/50/60/80
    python experiments/paper_tasks.py --estimate-only        # time one plan per (task, planner), extrapolate
    python experiments/paper_tasks.py --pairs 20 --planner-pairs gd=10 --task-horizons medium=50,80 --resume
    python experiments/paper_tasks.py --resume --backend ray --workers 2   # units on two cores (1 torch thread each)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from bench.report import command_line
from bench.suites.paper_tasks import PAPER_PLANNERS, TASKS, PaperSuite, estimate_cost, markdown, run_paper_tasks

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments


def _mapping(items: Sequence[str], cast: Any) -> dict[str, Any]:
    return {key: cast(value) for key, value in (item.split("=", 1) for item in items)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--planners", nargs="+", default=list(PAPER_PLANNERS), choices=list(PAPER_PLANNERS))
    parser.add_argument("--horizons", nargs="+", type=int, default=[40, 50, 60, 80])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--task-horizons", nargs="*", default=[], help="per task, e.g. medium=50,80")
    parser.add_argument("--task-pairs", nargs="*", default=[], help="per task, e.g. pusht=10")
    parser.add_argument("--planner-pairs", nargs="*", default=[], help="per planner at most, e.g. gd=10")
    parser.add_argument("--time-cap", type=float, default=None, help="seconds of planning per unit of 10 pairs")
    parser.add_argument("--closed-loop-tasks", nargs="*", default=["umaze"], choices=list(TASKS))
    parser.add_argument("--closed-loop-planners", nargs="*", default=["grasp", "cem"], choices=list(PAPER_PLANNERS))
    parser.add_argument("--closed-loop-episodes", type=int, default=10)
    parser.add_argument("--closed-loop-steps", type=int, default=200)
    parser.add_argument(
        "--estimate", action="store_true", help="time one plan per (task, planner) first and report the full cost"
    )
    parser.add_argument("--estimate-only", action="store_true")
    parser.add_argument("--note", action="append", default=[], help="a line for the report (what was reduced and why)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        parallel = ParallelOptions.from_args(args)
        suite = PaperSuite(
            tuple(args.tasks),
            tuple(args.planners),
            tuple(args.horizons),
            args.pairs,
            _mapping(args.task_horizons, lambda v: tuple(int(h) for h in v.split(","))),
            _mapping(args.task_pairs, int),
            _mapping(args.planner_pairs, int),
            time_cap=args.time_cap,
            closed_loop_tasks=tuple(args.closed_loop_tasks),
            closed_loop_planners=tuple(args.closed_loop_planners),
            closed_loop_pairs=args.closed_loop_episodes,
            closed_loop_steps=args.closed_loop_steps,
            seed=args.seed,
        )
    except ValueError as error:
        parser.error(str(error))
    estimate = estimate_cost(suite) if args.estimate or args.estimate_only else None
    previous = args.out / "paper_tasks.json"
    if estimate is None and args.resume and previous.is_file():  # keep the estimate of the run being resumed
        estimate = json.loads(previous.read_text()).get("estimate") or None
    if args.estimate_only:
        print(estimate)
        return dict(estimate or {})
    command = command_line("experiments/paper_tasks.py", argv)
    options = dict(
        resume=args.resume, parallel=parallel, progress=not args.no_progress, estimate=estimate, notes=args.note
    )
    report = run_paper_tasks(suite, args.out, command=command, **options)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
