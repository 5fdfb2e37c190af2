"""The planner gym (issue 12): every planner, at its defaults, on problems with exact models and known
answers (``bench.suites.problems``); success rate with a 95% Wilson interval, median time per plan and
model calls, written to ``results/planner_gym.{json,md,png}``. The suite is ``bench.suites.gym``.

    python experiments/planner_gym.py                      # 32 instances per problem, 240 s cap per cell
    python experiments/planner_gym.py --instances 4 --problems double_integrator_2d --out /tmp/gym
    python experiments/planner_gym.py --resume --backend ray --workers 2   # reuse finished cells, the rest on Ray
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from bench.report import command_line
from bench.suites.gym import GYM_PLANNERS, GymSuite, markdown, run_gym
from bench.suites.problems import PROBLEMS

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--planners", nargs="+", default=list(GYM_PLANNERS), choices=list(GYM_PLANNERS))
    parser.add_argument("--instances", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--time-cap", type=float, default=240.0, help="seconds of planning per cell before it stops early"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    parser.add_argument(
        "--resume", action="store_true", help="reuse the cells of an earlier run with the same settings and code"
    )
    parser.add_argument("--no-progress", action="store_true")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    try:
        suite = GymSuite(
            tuple(args.problems), tuple(args.planners), args.instances, args.seed, args.time_cap, args.threads
        )
        parallel = ParallelOptions.from_args(args)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    command = command_line("experiments/planner_gym.py", argv)
    report = run_gym(
        suite, args.out, command=command, resume=args.resume, parallel=parallel, progress=not args.no_progress
    )
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
