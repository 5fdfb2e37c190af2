"""Model-free RL baselines (SB3 PPO / SAC(+HER)) on the grid world and cart-pole swing-up: the RL suite
(:mod:`bench.suites.rl`), one work unit per env x algo x budget, evaluated on ``--n-eval`` episodes
with ``--eval-seed`` (the episodes ``GraspMPC`` gets with the same seed and env kwargs).

Budgets: "same" = the world model's data (``--grid-steps`` 20k, ``--cartpole-steps`` 30k); "large" =
``--large-factor`` x that. SAC is ~20-25 ms per env step on one CPU thread: ``--large-algos ppo`` skips 10x SAC.
Writes ``<out-dir>/rl_baselines.{json,md,csv}`` (``--quick``: ``rl_baselines_quick.*``); finished runs are
logged in ``<stem>.partial.jsonl`` and reused with ``--resume``; ``--render-only`` rewrites the tables.

    python experiments/rl_baselines.py --large-algos ppo
    python experiments/rl_baselines.py --quick --out-dir /tmp/rl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.report import REPO_ROOT, command_line
from bench.suites.rl import BASELINE_ENVS, BUDGETS, RLSuiteConfig, markdown_table, render_rl_report, run_rl_suite

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments
from mpc_grasp.rl.baselines import ALGOS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--envs", nargs="+", choices=BASELINE_ENVS, default=list(BASELINE_ENVS))
    p.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    p.add_argument("--budgets", nargs="+", choices=BUDGETS, default=list(BUDGETS))
    p.add_argument(
        "--large-algos",
        nargs="+",
        choices=ALGOS,
        default=None,
        help="algorithms run at the large budget (default: all)",
    )
    p.add_argument(
        "--grid-steps", type=int, default=20_000, help="'same' budget on the grid world (world-model data size)"
    )
    p.add_argument("--cartpole-steps", type=int, default=30_000, help="'same' budget on cart-pole swing-up")
    p.add_argument("--large-factor", type=float, default=10.0, help="large budget = factor x same budget")
    p.add_argument(
        "--train-task", choices=("random", "across"), default="random", help="grid-world training task distribution"
    )
    p.add_argument("--her", action=argparse.BooleanOptionalAction, default=True, help="HER for SAC on the grid world")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument(
        "--eval-seed", type=int, default=1000, help="seed of the evaluation episodes (shared with GraspMPC evaluation)"
    )
    p.add_argument("--n-eval", type=int, default=50, help="evaluation episodes")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results", help="output directory")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (per Ray task too)")
    p.add_argument("--quick", action="store_true", help="smoke-size run (2k steps, x2 large, 5 eval episodes)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished runs of an earlier run with identical settings and code",
    )
    p.add_argument("--render-only", action="store_true", help="only rewrite the tables from the existing JSON")
    add_parallel_arguments(p)
    args = p.parse_args(argv)
    if args.quick:
        args.grid_steps, args.cartpole_steps, args.large_factor, args.n_eval = 2_000, 2_000, 2.0, 5
    stem = "rl_baselines_quick" if args.quick else "rl_baselines"
    if args.render_only:
        print(markdown_table(render_rl_report(args.out_dir, stem)["runs"]))
        return 0
    try:
        config = RLSuiteConfig(
            envs=tuple(args.envs),
            algos=tuple(args.algos),
            budgets=tuple(args.budgets),
            large_algos=None if args.large_algos is None else tuple(args.large_algos),
            same_steps={"wall": args.grid_steps, "cartpole": args.cartpole_steps},
            large_factor=args.large_factor,
            train_task=args.train_task,
            her=args.her,
            seed=args.seed,
            eval_seed=args.eval_seed,
            n_eval=args.n_eval,
        )
        parallel = ParallelOptions.from_args(args)
    except ValueError as error:
        p.error(str(error))
    report = run_rl_suite(
        config,
        out_dir=args.out_dir,
        stem=stem,
        command=command_line("experiments/rl_baselines.py", argv),
        resume=args.resume,
        parallel=parallel,
    )
    print(f"{markdown_table(report['runs'])}\n\nwrote {args.out_dir / stem}.{{json,md,csv}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
