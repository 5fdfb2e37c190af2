"""The MBRL sample-efficiency suite: GraspMPC (GRASP, CEM) in the model-based loop vs SAC and PPO on five envs.

Runs (or continues: every run is resumable and never repeated) the loops and the RL runs of
:mod:`bench.suites.mbrl_suite` for ``--envs`` x ``--agents`` x ``--seeds`` under ``--runs-dir``, then writes
``<out-dir>/mbrl_suite.{json,md,png}`` from every run that has finished there (a partial suite reports what it
has; each curve says its seed count). Two processes may share a runs dir when they run disjoint agents (e.g.
``--agents grasp cem`` beside ``--agents sac ppo``); ``--report-only`` draws the report without running.

    python experiments/mbrl_suite.py                                   # everything: many CPU-hours
    python experiments/mbrl_suite.py --envs pendulum reacher --agents sac ppo
    python experiments/mbrl_suite.py --report-only
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from bench.report import REPO_ROOT, command_line, write_report
from bench.suites.mbrl_suite import AGENT_LABELS, SUITE_ENVS, build_report, plot_suite, run_suite, suite_markdown

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", default=list(SUITE_ENVS), choices=list(SUITE_ENVS))
    parser.add_argument("--agents", nargs="+", default=list(AGENT_LABELS), choices=list(AGENT_LABELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--rl-steps", type=int, default=20_000, help="env steps of each SAC / PPO run")
    parser.add_argument("--report-only", action="store_true", help="write the report from the finished runs only")
    parser.add_argument(
        "--eval-workers", type=int, default=1, help="run a round's evaluation episodes as this many Ray tasks"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs" / "mbrl_suite")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    if args.rl_steps < 1 or args.eval_workers < 1 or min(args.seeds) < 0:
        parser.error("--rl-steps and --eval-workers must be positive, --seeds non-negative")
    torch.set_num_threads(args.threads)
    if not args.report_only:
        run_suite(
            args.runs_dir,
            envs=args.envs,
            agents=args.agents,
            seeds=args.seeds,
            rl_steps=args.rl_steps,
            parallel=ParallelOptions.from_args(args),
            eval_workers=args.eval_workers,
        )
    command = command_line("experiments/mbrl_suite.py", None if argv is None else list(argv))
    report = build_report(
        args.runs_dir, seeds=args.seeds, rl_steps=args.rl_steps, command=command, threads=args.threads
    )
    write_report(args.out_dir, "mbrl_suite", report, suite_markdown, plot_suite)
    print(suite_markdown(report))
    return report


if __name__ == "__main__":
    main()
