"""Model-based RL on Gymnasium ``Pendulum-v1``: return vs environment steps, GraspMPC vs SAC (issue 15).

The loop (``mpc_grasp.mbrl.run_mbrl``): random seed data -> MLP world model with a reward head ->
GraspMPC episodes maximising the learned return (GRASP, horizon 30, no goal) -> add their
transitions -> retrain warm -> repeat; after every round the agent is evaluated on the same
fixed-seed episodes. Compared with

* the same loop planning with Pendulum's known reward formula instead of the learned head
  (``--known-rounds`` rounds; the world model is still learned), and
* SAC (stable-baselines3, ``mpc_grasp.rl`` defaults: 1000 random warm-up steps, one gradient step per
  env step) trained once and evaluated on the same episodes at the same env-step counts (and at 5k), and
* a terminal value: on the last round's model and data, GraspMPC at a short horizon (``--value-horizon``,
  10) without and with ``V(s)`` learned by TD(0) (``train_value_function``, discount 0.95).

Outputs ``results/mbrl_pendulum.{json,md,png}`` (``--quick``: ``*_quick``, a ~1 minute smoke run);
round checkpoints in ``runs/mbrl_pendulum/`` (``--resume`` reuses finished rounds).

    python experiments/mbrl.py              # ~10 minutes on one CPU thread (shared 2-core machine)
    python experiments/mbrl.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mpc_grasp.data import make_env
from mpc_grasp.evaluation import run_episodes, summarize_episodes
from mpc_grasp.data import load_dataset
from mpc_grasp.mbrl import MBRLConfig, RoundRecord, evaluate_return, make_agent, plot_learning_curves, run_mbrl
from mpc_grasp.models import load_world_model, train_value_function
from mpc_grasp.reporting import REPO_ROOT, git_commit
from mpc_grasp.rl import train_rl_baseline

ENV_ID = "Pendulum-v1"
TARGET_RETURN = -200.0
"""Issue 15's target: mean return >= -200 within 5k env steps (a good policy gets about -150)."""


def recipe(rounds: int, seed_steps: int, steps_per_round: int, eval_episodes: int, seed: int, reward: str = "learned") -> MBRLConfig:
    """The out-of-the-box Pendulum recipe: MBRLConfig's defaults (GRASP, horizon 30, sync every 4
    iterations, a 200x200 MLP with a 200x200 reward head), with the budgets of this run."""
    return MBRLConfig(
        env_id=ENV_ID, rounds=rounds, seed_steps=seed_steps, steps_per_round=steps_per_round,
        eval_episodes=eval_episodes, seed=seed, reward=reward,
    )


def sac_curve(steps: Sequence[int], eval_episodes: int, eval_seed: int, seed: int) -> list[dict[str, Any]]:
    """SAC trained once up to ``max(steps)``, paused at each count to run the loop's evaluation episodes."""
    points: list[dict[str, Any]] = []
    model, trained, started = None, 0, time.perf_counter()
    env = make_env(ENV_ID)
    for count in sorted(set(steps)):
        if model is None:
            model = train_rl_baseline(ENV_ID, "sac", total_timesteps=count, seed=seed, hyperparams={"buffer_size": max(steps)})
        else:
            model.learn(total_timesteps=count - trained, reset_num_timesteps=False)
        trained = count
        summary = summarize_episodes(run_episodes(env, model, eval_episodes, seed=eval_seed, progress=False))
        points.append({"env_steps": count, "mean_return": summary["mean_return"], "std_return": summary["std_return"],
                       "wall_time_s": time.perf_counter() - started})
    env.close()
    return points


def terminal_value_ablation(run_dir: Path, config: MBRLConfig, horizon: int) -> dict[str, Any]:
    """GraspMPC at ``horizon`` on the last round's model, without and with a TD(0) value of its data."""
    last = sorted(run_dir.glob("round_*"))[-1]
    model, dataset = load_world_model(last / "model.pt"), load_dataset(last / "dataset.npz")
    started = time.perf_counter()
    value = train_value_function(dataset, model, discount=config.value_discount, epochs=config.value_epochs, seed=config.seed)
    value_time = time.perf_counter() - started
    short = dataclasses.replace(config, horizon=horizon)
    action_space = make_env(ENV_ID).action_space
    rows = {}
    for name, terminal in (("without value", None), ("with value", value)):
        started = time.perf_counter()
        summary = evaluate_return(make_agent(model, short, action_space, terminal), short)
        rows[name] = {"mean_return": summary["mean_return"], "std_return": summary["std_return"],
                      "episode_returns": summary["episode_returns"], "wall_time_s": time.perf_counter() - started}
    return {"round": last.name, "env_steps": len(dataset), "horizon": horizon, "discount": config.value_discount,
            "value_train_time_s": value_time, **rows}


def first_reaching(steps: Sequence[int], returns: Sequence[float], target: float) -> int | None:
    """The first env-step count whose mean return reaches ``target`` (None if none does)."""
    return next((int(step) for step, value in zip(steps, returns) if value >= target), None)


def curve_of(records: Sequence[RoundRecord]) -> tuple[list[int], list[float], list[float]]:
    return [r.env_steps for r in records], [r.mean_return for r in records], [r.std_return for r in records]


def write_markdown(report: dict[str, Any], path: Path) -> None:
    learned = {row["env_steps"]: row for row in report["learned"]["rounds"]}
    known = {row["env_steps"]: row for row in report["known"]["rounds"]} if report.get("known") else {}
    sac = {row["env_steps"]: row for row in report.get("sac", [])}
    lines = [
        f"# Model-based RL on {ENV_ID}: mean evaluation return vs env steps", "",
        f"Command: `{report['command']}` — commit `{report['commit']}`, 1 torch thread, seed {report['seed']} (one seed).",
        f"Evaluation: {report['eval_episodes']} fixed-seed episodes (seed {report['eval_seed']}: the same starts for every agent and step count); "
        "env steps = training steps (evaluation episodes not counted).", "",
        "| env steps | GraspMPC, learned reward | GraspMPC, known reward | SAC | model one-step RMSE on the agent's new data, before → after retraining |",
        "|---|---|---|---|---|",
    ]
    for step in sorted(set(learned) | set(known) | set(sac)):
        def cell(table: dict[int, dict[str, Any]]) -> str:
            row = table.get(step)
            return "" if row is None else f"{row['mean_return']:.0f} ± {row['std_return']:.0f}"
        row = learned.get(step, {})
        error = "" if row.get("model_rmse_before") is None else f"{row['model_rmse_before']:.4f} → {row['model_rmse_after']:.4f}"
        lines.append(f"| {step} | {cell(learned)} | {cell(known)} | {cell(sac)} | {error} |")
    ablation = report.get("terminal_value")
    if ablation:
        lines += ["", f"Terminal value ({ablation['round']}, {ablation['env_steps']} transitions, GraspMPC at horizon {ablation['horizon']}, "
                  f"discount {ablation['discount']}): without V {ablation['without value']['mean_return']:.0f}, "
                  f"with V(s) learned by TD(0) {ablation['with value']['mean_return']:.0f} (value trained in {ablation['value_train_time_s']:.1f} s)."]
    lines += ["", f"First step count with mean return >= {TARGET_RETURN:g}: " + ", ".join(
        f"{name} {value if value is not None else 'not reached'}" for name, value in report["first_reaching_target"].items()), "",
        "Wall time (s): " + ", ".join(f"{name} {value:.0f}" for name, value in report["wall_time_s"].items()), ""]
    path.write_text("\n".join(lines))


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
    parser.add_argument("--resume", action="store_true", help="reuse the finished rounds in runs/mbrl_pendulum*/")
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 min): tiny budgets, *_quick outputs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.seed_steps, args.steps_per_round, args.known_rounds, args.eval_episodes = 1, 400, 200, 1, 1
    suffix = "_quick" if args.quick else ""
    runs = REPO_ROOT / "runs" / f"mbrl_pendulum{suffix}"
    wall: dict[str, float] = {}

    started = time.perf_counter()
    config = recipe(args.rounds, args.seed_steps, args.steps_per_round, args.eval_episodes, args.seed)
    learned = run_mbrl(config, runs / "learned", resume=args.resume)
    wall["GraspMPC learned reward"] = time.perf_counter() - started
    curves = {"GraspMPC (GRASP H=30), learned reward": curve_of(learned)}
    known: list[RoundRecord] = []
    if args.known_rounds > 0:
        started = time.perf_counter()
        known_config = recipe(args.known_rounds, args.seed_steps, args.steps_per_round, args.eval_episodes, args.seed, reward="known")
        known = run_mbrl(known_config, runs / "known", resume=args.resume)
        wall["GraspMPC known reward"] = time.perf_counter() - started
        curves["GraspMPC (GRASP H=30), known reward"] = curve_of(known)
    sac: list[dict[str, Any]] = []
    if not args.no_sac:
        started = time.perf_counter()
        sac = sac_curve([r.env_steps for r in learned] + ([] if args.quick else [5000]), args.eval_episodes, config.eval_seed, args.seed)
        wall["SAC"] = time.perf_counter() - started
        curves["SAC (stable-baselines3)"] = ([p["env_steps"] for p in sac], [p["mean_return"] for p in sac], [p["std_return"] for p in sac])

    ablation = None
    if args.value_horizon > 0:
        started = time.perf_counter()
        ablation = terminal_value_ablation(runs / "learned", config, args.value_horizon)
        wall["terminal value comparison"] = time.perf_counter() - started
    first = {name: first_reaching(curve[0], curve[1], TARGET_RETURN) for name, curve in curves.items()}
    report = {
        "command": "python " + " ".join(shlex.quote(part) for part in [str(Path(__file__).relative_to(REPO_ROOT)), *(argv if argv is not None else sys.argv[1:])]),
        "commit": git_commit(mark_dirty=True), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(), "torch": torch.__version__, "seed": args.seed, "eval_episodes": args.eval_episodes,
        "eval_seed": config.eval_seed, "target_return": TARGET_RETURN,
        "learned": {"config": config.to_json(), "rounds": [r.to_json() for r in learned]},
        "known": {"config": known_config.to_json(), "rounds": [r.to_json() for r in known]} if known else None,
        "sac": sac, "terminal_value": ablation, "first_reaching_target": first, "wall_time_s": wall,
    }
    results = REPO_ROOT / "results"
    results.mkdir(exist_ok=True)
    (results / f"mbrl_pendulum{suffix}.json").write_text(json.dumps(report, indent=2))
    write_markdown(report, results / f"mbrl_pendulum{suffix}.md")
    plot_learning_curves(curves, results / f"mbrl_pendulum{suffix}.png", title=f"{ENV_ID}: model-based RL vs SAC", target=TARGET_RETURN)
    print((results / f"mbrl_pendulum{suffix}.md").read_text())
    return report


if __name__ == "__main__":
    main()
