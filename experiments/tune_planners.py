"""Planner hyperparameter tuning at equal compute on a planner-gym problem (issue 7): random search per
planner at the same model-transition budget per plan, best vs default on held-out instances, written to
``results/tuning.{json,md}`` (``benchmark.py --configs results/tuning.json`` reads the chosen options).
The suite and its documented search space are ``mpc_grasp.bench.suites.tuning``.

    python experiments/tune_planners.py --quick --out-dir /tmp/tuning      # seconds: tiny smoke run
    python experiments/tune_planners.py --backend ray --workers 2          # results/tuning.{json,md}
    python experiments/tune_planners.py --problem pendulum_swingup --planners grasp cem --resume
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import torch

from mpc_grasp.bench.parallel import ParallelOptions, add_parallel_arguments
from mpc_grasp.bench.report import command_line
from mpc_grasp.bench.suites.problems import PROBLEMS
from mpc_grasp.bench.suites.tuning import PLANNER_ORDER, TuningSuite, markdown, run_tuning

QUICK = {"budget": 3000, "samples": 2, "pairs": 2, "eval_pairs": 2}
FULL = {"budget": 50_000, "samples": 5, "pairs": 6, "eval_pairs": 12}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--problem", default="walls_across_h50", choices=sorted(PROBLEMS), help="planner-gym problem to tune on")
    parser.add_argument("--planners", nargs="+", default=list(PLANNER_ORDER), choices=PLANNER_ORDER)
    parser.add_argument("--horizon", type=int, default=None, help="plan length (default: the problem's)")
    parser.add_argument("--budget", type=int, default=None, help="model transitions per plan (default 50000, --quick 3000)")
    parser.add_argument(
        "--samples", type=int, default=None, help="random configurations per planner besides the default (default 5, --quick 2)"
    )
    parser.add_argument("--pairs", type=int, default=None, help="tuning instances, reachable within H where known (default 6, --quick 2)")
    parser.add_argument("--eval-pairs", type=int, default=None, help="held-out instances for best vs default (default 12, --quick 2)")
    parser.add_argument("--task-seed", type=int, default=1000, help="seed of the tuning instances (the held-out ones use 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random search")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    parser.add_argument("--prefix", default="tuning")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (here and in every Ray task)")
    parser.add_argument("--resume", action="store_true", help="reuse the trials of an earlier run with the same settings and code")
    parser.add_argument("--no-progress", action="store_true")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    sizes = {key: value if (value := getattr(args, key)) is not None else (QUICK if args.quick else FULL)[key] for key in FULL}
    try:
        suite = TuningSuite(args.problem, tuple(args.planners), **sizes, task_seed=args.task_seed, seed=args.seed, horizon=args.horizon)
        parallel = ParallelOptions.from_args(args)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    command = command_line("experiments/tune_planners.py", argv)
    report = run_tuning(
        suite, args.out_dir, command=command, stem=args.prefix, resume=args.resume, parallel=parallel, progress=not args.no_progress
    )
    if not args.no_progress:
        print(markdown(report))
    return report


if __name__ == "__main__":
    main()
