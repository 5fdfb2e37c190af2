"""The field's evaluation protocol on pixel Point-Maze (DINO-WM / stable-worldmodel / LeWM): expert trajectories
with images, frameskip 5, goals from held-out trajectories k env steps ahead, open loop and MPC, success by the
env's own test; pixel and state models side by side. Writes ``results/paper_protocol.{json,md,png}`` and a filmstrip per task. The suite is
:mod:`bench.suites.paper_protocol`.

    python experiments/paper_protocol.py --episodes 10 --planners grasp cem      # a quick look
    python experiments/paper_protocol.py                                          # 50 pairs, goal 25 steps ahead
    python experiments/paper_protocol.py --history 1                              # pixel model on one frame
    python experiments/paper_protocol.py --goal-offsets 25 100 --planners grasp grasp_paper cem mppi gd --resume
    python experiments/paper_protocol.py --tasks pusht --report-name paper_protocol_pusht
    python experiments/paper_protocol.py --goal-offsets 100 --modes open_loop --equal-time cem    # equal s per plan
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.report import command_line, write_report
from bench.suites.paper_protocol import PLANNERS, TASKS, ProtocolConfig, filmstrip, markdown, plot, run_protocol

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["pointmaze_umaze"])
    parser.add_argument("--observations", nargs="+", choices=["pixels", "state"], default=["pixels", "state"])
    parser.add_argument("--planners", nargs="+", choices=list(PLANNERS), default=["grasp", "cem"])
    parser.add_argument("--modes", nargs="+", choices=["mpc", "open_loop"], default=["mpc", "open_loop"])
    parser.add_argument("--goal-offsets", nargs="+", type=int, default=[25], help="env steps between start and goal")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation pairs per cell")
    parser.add_argument("--train-episodes", type=int, default=200, help="expert trajectories to train on")
    parser.add_argument(
        "--history",
        type=int,
        default=3,
        help="frames the pixel model conditions on (k; the field's models use up to 3)",
    )
    parser.add_argument(
        "--pixel-training",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="PixelTrainingConfig fields to change besides the history (e.g. latent_dim=32)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    parser.add_argument("--report-name", default="paper_protocol", help="file stem of the report under --out-dir")
    parser.add_argument(
        "--equal-time",
        choices=list(PLANNERS),
        help="give every planner the median s per plan of this one (iteration budgets scaled, calibrated first)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="reuse the cells of an earlier run with the same settings"
    )
    parser.add_argument("--no-progress", action="store_true")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    config = ProtocolConfig(
        tasks=tuple(args.tasks),
        observations=tuple(args.observations),
        planners=tuple(args.planners),
        modes=tuple(args.modes),
        goal_offsets=tuple(args.goal_offsets),
        episodes=args.episodes,
        train_episodes=args.train_episodes,
        pixel_training=pixel_training(args.history, args.pixel_training),
        equal_time=args.equal_time,
        seed=args.seed,
        name=args.report_name,
        out_dir=args.out_dir,
        resume=args.resume,
        progress=not args.no_progress,
        parallel=ParallelOptions.from_args(args),
    )
    report = run_protocol(config, command_line("experiments/paper_protocol.py", argv))
    paths = write_report(config.out_dir, config.name, report, markdown, plot)
    if "pixels" in config.observations:
        for task in config.tasks:
            film = config.out_dir / f"{config.name}_filmstrip_{task}.png"
            filmstrip(task, config, film, offset=min(config.goal_offsets))
            paths[f"filmstrip {task}"] = film
    print(markdown(report))
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return report


def pixel_training(history: int, items: list[str]) -> tuple[tuple[str, Any], ...]:
    """``--history`` and ``--pixel-training FIELD=VALUE`` as the config's (field, value) pairs (numbers parsed)."""
    options: list[tuple[str, Any]] = [("history", history)] if history != 1 else []
    for item in items:
        field, separator, text = item.partition("=")
        if not separator:
            raise SystemExit(f"--pixel-training needs FIELD=VALUE, got {item!r}")
        options.append((field, json.loads(text)))
    return tuple(options)


if __name__ == "__main__":
    main()
