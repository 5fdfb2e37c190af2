"""The robustness suite (issue 30): the planner gym's problems perturbed one factor at a time (goal weights none /
the gym's / three random draws, horizon x0.6 / x1.5, start spread x3), every planner at its defaults and at
GRASP's default wall time per plan; success with a 95% Wilson interval and median time per plan, written to
``results/robustness.{json,md,png}``. The suite is ``bench.suites.robustness``.

    python experiments/robustness.py                      # 16 instances per variant, defaults + equal time
    python experiments/robustness.py --problems cartpole_swingup --planners grasp cem gd --instances 4 --out /tmp/r
    python experiments/robustness.py --quick --out /tmp/r  # smoke run: 4 instances, 1/4 of every iteration budget
    python experiments/robustness.py --resume --backend ray --workers 2   # reuse finished cells, the rest on Ray
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from bench.report import command_line
from bench.suites.problems import PROBLEMS
from bench.suites.robustness import (
    DEFAULT_PROBLEMS,
    ROBUSTNESS_PLANNERS,
    VARIANTS,
    RobustnessSuite,
    markdown,
    run_robustness,
)

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments

QUICK_INSTANCES, QUICK_ITERATION_SCALE = 4, 0.25


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", nargs="+", default=list(DEFAULT_PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--planners", nargs="+", default=list(ROBUSTNESS_PLANNERS), choices=list(ROBUSTNESS_PLANNERS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--instances", type=int, default=None, help=f"per variant (default 16, --quick {QUICK_INSTANCES})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=None, help="instances per plan_batch call (default: all)")
    parser.add_argument(
        "--time-cap", type=float, default=None, help="seconds of planning per cell before it stops after a batch"
    )
    parser.add_argument("--no-equal-time", action="store_true", help="only the planners' defaults")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: few instances, 1/4 of every iteration budget, *_quick outputs"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    parser.add_argument(
        "--resume", action="store_true", help="reuse the cells of an earlier run with the same settings and code"
    )
    parser.add_argument("--no-progress", action="store_true")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    default_instances = QUICK_INSTANCES if args.quick else 16
    try:
        suite = RobustnessSuite(
            problems=tuple(args.problems),
            planners=tuple(args.planners),
            variants=tuple(args.variants),
            instances=default_instances if args.instances is None else args.instances,
            seed=args.seed,
            batch=args.batch,
            time_cap=args.time_cap,
            equal_time=not args.no_equal_time,
            iteration_scale=QUICK_ITERATION_SCALE if args.quick else 1.0,
            threads=args.threads,
        )
        parallel = ParallelOptions.from_args(args)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    command = command_line("experiments/robustness.py", argv)
    report = run_robustness(
        suite, args.out, command=command, resume=args.resume, parallel=parallel, progress=not args.no_progress
    )
    print(markdown(report))
    print(f"wrote {Path(args.out) / suite.stem}.{{json,md,png}}")
    return report


if __name__ == "__main__":
    main()
