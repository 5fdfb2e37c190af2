"""The main job: collect data on grid world `wall`, train a small world model, run GraspMPC episodes.

``python experiments/demo.py`` (``bash scripts/demo.sh``) prints the success rate and timings and writes
``runs/demo/demo.png`` (executed path vs planned rollout and GRASP's virtual states) and
``runs/demo/demo.json`` (``--out results`` rewrites the committed run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from mpc_grasp.atomic import atomic_write_text
from mpc_grasp.control.agent import GraspMPC
from mpc_grasp.control.episodes import run_episodes, summarize_episodes
from mpc_grasp.control.media import plot_episodes
from mpc_grasp.data import collect_transitions
from mpc_grasp.models import one_step_error, train_world_model

ENV_ID = "mpc_grasp/GridWorldWall-v0"


def run_demo(
    steps: int = 20_000,
    episodes: int = 6,
    horizon: int = 50,
    iterations: int | None = None,
    replan_every: int = 10,
    out_dir: str | Path = "runs/demo",
    seed: int = 0,
    train_seconds: float = 90.0,
    task: str = "random",
) -> dict:
    """Collect, train, act; returns the summary written to ``out_dir/demo.json``."""
    torch.set_num_threads(1)  # small models: one thread is fastest and avoids oversubscription
    out_dir = Path(out_dir)
    started = time.perf_counter()
    print(f"[1/3] collecting {steps} transitions on {ENV_ID} (correlated random exploration)")
    dataset = collect_transitions(ENV_ID, steps, seed=seed, num_envs=8)
    print(f"[2/3] training an MLP world model (<= {train_seconds:.0f} s)")
    train, held_out = dataset.split(val_fraction=0.15, seed=seed)
    model = train_world_model(
        train, hidden_sizes=(256, 256, 256), batch_size=512, lr=2e-3, epochs=100, max_time_s=train_seconds, seed=seed
    )
    error = one_step_error(model, held_out)
    train_time = time.perf_counter() - started
    print(f"      one-step RMSE on held-out episodes: {error['rmse']:.4f} (max step 0.25)")

    where = "on opposite sides of the wall" if task == "across" else "anywhere in free space"
    print(f"[3/3] GraspMPC, horizon {horizon}, {episodes} episodes (start and goal {where})")
    env = gym.make(ENV_ID, task=task)
    options: dict[str, Any] = {} if iterations is None else {"iterations": iterations}  # default: GraspConfig's
    agent = GraspMPC(
        model,
        "grasp",
        horizon=horizon,
        action_space=env.action_space,
        **options,
        goal_tolerance=0.3,
        replan_every=replan_every,
        replan_threshold=0.2,
    )
    records = run_episodes(env, agent, episodes, seed=seed)
    stats = summarize_episodes(records)
    successes = stats["successes"]
    summary = {
        "env_id": ENV_ID,
        "task": task,
        "transitions": steps,
        "one_step_rmse": error["rmse"],
        "horizon": horizon,
        "episodes": episodes,
        "success_rate": stats["success_rate"],
        "success_ci95": stats["success_ci95"],
        "mean_return": stats["mean_return"],
        "mean_steps_to_goal": stats["mean_steps_to_goal"],
        "median_plan_time_s": stats["median_plan_time_s"],
        "total_time_s": time.perf_counter() - started,
        "train_and_collect_time_s": train_time,
        "episodes_detail": [record.to_json() for record in records],
        "command": " ".join(sys.argv),
    }
    atomic_write_text(out_dir / "demo.json", json.dumps(summary, indent=2))
    figure = plot_episodes(
        env,
        records,
        out_dir / "demo.png",
        title=f"GraspMPC on a learned model of grid world `wall`: {successes}/{episodes} reached the goal",
    )
    print(
        f"\nsuccess: {successes}/{episodes} episodes | median plan time {summary['median_plan_time_s']:.2f} s | "
        f"total {summary['total_time_s']:.0f} s"
    )
    print(f"plot: {figure}  summary: {out_dir / 'demo.json'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20_000, help="environment steps of training data")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument(
        "--iterations", type=int, default=None, help="GRASP iterations per cold plan (default: GraspConfig's)"
    )
    parser.add_argument("--replan-every", type=int, default=10)
    parser.add_argument(
        "--out",
        default="runs/demo",
        help="output folder (default runs/demo, untracked; results/ holds the committed run)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--task",
        choices=("random", "across"),
        default="random",
        help="start/goal distribution: anywhere (random) or across the wall (non-greedy)",
    )
    args = parser.parse_args(argv)
    run_demo(
        args.steps, args.episodes, args.horizon, args.iterations, args.replan_every, args.out, args.seed, task=args.task
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
