"""``mpc-grasp run ENV_ID --model CKPT``: closed-loop GraspMPC episodes with a saved world model.

Works on any Gymnasium env with a bounded Box action space. Plugged into
:data:`mpc_grasp.cli.commands.COMMANDS`. Prints the success rate (Wilson 95% interval; "n/a" for envs that do
not report ``info["is_success"]``), mean return, steps to goal and median planning time per plan;
writes ``summary.json``, ``episode.gif`` (the first episode, from the env's ``rgb_array`` renders;
on grid worlds with the path so far and the current plan drawn on) and ``plans.png`` (executed path
vs labelled planned rollouts and GRASP's virtual states) under ``--out-dir``.

User errors (no goal, a ``--goal`` of the wrong length, a discrete action space, a ``--set`` value
of the wrong type) are raised as one-line ``CLIError``s naming the flag, before any planning.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np

from mpc_grasp.atomic import atomic_write_text
from mpc_grasp.cli.commands import (
    CLIError,
    convert_option,
    parse_key_value,
    plural,
    split_key_value,
    writable_folder,
)

__all__ = ["planner_option_types", "register_run", "typed_planner_options"]


def register_run(subparsers: Any) -> None:
    """Add the ``run`` subcommand."""
    p = subparsers.add_parser("run", help="run closed-loop MPC episodes with a trained world model")
    p.add_argument("env_id", metavar="ENV_ID", help="Gymnasium env id, e.g. mpc_grasp/GridWorldWall-v0")
    p.add_argument("--model", required=True, metavar="CKPT", help="world-model checkpoint from `mpc-grasp train`")
    p.add_argument("--planner", choices=("grasp", "cem", "icem", "mppi", "gd"), default="grasp")
    p.add_argument("--horizon", type=int, default=50, help="planning horizon (control steps)")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="seed of the first reset (later episodes continue the env RNG)")
    p.add_argument("--replan-every", type=int, default=1, help="execute this many planned actions between plans")
    p.add_argument(
        "--replan-threshold",
        type=float,
        default=None,
        help="replan early when the state leaves the planned one by more than this distance",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="planner iterations per cold plan, and an upper bound for warm-started replans (default: the planner's)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        dest="planner_options",
        help="planner option, parsed to the option's type: e.g. num_candidates=8, dense_goal_weight=0.1, "
        "goal_tolerance=0.3, warm_iterations=null, keep_solved_warm_start=false (repeatable)",
    )
    p.add_argument(
        "--warm-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="warm-start each plan from the previous one",
    )
    p.add_argument(
        "--goal",
        default=None,
        metavar="JSON",
        help="goal state as a JSON list, one number per model state dim, e.g. '[1, 0, 0]' for Pendulum-v1 "
        "(default: the env's goal from dict observations or info['goal']; required for envs without one)",
    )
    p.add_argument(
        "--env-kwarg", action="append", metavar="KEY=VALUE", help="env constructor kwarg (repeatable), e.g. task=across"
    )
    p.add_argument(
        "--max-steps", type=int, default=None, help="cap on steps per episode (default: the env's time limit)"
    )
    p.add_argument("--out-dir", default=None, help="output folder (default: runs/<env name>)")
    p.add_argument(
        "--gif", action=argparse.BooleanOptionalAction, default=True, help="write a GIF of the first episode"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    """``mpc-grasp run``: check every input and the output folder, run the episodes, write the outputs."""
    from mpc_grasp.control.episodes import check_model_matches_env, run_episodes, summarize_episodes
    from mpc_grasp.models import load_world_model
    from mpc_grasp.planners import PlanningError

    env_kwargs, options, goal = _checked_inputs(args)
    out_dir = _output_folder(args)  # before any compute: an unwritable folder fails now, not after the episodes
    env, gif = _open_env(args, env_kwargs)
    _warn_long_horizon(args, env)
    model: Any = load_world_model(args.model, device=args.device)  # a world model: state_dim, action_dim, ...
    obs_key = getattr(model, "obs_key", None) or "observation"
    for warning in check_model_matches_env(model, env, obs_key=obs_key):
        print(f"mpc-grasp run: warning: {warning}", file=sys.stderr)
    goal_key = str(options.get("goal_key", "desired_goal"))
    _check_goal(goal, env, args.env_id, int(model.state_dim), args.seed, goal_key)  # before any planning
    agent = _make_agent(model, env, goal, obs_key, options, args)
    print(f"{args.planner} MPC on {args.env_id}: horizon {args.horizon}, {plural(args.episodes, 'episode')}")
    try:
        records = run_episodes(
            env,
            agent,
            args.episodes,
            seed=args.seed,
            max_steps=args.max_steps,
            record_frames=1 if gif else 0,
            obs_key=obs_key,
            goal_key=goal_key,
            goal_from_info=goal is None,  # --goal wins over an env's info["goal"], as over its dict goal
            progress=not args.no_progress,
        )
    except PlanningError as error:
        raise CLIError(str(error)) from None
    if goal is not None:  # the goal every episode planned to (the records hold the env's own, if any)
        records = [dataclasses.replace(record, goal=goal) for record in records]
    summary = summarize_episodes(records)
    outputs = _write_media(env, records, summary, args, out_dir, goal, gif)
    env.close()
    payload = _summary_payload(args, env_kwargs, model, agent, options, goal, summary, records, outputs)
    summary_path = atomic_write_text(out_dir / "summary.json", json.dumps(payload, indent=2, default=_json_default))
    print(_summary_line(summary, args.env_id))
    print(f"wrote {summary_path}, " + ", ".join(str(path) for path in outputs.values() if path))
    return 0


def _checked_inputs(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(env kwargs, planner options, goal) from the flags, each bad value a ``CLIError`` line."""
    import torch

    torch.set_num_threads(max(1, args.threads))
    for name in ("horizon", "episodes", "replan_every"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.iterations is not None and args.iterations < 1:
        raise CLIError(f"--iterations must be >= 1, got {args.iterations}")
    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"device {args.device!r} requested but CUDA is not available")
    env_kwargs = parse_key_value(args.env_kwarg, flag="--env-kwarg")
    options = typed_planner_options(args.planner_options, args.planner)
    if args.iterations is not None:
        if "iterations" in options:
            raise CLIError(
                f"--iterations {args.iterations} and --set iterations={options['iterations']} both given; use one"
            )
        options["iterations"] = args.iterations  # also caps warm and first plans (PlannerConfig.resolve)
    return env_kwargs, options, _parse_goal(args.goal)


def _output_folder(args: argparse.Namespace) -> Path:
    """The output folder (``--out-dir``, else ``runs/<env>``), created and checked writable."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", args.env_id.split("/")[-1])
    return writable_folder(Path(args.out_dir) if args.out_dir else Path("runs") / name, "--out-dir")


def _warn_long_horizon(args: argparse.Namespace, env: Any) -> None:
    """One warning line when ``--horizon`` exceeds the episode limit (``--max-steps`` or the env's
    ``max_episode_steps``, the smaller one known); nothing when no limit is known."""
    spec_limit = env.spec.max_episode_steps if env.spec is not None else None
    named = [(args.max_steps, "--max-steps"), (spec_limit, f"{args.env_id}'s max_episode_steps")]
    limits = [(int(limit), name) for limit, name in named if limit is not None]
    if limits and args.horizon > min(limits)[0]:
        limit, name = min(limits)
        print(
            f"mpc-grasp run: warning: --horizon {args.horizon} is longer than the episode limit of {limit} steps "
            f"({name}); plan steps past the episode's end are never executed",
            file=sys.stderr,
        )


def _open_env(args: argparse.Namespace, env_kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """The env (rendering frames when a GIF is asked for and the env can) and whether a GIF is recorded."""
    from mpc_grasp.data import make_env

    env = make_env(args.env_id, **env_kwargs)  # clear error for an unknown id / bad kwargs
    _require_box_actions(env, args.env_id)
    gif = bool(args.gif)
    if gif and "rgb_array" not in (env.metadata.get("render_modes") or []):
        print(f"mpc-grasp run: warning: {args.env_id} cannot render rgb_array frames; no GIF", file=sys.stderr)
        gif = False
    if gif:
        env.close()
        env = make_env(args.env_id, render_mode="rgb_array", **env_kwargs)
    return env, gif


def _write_media(
    env: Any, records: Any, summary: dict[str, Any], args: argparse.Namespace, out_dir: Path, goal: Any, gif: bool
) -> dict[str, Path | None]:
    """``plans.png`` and, when recorded, ``episode.gif``; their paths."""
    from mpc_grasp.control.media import annotate_frames, plot_episodes, save_gif

    plot_path = plot_episodes(env, records, out_dir / "plans.png", title=_plot_title(summary, args), goal=goal)
    gif_path = None
    if gif:
        fps = int(env.metadata.get("render_fps") or 10)
        gif_path = save_gif(annotate_frames(env, records[0]), out_dir / "episode.gif", fps=fps)
    return {"plot": plot_path, "gif": gif_path}


def _summary_payload(
    args: argparse.Namespace,
    env_kwargs: dict[str, Any],
    model: Any,
    agent: Any,
    options: dict[str, Any],
    goal: Any,
    summary: dict[str, Any],
    records: Any,
    outputs: dict[str, Path | None],
) -> dict[str, Any]:
    """``summary.json``: the command's arguments, the resolved planner config and schedule, the results."""
    meta = getattr(model, "metadata", {}) or {}
    return {
        "arguments": {k: v for k, v in vars(args).items() if k != "handler"},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env_id": args.env_id,
        "env_kwargs": env_kwargs,
        "model": str(args.model),
        "model_trained_on": {"env_id": meta.get("env_id"), "env_kwargs": meta.get("env_kwargs")},
        "planner": args.planner,
        "planner_config": dict(vars(agent.planner.config)),  # resolved: the values that ran
        "schedule": dict(vars(agent.schedule)),
        "planner_options": options,
        "horizon": args.horizon,
        "replan_every": args.replan_every,
        "replan_threshold": args.replan_threshold,
        "warm_start": args.warm_start,
        "seed": args.seed,
        "goal": None if goal is None else np.asarray(goal).tolist(),
        **summary,
        "episodes_detail": [record.to_json() for record in records],
        "outputs": {name: None if path is None else str(path) for name, path in outputs.items()},
    }


# --------------------------------------------------------------------------- --set planner options

_NOT_FOR_SET = {
    "horizon": "use --horizon instead",
    "replan_every": "use --replan-every instead",
    "replan_threshold": "use --replan-threshold instead",
    "warm_start": "use --warm-start / --no-warm-start instead",
    "goal": "use --goal instead",
    "goal_observation": "use --goal (a state vector) instead",
    "device": "use --device instead",
    "planner": "use --planner instead",
    "model": "use --model instead",
    "action_space": "the env's action space is used",
    "obs_key": "the checkpoint's obs_key is used",
    "running_cost": "a Python callable cannot be given on the command line; use GraspMPC from Python",
    "callback": "a Python callable cannot be given on the command line; use GraspMPC from Python",
    "reward_fn": "a Python callable cannot be given on the command line; use GraspMPC from Python or `mpc-grasp mbrl`",
    "terminal_value": "a Python callable cannot be given on the command line; use GraspMPC from Python or `mpc-grasp mbrl --terminal-value`",
    "termination_fn": "a Python callable cannot be given on the command line; use GraspMPC from Python or `mpc-grasp mbrl --learn-termination`",
}
"""GraspMPC/planner arguments that ``mpc-grasp run`` sets from its own flags (or the env/model), or
that cannot come from a command line: --set refuses them, saying what to do instead."""


def planner_option_types(planner: str) -> dict[str, tuple[Any, str]]:
    """``option -> (annotation, "Owner.field")`` for every typed option of ``planner``: its config
    dataclass fields, the planner's keyword arguments, GraspMPC's.

    Found generically (``dataclasses.fields`` + ``typing.get_type_hints``), so renamed or new options
    need no change here; options not found are passed through as JSON.
    """
    from mpc_grasp.control.agent import GraspMPC
    from mpc_grasp.planners import PLANNERS

    planner_class = PLANNERS[planner]
    config_class = planner_class.config_class
    hints = typing.get_type_hints(config_class)
    types_: dict[str, tuple[Any, str]] = {}
    # GraspMPC's arguments, then the planner's (base class first: subclasses may forward **kwargs)
    owners: list[type[Any]] = [
        GraspMPC,
        *(cls for cls in reversed(planner_class.__mro__) if "__init__" in vars(cls) and cls is not object),
    ]
    for owner in owners:
        for name, annotation in _keyword_hints(owner.__init__).items():
            types_[name] = (annotation, f"{owner.__name__}.{name}")
    for item in dataclasses.fields(config_class):
        types_[item.name] = (hints.get(item.name, Any), f"{config_class.__name__}.{item.name}")
    return types_


def _keyword_hints(function: Any) -> dict[str, Any]:
    """Annotations of ``function``'s keyword-only parameters (the options; positional ones such as
    model and horizon are set by the command itself)."""
    hints = typing.get_type_hints(function)
    return {
        name: hints.get(name, Any)
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def typed_planner_options(items: list[str] | None, planner: str) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as planner options, each value parsed to its option's type.

    ``num_candidates=abc`` raises a one-line ``CLIError`` naming the option and the expected type.
    Unknown keys pass through (as JSON) for the planner to reject with its list of valid options.
    """
    known = planner_option_types(planner)
    options: dict[str, Any] = {}
    for key, raw in split_key_value(items, flag="--set"):
        if key in _NOT_FOR_SET:
            raise CLIError(f"--set {key}={raw}: {_NOT_FOR_SET[key]}")
        annotation, where = known.get(key, (Any, key))
        try:
            options[key] = convert_option(raw, annotation)
        except ValueError as error:
            raise CLIError(f"--set {key}={raw}: {error} for {where}") from None
    return options


def _non_config_options(planner: str) -> list[str]:
    """--set options outside the planner's config: the agent's and the planner's own (dense_goal_weight, ...)."""
    from mpc_grasp.planners import PLANNERS

    config_class = PLANNERS[planner].config_class
    config_names = {item.name for item in dataclasses.fields(config_class)}
    return sorted(set(planner_option_types(planner)) - config_names - set(_NOT_FOR_SET))


def _make_agent(
    model: Any, env: Any, goal: np.ndarray | None, obs_key: str, options: dict[str, Any], args: argparse.Namespace
) -> Any:
    """GraspMPC for the run; option errors become one-line CLIErrors that point at --set."""
    from mpc_grasp.control.agent import GraspMPC

    try:
        return GraspMPC(
            model,
            args.planner,
            horizon=args.horizon,
            action_space=env.action_space,
            goal=goal,
            replan_every=args.replan_every,
            replan_threshold=args.replan_threshold,
            warm_start=args.warm_start,
            obs_key=obs_key,
            device=args.device,
            **options,
        )
    except TypeError as error:  # unknown option names (the planner lists its config's valid ones)
        raise CLIError(f"--set: {error}; also accepted: {_non_config_options(args.planner)}") from None
    except ValueError as error:  # an option's value out of range, e.g. num_candidates=0
        given = " ".join(f"--set {item}" for item in args.planner_options or ())
        if not given and args.iterations is None:
            raise
        raise CLIError(
            f"planner options rejected: {error} (given: {given or f'--iterations {args.iterations}'})"
        ) from None


# --------------------------------------------------------------------------- checks before planning


def _parse_goal(text: str | None) -> np.ndarray | None:
    """``--goal`` as a finite float vector (None when not given)."""

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CLIError(f"--goal must be a JSON list of numbers, got {text!r} ({error})") from None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise CLIError(f"--goal must be a non-empty JSON list of numbers, e.g. '[1, 0, 0]', got {text!r}")
    goal = np.asarray(value, dtype=np.float64)
    if not np.isfinite(goal).all():
        raise CLIError(f"--goal must be finite, got {text!r}")
    return goal


def _require_box_actions(env: Any, env_id: str) -> None:
    """Planners optimise continuous actions: refuse Discrete/MultiDiscrete/... and unbounded Boxes."""
    import gymnasium as gym

    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise CLIError(f"mpc-grasp run needs a Box (continuous) action space; {env_id} has {space}")
    if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        raise CLIError(f"mpc-grasp run needs a bounded Box action space (finite low/high); {env_id} has {space}")


def _check_goal(goal: np.ndarray | None, env: Any, env_id: str, state_dim: int, seed: int, goal_key: str) -> None:
    """``--goal`` must have ``state_dim`` numbers; without it the env must announce a goal (dict
    observations with ``goal_key``, or ``info["goal"]`` at reset, probed with one seeded reset)."""
    from mpc_grasp.control.episodes import env_goal_state

    if goal is not None:
        if goal.shape != (state_dim,):
            raise CLIError(
                f"--goal has {plural(goal.size, 'number')} but the model's state has {state_dim}; "
                f"pass --goal '[...]' with {plural(state_dim, 'number')}"
            )
        return
    observation, info = env.reset(seed=seed)
    if env_goal_state(observation, info, goal_key) is None:
        example = np.asarray(observation, dtype=np.float64).ravel() if not isinstance(observation, dict) else None
        hint = (
            f", e.g. a state like its first observation {np.round(example, 2).tolist()}"
            if example is not None and example.size == state_dim
            else ""
        )
        raise CLIError(
            f"{env_id} has no goal in its observations; pass --goal '[...]' (a JSON list of {plural(state_dim, 'number')}{hint})"
        )


# --------------------------------------------------------------------------- printed output


def _summary_line(summary: dict[str, Any], env_id: str) -> str:
    """One line: success (or "n/a" when the env does not report it), return, steps to goal, plan time."""
    n, m = summary["episodes"], summary["success_episodes"]
    parts = []
    if summary["successes"] is None:
        parts.append(f"success n/a ({env_id} does not report info['is_success'])")
    else:
        lo, hi = summary["success_ci95"]
        reported = "" if m == n else f" ({m} of {plural(n, 'episode')} reported success)"
        parts.append(
            f"success {summary['successes']}/{m} = {summary['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] (95% Wilson){reported}"
        )
        parts.append(f"success at any step {summary['success_any_rate']:.2f}")
    spread = f" (std {summary['std_return']:.2f})" if n > 1 else ""
    parts.append(f"mean return {summary['mean_return']:.2f}{spread} over {plural(n, 'episode')}")
    if summary["successes"] is not None:
        to_goal = summary["mean_steps_to_goal"]
        parts.append(f"steps to goal {'-' if to_goal is None else f'{to_goal:.1f}'}")
    plan_time = summary["median_plan_time_s"]
    parts.append(
        f"median plan time {'-' if plan_time is None else f'{plan_time:.3f} s'} over {plural(summary['plans'], 'plan')}"
    )
    return " | ".join(parts)


def _plot_title(summary: dict[str, Any], args: argparse.Namespace) -> str:
    """plans.png's title: how many episodes reached the goal, or the mean return without success."""
    head = f"{args.planner} MPC on {args.env_id}, H={args.horizon}"
    if summary["successes"] is None:
        return f"{head}: mean return {summary['mean_return']:.1f} over {plural(summary['episodes'], 'episode')}"
    return f"{head}: {summary['successes']} of {plural(summary['success_episodes'], 'episode')} reached the goal"


def _json_default(value: Any) -> Any:
    """numpy scalars/arrays and tuples in configs -> JSON."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)
