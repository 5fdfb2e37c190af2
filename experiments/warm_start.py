"""Does warm-starting GRASP from the previous plan save optimisation in closed loop? (issue 4)

The study is :mod:`mpc_grasp.bench.suites.warm_start` (part A: the same closed-loop states solved warm and cold, one
work unit per episode; part B: warm- vs cold-started agents with early stopping). Writes
``results/warm_start.{json,md,png}`` (``--quick``, < 1 min: ``warm_start_quick.*``).

    python experiments/warm_start.py            # ~5 minutes on 1 CPU thread
    python experiments/warm_start.py --quick
    python experiments/warm_start.py --model runs/wall.pt --set lr_actions=0.1
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mpc_grasp.bench.parallel import ParallelOptions, add_parallel_arguments
from mpc_grasp.bench.report import command_line
from mpc_grasp.bench.suites.warm_start import QUICK, WarmStartConfig, run_warm_start
from mpc_grasp.cli.commands import parse_key_value

DEFAULTS = WarmStartConfig()


def parse_args(argv: list[str] | None = None) -> WarmStartConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None, help="learned world-model checkpoint (default: the exact analytic PointMassWalls)")
    p.add_argument("--episodes", type=int, default=DEFAULTS.episodes, help="part A episodes (same-state comparisons)")
    p.add_argument(
        "--closed-loop-episodes", type=int, default=DEFAULTS.closed_loop_episodes, help="part B episodes per agent (0 skips part B)"
    )
    for name in ("horizon", "iterations", "replan_every", "max_steps", "eval_every"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(DEFAULTS, name))
    for name in ("goal_tolerance", "rel_tol", "abs_tol"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(DEFAULTS, name))
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="options", help="GRASP config option (repeatable)")
    p.add_argument("--task", choices=("random", "across"), default="random", help="start/goal anywhere in free space, or across the wall")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the first episode (the RL baselines' eval seed)")
    p.add_argument("--out-dir", type=Path, default=DEFAULTS.out_dir)
    p.add_argument("--quick", action="store_true", help="< 1 minute smoke run: 1 episode each, H=30, 60 iterations, 40 steps")
    p.add_argument("--resume", action="store_true", help="reuse finished units of an earlier run with identical settings and code")
    add_parallel_arguments(p)
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(WarmStartConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    quick = {k: v for k, v in QUICK.items() if values[k] == getattr(DEFAULTS, k)} if args.quick else {}  # flags given win
    values.update(options=parse_key_value(args.options), parallel=ParallelOptions.from_args(args), **quick)
    try:
        return WarmStartConfig(**values)
    except (TypeError, ValueError) as error:
        p.error(str(error))


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    report = run_warm_start(config, command_line("experiments/warm_start.py", argv))
    print(Path(config.out_dir, f"{config.stem}.md").read_text())
    print(f"wrote {config.out_dir / config.stem}.{{json,md,png}} ({report['total_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
