"""``mpc-grasp run ENV_ID --model CKPT``: closed-loop GraspMPC episodes with a saved world model.

Plugged into :data:`mpc_grasp.cli.COMMANDS`. Prints the success rate (Wilson 95% interval), mean
return, steps to goal and median planning time per plan; writes ``summary.json``, ``episode.gif``
(the first episode, from the env's ``rgb_array`` renders) and ``plans.png`` (executed path vs the
planned rollouts and GRASP's virtual states) under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register_run"]


def register_run(subparsers: Any) -> None:
    """Add the ``run`` subcommand."""
    p = subparsers.add_parser("run", help="run closed-loop MPC episodes with a trained world model")
    p.add_argument("env_id", metavar="ENV_ID", help="Gymnasium env id, e.g. mpc_grasp/GridWorldWall-v0")
    p.add_argument("--model", required=True, metavar="CKPT", help="world-model checkpoint from `mpc-grasp train`")
    p.add_argument("--planner", choices=("grasp", "cem", "mppi", "gd"), default="grasp")
    p.add_argument("--horizon", type=int, default=50, help="planning horizon (control steps)")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="seed of the first reset (later episodes continue the env RNG)")
    p.add_argument("--replan-every", type=int, default=1, help="execute this many planned actions between plans")
    p.add_argument("--replan-threshold", type=float, default=None,
                   help="replan early when the state leaves the planned one by more than this distance")
    p.add_argument("--iterations", type=int, default=None, help="planner iterations per plan (upper bound)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="planner_options",
                   help="planner option, e.g. num_candidates=8, dense_goal_weight=0.1, goal_tolerance=0.3 (repeatable)")
    p.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=True,
                   help="warm-start each plan from the previous one")
    p.add_argument("--goal", default=None, metavar="JSON",
                   help="goal state as a JSON list (default: the env's goal from dict observations or info['goal'])")
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="env constructor kwarg (repeatable), e.g. task=across")
    p.add_argument("--max-steps", type=int, default=None, help="cap on steps per episode (default: the env's time limit)")
    p.add_argument("--out-dir", default=None, help="output folder (default: runs/<env name>)")
    p.add_argument("--gif", action=argparse.BooleanOptionalAction, default=True, help="write a GIF of the first episode")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from mpc_grasp.agent import GraspMPC
    from mpc_grasp.cli import CLIError, parse_key_value
    from mpc_grasp.data import make_env
    from mpc_grasp.evaluation import check_model_matches_env, plot_episodes, run_episodes, save_gif, summarize_episodes
    from mpc_grasp.models import load_world_model
    from mpc_grasp.planners import PlanningError

    torch.set_num_threads(max(1, args.threads))
    for name in ("horizon", "episodes", "replan_every"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.iterations is not None and args.iterations < 1:
        raise CLIError(f"--iterations must be >= 1, got {args.iterations}")
    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"device {args.device!r} requested but CUDA is not available")
    env_kwargs = parse_key_value(args.env_kwarg)
    options = parse_key_value(args.planner_options)
    if args.iterations is not None:
        options["iterations"] = args.iterations
    goal = None
    if args.goal is not None:
        try:
            goal = json.loads(args.goal)
        except json.JSONDecodeError as error:
            raise CLIError(f"--goal must be a JSON list of numbers, got {args.goal!r} ({error})") from None

    env = make_env(args.env_id, **env_kwargs)  # clear error for an unknown id / bad kwargs
    gif = args.gif
    if gif and "rgb_array" not in (env.metadata.get("render_modes") or []):
        print(f"mpc-grasp run: warning: {args.env_id} cannot render rgb_array frames; no GIF", file=sys.stderr)
        gif = False
    if gif:
        env.close()
        env = make_env(args.env_id, render_mode="rgb_array", **env_kwargs)

    model = load_world_model(args.model, device=args.device)
    obs_key = getattr(model, "obs_key", None) or "observation"
    for warning in check_model_matches_env(model, env, obs_key=obs_key):
        print(f"mpc-grasp run: warning: {warning}", file=sys.stderr)
    agent = GraspMPC(
        model, args.planner, horizon=args.horizon, action_space=env.action_space, goal=goal,
        replan_every=args.replan_every, replan_threshold=args.replan_threshold, warm_start=args.warm_start,
        obs_key=obs_key, device=args.device, **options,
    )
    print(f"{args.planner} MPC on {args.env_id}: horizon {args.horizon}, {args.episodes} episodes, planner {agent.planner.config}")
    try:
        records = run_episodes(env, agent, args.episodes, seed=args.seed, max_steps=args.max_steps,
                               record_frames=1 if gif else 0, obs_key=obs_key, progress=not args.no_progress)
    except PlanningError as error:
        raise CLIError(str(error)) from None
    summary = summarize_episodes(records)

    out_dir = Path(args.out_dir) if args.out_dir else Path("runs") / re.sub(r"[^A-Za-z0-9_.-]+", "_", args.env_id.split("/")[-1])
    out_dir.mkdir(parents=True, exist_ok=True)
    lo, hi = summary["success_ci95"]
    title = f"{args.planner} MPC, H={args.horizon}: {summary['successes']}/{summary['episodes']} episodes reached the goal"
    plot_path = plot_episodes(env, records, out_dir / "plans.png", title=title)
    gif_path = None
    if gif:
        fps = int(env.metadata.get("render_fps") or 10)
        gif_path = save_gif(records[0].frames, out_dir / "episode.gif", fps=fps)
    env.close()
    meta = getattr(model, "metadata", {}) or {}
    payload = {
        "arguments": {k: v for k, v in vars(args).items() if k != "handler"},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env_id": args.env_id,
        "env_kwargs": env_kwargs,
        "model": str(args.model),
        "model_trained_on": {"env_id": meta.get("env_id"), "env_kwargs": meta.get("env_kwargs")},
        "planner": args.planner,
        "planner_config": {k: v for k, v in vars(agent.planner.config).items()},
        "planner_options": options,
        "horizon": args.horizon,
        "replan_every": args.replan_every,
        "replan_threshold": args.replan_threshold,
        "warm_start": args.warm_start,
        "seed": args.seed,
        **summary,
        "episodes_detail": [record.to_json() for record in records],
        "outputs": {"plot": str(plot_path), "gif": None if gif_path is None else str(gif_path)},
    }
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(payload, indent=2, default=_json_default))

    to_goal = summary["mean_steps_to_goal"]
    plan_time = summary["median_plan_time_s"]
    print(
        f"success {summary['successes']}/{summary['episodes']} = {summary['success_rate']:.2f} "
        f"[{lo:.2f}, {hi:.2f}] (95% Wilson) | success at any step {summary['success_any_rate']:.2f} | "
        f"mean return {summary['mean_return']:.2f} | steps to goal "
        f"{'-' if to_goal is None else f'{to_goal:.1f}'} | median plan time "
        f"{'-' if plan_time is None else f'{plan_time:.3f} s'} over {summary['plans']} plans"
    )
    print(f"wrote {summary_path}, {plot_path}" + (f", {gif_path}" if gif_path else ""))
    return 0


def _json_default(value: Any) -> Any:
    """numpy scalars/arrays and tuples in configs -> JSON."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)
