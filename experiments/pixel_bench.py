"""Planning from pixels (issue 5): GRASP vs GRASP without detach vs CEM / MPPI / GD shooting in the latent
space of a learned ``PixelWorldModel``, measured in the REAL pixel grid world ``wall``.

The suite is :mod:`bench.suites.pixel` (tables and figures: :mod:`bench.suites.pixel_report`). Outputs
(``--out-dir``, default ``results/``; ``--quick`` adds ``_quick`` to every name): ``pixel_bench.{json,md,png}``,
``pixel_virtual_states.png`` and ``pixel_grad_norms.png``.

    python experiments/pixel_bench.py --quick          # ~1 minute smoke run (tiny model, 2 pairs)
    python experiments/pixel_bench.py                  # default: 20 pairs per family, ~25 min on a shared 2-core CPU
    python experiments/pixel_bench.py --pairs 50       # the full >= 50-pair benchmark
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import command_line
from bench.suites.pixel import FAMILIES, QUICK, VARIANTS, PixelBenchConfig, run_pixel_bench

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments

DEFAULTS = PixelBenchConfig()


def parse_args(argv: Sequence[str] | None = None) -> PixelBenchConfig:
    """Flags -> config; a flag left out takes the suite's default (``--quick``: its quick value)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, help="start/goal pairs per task family (default 20; --quick 2)")
    p.add_argument("--horizons", type=int, nargs="+", help="random tasks; default 15 30 50 (--quick 15)")
    p.add_argument("--across-horizons", type=int, nargs="+", help="across tasks; default 30 50 (--quick 30)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    p.add_argument("--families", nargs="+", choices=FAMILIES)
    p.add_argument(
        "--closed-loop-pairs", type=int, help="pairs per family for GraspMPC episodes (default 6; --quick 1; 0 = skip)"
    )
    p.add_argument("--closed-loop-variants", nargs="+", choices=list(VARIANTS), help="default grasp cem")
    p.add_argument("--closed-loop-horizon", type=int, help="default 30")
    p.add_argument("--replan-every", type=int, help="default 10")
    p.add_argument("--max-episode-steps", type=int, help="closed-loop episode length (default 100; --quick 20)")
    p.add_argument("--grad-problems", type=int, help="tasks for the gradient-norm diagnostic (default 8; --quick 2)")
    p.add_argument("--seed", type=int, help="seed of the task sampler (default 0)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: tiny model, 2 pairs, H 15 (across 30), quarter iterations"
    )
    p.add_argument("--model-path", type=Path, help="default checkpoints/pixel_wall.pt (--quick: pixel_wall_quick.pt)")
    p.add_argument("--out-dir", type=Path, help="default results/")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default 1)")
    p.add_argument(
        "--resume", action="store_true", help="reuse finished units of an earlier run with identical settings and code"
    )
    p.add_argument("--no-progress", action="store_true")
    add_parallel_arguments(p)
    args = p.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(PixelBenchConfig)} - {"quick", "resume", "progress", "parallel"}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in fields and v is not None}
    try:
        return PixelBenchConfig(
            **{**(QUICK if args.quick else {}), **given},
            quick=args.quick,
            resume=args.resume,
            progress=not args.no_progress,
            parallel=ParallelOptions.from_args(args),
        )
    except ValueError as error:
        p.error(str(error))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    config = parse_args(argv)
    report = run_pixel_bench(config, command_line("experiments/pixel_bench.py", argv))
    if config.progress:
        print(Path(config.out_dir, f"{config.stem}.md").read_text())
    return report


if __name__ == "__main__":
    main()
