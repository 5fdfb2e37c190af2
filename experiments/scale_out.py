"""Scale-out measurements (issue 7): planner-gym throughput in-process vs on Ray, and vectorised GraspMPC
throughput (N grid-world envs, one batched plan per step). Outputs ``results/scale_out.{json,md,png}``;
the measurements are ``mpc_grasp.bench.suites.scale_out``.

    python experiments/scale_out.py                  # a few minutes on 2 cores
    python experiments/scale_out.py --quick          # ~1 minute
    python experiments/scale_out.py --device cuda    # planning part on the GPU (errors if none)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from mpc_grasp.bench.report import command_line
from mpc_grasp.bench.suites.scale_out import ScaleOutConfig, markdown, run_scale_out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer instances and control steps")
    parser.add_argument("--workers", type=int, default=2, help="local Ray workers (CPUs) for the gym part")
    parser.add_argument("--pairs", type=int, default=None, help="gym instances per problem (default 6, --quick 2)")
    parser.add_argument("--problems", nargs="+", default=list(ScaleOutConfig.problems), help="gym problems of the throughput part")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--steps", type=int, default=None, help="timed control steps per run (default 5, --quick 2)")
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=50, help="GRASP iterations per plan")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="device of the vectorised-planning part")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-bench", action="store_true", help="only the vectorised-planning part")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    args = parser.parse_args(argv)
    try:
        config = ScaleOutConfig(
            workers=args.workers, pairs=args.pairs or (2 if args.quick else 6), problems=tuple(args.problems), envs=tuple(args.envs),
            steps=args.steps or (2 if args.quick else 5), horizon=args.horizon, iterations=args.iterations, candidates=args.candidates,
            device=args.device, threads=args.threads, skip_bench=args.skip_bench,
        )  # fmt: skip
        config.gym_suite()  # unknown problems fail here
    except ValueError as error:
        parser.error(str(error))
    report = run_scale_out(config, args.out_dir, command=command_line("experiments/scale_out.py", argv))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
