"""Planner speed (issue 13): milliseconds per cold plan and per warm-started ``GraspMPC`` control step for
every planner at its defaults, MLP world model 256x2 on grid world ``wall``, across horizons, and ms per
planner iteration; writes ``results/speed.{json,md,png}``. The suite is :mod:`bench.suites.speed`
(its GRASP-vs-floor profile: ``experiments/profile_grasp.py``).

    python experiments/speed.py                                   # CPU, H in {25, 50, 100, 200}
    python experiments/speed.py --device cuda --threads 8         # the GPU figures (one command)
    python experiments/speed.py --horizons 5 --steps 2 --candidates 4 --iterations 2 --out /tmp/speed   # tiny (the test)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import command_line
from bench.suites.speed import SpeedConfig, run_speed

from mpc_grasp.planners import PLANNERS

DEFAULTS = SpeedConfig()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planners", nargs="+", default=list(DEFAULTS.planners), choices=sorted(PLANNERS))
    parser.add_argument("--horizons", nargs="+", type=int, default=list(DEFAULTS.horizons))
    parser.add_argument("--steps", type=int, default=DEFAULTS.steps, help="control steps per episode (1 cold + warm)")
    parser.add_argument(
        "--candidates",
        nargs="+",
        type=int,
        default=list(DEFAULTS.candidates),
        help="candidate counts of the per-iteration timing",
    )
    parser.add_argument(
        "--iterations", type=int, default=DEFAULTS.iterations, help="iterations of the per-iteration timing"
    )
    parser.add_argument("--device", default=DEFAULTS.device)
    parser.add_argument("--threads", type=int, default=DEFAULTS.threads)
    parser.add_argument("--out", type=Path, default=DEFAULTS.out_dir)
    parser.add_argument(
        "--resume", action="store_true", help="reuse the timings of an earlier run with identical settings and code"
    )
    args = parser.parse_args(argv)
    config = SpeedConfig(
        planners=tuple(args.planners),
        horizons=tuple(args.horizons),
        steps=args.steps,
        candidates=tuple(args.candidates),
        iterations=args.iterations,
        device=args.device,
        threads=args.threads,
        out_dir=args.out,
        resume=args.resume,
    )
    report = run_speed(config, command_line("experiments/speed.py", argv))
    print((args.out / "speed.md").read_text())
    return report


if __name__ == "__main__":
    main()
