"""Reward-driven planning on the exact cart-pole: GRASP's reward default vs its lifted steps, CEM and MPPI.

The study is :mod:`bench.suites.reward_planning` (closed-loop GraspMPC, analytic model, the env's own
reward, one resumable work unit per planner variant). Writes ``results/reward_planning.{json,md,png}``.

    python experiments/reward_planning.py                          # ~12 minutes on 1 CPU thread
    python experiments/reward_planning.py --variants grasp cem --episodes 3
    python experiments/reward_planning.py --backend ray --workers 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from bench.report import command_line
from bench.suites.reward_planning import VARIANTS, RewardPlanningConfig, run_reward_planning

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments

DEFAULTS = RewardPlanningConfig()


def parse_args(argv: list[str] | None = None) -> tuple[RewardPlanningConfig, int]:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(DEFAULTS.variants))
    p.add_argument("--episodes", type=int, default=DEFAULTS.episodes, help="fixed-seed episodes per variant")
    p.add_argument("--horizon", type=int, default=DEFAULTS.horizon)
    p.add_argument("--out-dir", type=Path, default=DEFAULTS.out_dir)
    p.add_argument("--runs-dir", type=Path, default=DEFAULTS.runs_dir, help="resume log folder")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse finished variants of an earlier run with identical settings and code",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads in this process (1: fair plan times)")
    add_parallel_arguments(p)
    args = p.parse_args(argv)
    try:
        config = RewardPlanningConfig(
            variants=tuple(args.variants),
            episodes=args.episodes,
            horizon=args.horizon,
            out_dir=args.out_dir,
            runs_dir=args.runs_dir,
            resume=args.resume,
            parallel=ParallelOptions.from_args(args),
        )
    except ValueError as error:
        p.error(str(error))
    return config, args.threads


def main(argv: list[str] | None = None) -> int:
    config, threads = parse_args(argv)
    torch.set_num_threads(threads)
    report = run_reward_planning(config, command_line("experiments/reward_planning.py", argv))
    print(Path(config.out_dir, f"{config.stem}.md").read_text())
    print(f"wrote {config.out_dir / config.stem}.{{json,md,png}} ({report['total_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
