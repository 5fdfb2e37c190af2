"""Planner speed (issue 13): milliseconds per cold plan and per warm-started ``GraspMPC`` control step for
every planner at its defaults, MLP world model 256x2 on grid world ``wall``, across horizons, and ms per
planner iteration; and (issue 32) the same model and objective driven by ``GraspMPC`` (GRASP, CEM, MPPI) and by
the peer library pytorch_mppi (``pip install -e '.[peers]'``; a sweep of its samples and lambda), closed loop on the
exact cart-pole swing-up (env reward) and grid world ``wall`` (goal), one torch thread: success, mean return, median
ms per step. Writes ``results/speed.{json,md,png}``. The suite is :mod:`bench.suites.speed` (peer rows:
:mod:`bench.suites.peers`; its GRASP-vs-floor profile: ``experiments/profile_grasp.py``).

    python experiments/speed.py                                   # CPU, H in {25, 50, 100, 200}, and the peer rows
    python experiments/speed.py --device cuda --threads 8         # the GPU figures (one command)
    python experiments/speed.py --peer-problems                   # without the peer comparison
    python experiments/speed.py --horizons 5 --steps 2 --candidates 4 --iterations 2 --peer-problems --out /tmp/speed   # tiny (the test)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import command_line
from bench.suites.peers import GRID_MODELS, PEER_PROBLEMS
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
    peers = parser.add_argument_group("peer comparison (pytorch_mppi vs GraspMPC, closed loop, bench.suites.peers)")
    peers.add_argument(
        "--peer-problems",
        nargs="*",
        default=list(DEFAULTS.peer_problems),
        choices=PEER_PROBLEMS,
        help="closed-loop problems of the peer comparison (none: skip it)",
    )
    peers.add_argument("--peer-planners", nargs="*", default=list(DEFAULTS.peer_planners), choices=sorted(PLANNERS))
    peers.add_argument("--peer-samples", nargs="+", type=int, default=list(DEFAULTS.peer_samples))
    peers.add_argument("--peer-lambdas", nargs="+", type=float, default=list(DEFAULTS.peer_lambdas))
    peers.add_argument("--peer-noise-sigma", type=float, default=DEFAULTS.peer_noise_sigma)
    peers.add_argument("--peer-horizon", type=int, default=DEFAULTS.peer_horizon)
    peers.add_argument("--peer-episodes", type=int, default=DEFAULTS.peer_episodes)
    peers.add_argument(
        "--peer-steps", type=int, default=DEFAULTS.peer_steps, help="steps per episode at most (default: the env's)"
    )
    peers.add_argument("--peer-threads", type=int, default=DEFAULTS.peer_threads)
    peers.add_argument("--peer-grid-model", choices=GRID_MODELS, default=DEFAULTS.peer_grid_model)
    peers.add_argument("--peer-grid-task", choices=("across", "random"), default=DEFAULTS.peer_grid_task)
    args = parser.parse_args(argv)
    try:
        config = _config(args)
    except ValueError as error:
        parser.error(str(error))
    report = run_speed(config, command_line("experiments/speed.py", argv))
    print((args.out / "speed.md").read_text())
    return report


def _config(args: argparse.Namespace) -> SpeedConfig:
    return SpeedConfig(
        planners=tuple(args.planners),
        horizons=tuple(args.horizons),
        steps=args.steps,
        candidates=tuple(args.candidates),
        iterations=args.iterations,
        device=args.device,
        threads=args.threads,
        out_dir=args.out,
        resume=args.resume,
        peer_problems=tuple(args.peer_problems),
        peer_planners=tuple(args.peer_planners),
        peer_samples=tuple(args.peer_samples),
        peer_lambdas=tuple(args.peer_lambdas),
        peer_noise_sigma=args.peer_noise_sigma,
        peer_horizon=args.peer_horizon,
        peer_episodes=args.peer_episodes,
        peer_steps=args.peer_steps,
        peer_threads=args.peer_threads,
        peer_grid_model=args.peer_grid_model,
        peer_grid_task=args.peer_grid_task,
    )


if __name__ == "__main__":
    main()
