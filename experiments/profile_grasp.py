"""Profile GRASP's iteration against its floor: one model forward+backward on the same batch.

One GRASP iteration is one batched model call on [N·B·T] rows (the lifted loss), its backward, an Adam
step and the state noise; every ``sync_every`` iterations the sync adds rollouts. The floor is a single
forward+backward of the model on the same [B·T] batch. Reported per horizon: floor ms, GRASP ms/iteration
without sync and with the default sync amortised, GD (shooting) ms/iteration, and the ratios. The suite is
:mod:`bench.suites.speed`; writes ``results/profile_grasp.{json,md}`` (``--quick``: ``profile_grasp_quick.*``).

    python experiments/profile_grasp.py                    # MLP world model (256x3), H in {25, 50, 80}
    python experiments/profile_grasp.py --quick
    python experiments/profile_grasp.py --compile          # also time a torch.compile'd model (slow first call)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.report import command_line
from bench.suites.speed import PROFILE_QUICK, ProfileConfig, run_profile

DEFAULTS = ProfileConfig()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--horizons", type=int, nargs="+", default=list(DEFAULTS.horizons))
    parser.add_argument("--candidates", type=int, default=DEFAULTS.candidates)
    parser.add_argument("--iterations", type=int, default=DEFAULTS.iterations)
    parser.add_argument("--repeats", type=int, default=DEFAULTS.repeats)
    parser.add_argument("--threads", type=int, default=DEFAULTS.threads)
    parser.add_argument("--compile", action="store_true", help="also profile a torch.compile'd model")
    parser.add_argument("--quick", action="store_true", help="H=25 only, 50 iterations, 1 repeat")
    parser.add_argument("--out-dir", type=Path, default=DEFAULTS.out_dir)
    parser.add_argument(
        "--resume", action="store_true", help="reuse the timings of an earlier run with identical settings and code"
    )
    args = parser.parse_args(argv)
    settings = dict(
        horizons=tuple(args.horizons),
        iterations=args.iterations,
        repeats=args.repeats,
        **(PROFILE_QUICK if args.quick else {}),
    )
    config = ProfileConfig(
        **settings,
        candidates=args.candidates,
        threads=args.threads,
        compile_model=args.compile,
        quick=args.quick,
        out_dir=args.out_dir,
        resume=args.resume,
    )
    run_profile(config, command_line("experiments/profile_grasp.py", argv))
    stem = "profile_grasp_quick" if args.quick else "profile_grasp"
    print((args.out_dir / f"{stem}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
