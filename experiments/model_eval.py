"""World-model accuracy vs prediction horizon (DESIGN.md §6): collect, train, evaluate per env.

The suite is :mod:`bench.suites.model_eval` (one work unit per env: grid world ``wall`` / ``umaze``,
cart-pole balance / swing-up; the normalised error and the grid-world checks are described there).
Writes ``<out-dir>/model_eval.{json,md,png}`` (``--quick``: ``model_eval_quick.*``); checkpoints go to
``--save-dir``; finished envs are logged in ``<stem>.partial.jsonl`` and reused with ``--resume``.

    python experiments/model_eval.py                # default run, ~4-5 minutes on 2 CPU cores
    python experiments/model_eval.py --quick        # smoke run, well under a minute
    python experiments/model_eval.py --envs grid_wall --steps 40000 --max-time 120
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.report import REPO_ROOT, command_line
from bench.suites.model_eval import MODEL_EVAL_ENVS, ModelEvalConfig, model_eval_markdown, run_model_eval

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--envs", nargs="+", choices=sorted(MODEL_EVAL_ENVS), default=list(MODEL_EVAL_ENVS))
    p.add_argument("--steps", type=int, default=20000, help="transitions collected per env")
    p.add_argument("--num-envs", type=int, default=8, help="vector envs for collection")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument(
        "--max-time",
        type=float,
        default=None,
        help="training wall-time cap per env (s); off by default so results do not depend on machine load",
    )
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument(
        "--patience", type=int, default=None, help="early-stopping patience (default: run all epochs, keep the best)"
    )
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small MLPs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results")
    p.add_argument("--save-dir", type=Path, default=REPO_ROOT / "checkpoints" / "model_eval")
    p.add_argument("--quick", action="store_true", help="smoke run: 3k steps, 20 epochs per env")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished envs of an earlier run with identical settings and code",
    )
    add_parallel_arguments(p)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.epochs = 3000, 20
    try:
        config = ModelEvalConfig(
            envs=tuple(args.envs),
            steps=args.steps,
            num_envs=args.num_envs,
            epochs=args.epochs,
            max_time=args.max_time,
            hidden=tuple(args.hidden),
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )
        parallel = ParallelOptions.from_args(args)
    except ValueError as error:
        p.error(str(error))
    stem = "model_eval_quick" if args.quick else "model_eval"
    report = run_model_eval(
        config,
        out_dir=args.out_dir,
        stem=stem,
        command=command_line("experiments/model_eval.py", argv),
        save_dir=args.save_dir,
        resume=args.resume,
        parallel=parallel,
    )
    print(model_eval_markdown(report))
    print(f"total {report['total_time_s']:.0f} s -> {args.out_dir / stem}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
