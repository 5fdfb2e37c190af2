"""Model-based RL on Gymnasium ``Pendulum-v1``: return vs environment steps, GraspMPC vs SAC (issue 15).

The study is :mod:`mpc_grasp.bench.suites.mbrl`: the loop ``mpc_grasp.rl.mbrl.run_mbrl`` (random seed data
-> MLP world model with a reward head -> GraspMPC episodes maximising the learned return -> retrain warm
-> repeat, evaluated on fixed-seed episodes every round), the same loop with Pendulum's known reward
(``--known-rounds``), SAC as a unit of the RL suite evaluated on the same episodes at the same env-step
counts (and at 5k), and a terminal value at a short horizon (``--value-horizon``).

Outputs ``<out-dir>/mbrl_pendulum.{json,md,png}`` (``--quick``: ``*_quick``, a ~1 minute smoke run);
round checkpoints and the SAC resume log in ``--runs-dir`` (``--resume`` reuses finished rounds and SAC).

    python experiments/mbrl.py              # ~10 minutes on one CPU thread (shared 2-core machine)
    python experiments/mbrl.py --quick
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mpc_grasp.bench.parallel import ParallelOptions, add_parallel_arguments
from mpc_grasp.bench.report import REPO_ROOT, command_line
from mpc_grasp.bench.suites.mbrl import MBRLStudyConfig, mbrl_markdown, run_mbrl_study


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed-steps", type=int, default=200)
    parser.add_argument("--steps-per-round", type=int, default=200)
    parser.add_argument("--known-rounds", type=int, default=4, help="rounds of the known-reward comparison (0: skip)")
    parser.add_argument("--value-horizon", type=int, default=10, help="horizon of the terminal-value comparison (0: skip)")
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sac", action="store_true")
    parser.add_argument("--resume", action="store_true", help="reuse the finished rounds (and SAC curve) in --runs-dir")
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 min): tiny budgets, *_quick outputs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results")
    parser.add_argument("--runs-dir", type=Path, default=None, help="round checkpoints (default runs/mbrl_pendulum[_quick])")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.seed_steps, args.steps_per_round, args.known_rounds, args.eval_episodes = 1, 400, 200, 1, 1
    suffix = "_quick" if args.quick else ""
    study = MBRLStudyConfig(
        rounds=args.rounds,
        seed_steps=args.seed_steps,
        steps_per_round=args.steps_per_round,
        known_rounds=args.known_rounds,
        value_horizon=args.value_horizon,
        eval_episodes=args.eval_episodes,
        seed=args.seed,
        sac=not args.no_sac,
        sac_extra_steps=() if args.quick else (5000,),
    )
    report = run_mbrl_study(
        study,
        out_dir=args.out_dir,
        runs_dir=args.runs_dir or REPO_ROOT / "runs" / f"mbrl_pendulum{suffix}",
        stem=f"mbrl_pendulum{suffix}",
        command=command_line("experiments/mbrl.py", None if argv is None else list(argv)),
        resume=args.resume,
        parallel=ParallelOptions.from_args(args),
    )
    print(mbrl_markdown(report))
    return report


if __name__ == "__main__":
    main()
