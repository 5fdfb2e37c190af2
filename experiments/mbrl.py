"""Model-based RL on Gymnasium envs: return vs environment steps, GraspMPC vs SAC at equal env steps (issue 15).

The study is :mod:`bench.suites.mbrl`: the loop ``mpc_grasp.rl.mbrl.run_mbrl`` on the env's recipe
(``mbrl_recipe``: random seed data -> MLP world model (with a reward head) -> GraspMPC episodes maximising the
planning reward -> retrain warm -> repeat, evaluated on fixed-seed episodes every round) for ``--seeds``
training seeds, comparison loops with the other reward (``--known-rounds``) or MPPI in place of GRASP
(``--mppi-rounds``), SAC as a unit of the RL suite per training seed, evaluated on the same episodes at the
same env-step counts (and at 5k), and a terminal value at a short horizon (``--value-horizon``).

Envs (``--env``): ``Pendulum-v1`` (default; learned reward head, known-reward comparison, value comparison,
one seed), ``InvertedPendulum-v5`` (MuJoCo; the env's alive bonus with a learned termination, 3 seeds) and
``mpc_grasp/CartPoleSwingup-v0`` (learned reward head, CEM inside GraspMPC, a GRASP loop as the comparison,
a 10-episode success evaluation of the last model, and GRASP vs CEM on the exact physics). Flags left
out take the env's defaults (``MBRLStudyConfig.for_env``).

Outputs ``<out-dir>/mbrl_<env>.{json,md,png}`` (``mbrl_pendulum``, ``mbrl_inverted_pendulum``; ``--quick``:
``*_quick``, a ~1 minute smoke run); round checkpoints and the SAC resume log in ``--runs-dir`` (default
``runs/mbrl_<env>[_quick]``; ``--resume`` reuses finished rounds and SAC runs).

    python experiments/mbrl.py                                   # Pendulum, ~10 minutes on one CPU thread
    python experiments/mbrl.py --env InvertedPendulum-v5         # ~15 minutes on one CPU thread
    python experiments/mbrl.py --env mpc_grasp/CartPoleSwingup-v0 --eval-episodes 2   # ~1.5 hours on one thread
    python experiments/mbrl.py --quick
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from bench.report import REPO_ROOT, command_line
from bench.suites.mbrl import STUDY_ENVS, MBRLStudyConfig, mbrl_markdown, run_mbrl_study

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="Pendulum-v1", choices=sorted(STUDY_ENVS), help="the env of the study")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the main loop (default: the env recipe's)")
    parser.add_argument("--seed-steps", type=int, default=None)
    parser.add_argument("--steps-per-round", type=int, default=None)
    parser.add_argument(
        "--known-rounds", type=int, default=None, help="rounds of the loop with the other reward (0: skip)"
    )
    parser.add_argument(
        "--mppi-rounds",
        type=int,
        default=None,
        help="rounds of the comparison loop (MPPI in place of GRASP; GRASP in place of CEM on cart-pole; 0: skip)",
    )
    parser.add_argument(
        "--value-horizon", type=int, default=None, help="horizon of the terminal-value comparison (0: skip)"
    )
    parser.add_argument(
        "--seeds", type=int, default=None, help="training seeds of the main loop and SAC (seed, seed+1, ...)"
    )
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sac", action="store_true")
    parser.add_argument(
        "--resume", action="store_true", help="reuse the finished rounds (and SAC curves) in --runs-dir"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 min): tiny budgets, *_quick outputs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results")
    parser.add_argument(
        "--runs-dir", type=Path, default=None, help="round checkpoints (default runs/mbrl_<env>[_quick])"
    )
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    defaults = MBRLStudyConfig.for_env(args.env)
    if args.quick:
        args.rounds, args.seed_steps, args.steps_per_round, args.eval_episodes = 1, 400, 200, 1
        args.known_rounds = min(1, defaults.known_rounds) if args.known_rounds is None else args.known_rounds
        args.seeds = 1 if args.seeds is None else args.seeds
    flags = {
        "rounds": args.rounds,
        "seed_steps": args.seed_steps,
        "steps_per_round": args.steps_per_round,
        "known_rounds": args.known_rounds,
        "mppi_rounds": args.mppi_rounds,
        "value_horizon": args.value_horizon,
        "seeds": args.seeds,
    }
    study = MBRLStudyConfig.for_env(
        args.env,
        **{name: value for name, value in flags.items() if value is not None},
        eval_episodes=args.eval_episodes,
        seed=args.seed,
        sac=not args.no_sac,
        **({"sac_extra_steps": ()} if args.quick else {}),
    )
    stem = f"mbrl_{study.env.slug}{'_quick' if args.quick else ''}"
    report = run_mbrl_study(
        study,
        out_dir=args.out_dir,
        runs_dir=args.runs_dir or REPO_ROOT / "runs" / stem,
        stem=stem,
        command=command_line("experiments/mbrl.py", None if argv is None else list(argv)),
        resume=args.resume,
        parallel=ParallelOptions.from_args(args),
    )
    print(mbrl_markdown(report))
    return report


if __name__ == "__main__":
    main()
