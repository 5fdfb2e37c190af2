"""``mpc-grasp mbrl ENV_ID``: the model-based RL loop (:func:`mpc_grasp.rl.mbrl.run_mbrl`) from the command line."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from mpc_grasp.cli.commands import CLIError, parse_key_value, writable_folder
from mpc_grasp.data import make_env
from mpc_grasp.rl.mbrl import (
    MBRL_RECIPES,
    MBRLConfig,
    finished_rounds,
    interrupted_phase,
    mbrl_recipe,
    resume_conflicts,
    run_mbrl,
)

__all__ = ["config_from_args", "register_mbrl"]

_CONFIG_FLAGS = (
    "rounds",
    "seed_steps",
    "steps_per_round",
    "planner",
    "horizon",
    "reward",
    "terminal_value",
    "learn_termination",
    "epochs",
    "warm_start",
    "retrain_epochs",
    "rollout_steps",
    "eval_episodes",
    "seed",
)
"""``MBRLConfig`` fields set by a flag of the same name (only when the flag is given)."""

_FLAG_OF_FIELD = {
    **{name: "--" + name.replace("_", "-") for name in (*_CONFIG_FLAGS, "hidden_sizes")},
    "env_kwargs": "--env-kwarg",
    "planner_options": "--set",
}
"""The command-line flag of each ``MBRLConfig`` field that has one."""


def register_mbrl(subparsers: Any) -> None:
    """Add the ``mbrl`` subcommand. Flags left out take the env's recipe (:func:`mbrl_recipe`) where it has
    one, else the ``MBRLConfig`` defaults."""
    p = subparsers.add_parser(
        "mbrl", help="model-based RL loop: collect, train a world model with a reward head, act with GraspMPC, repeat"
    )
    p.add_argument(
        "env_id", metavar="ENV_ID", help="Gymnasium env id with a bounded Box action space, e.g. Pendulum-v1"
    )
    p.add_argument("--rounds", type=int, help="rounds of agent data after the random seed round")
    p.add_argument(
        "--out-dir", required=True, help="output folder (checkpoints per round, history.json, learning_curve.png)"
    )
    p.add_argument("--seed-steps", type=int, help="random-exploration steps of round 0")
    p.add_argument("--steps-per-round", type=int, help="agent env steps per round")
    p.add_argument(
        "--planner",
        choices=("grasp", "cem", "icem", "mppi", "gd"),
        help="planner inside GraspMPC (a new one drops the recipe's options)",
    )
    p.add_argument("--horizon", type=int)
    p.add_argument(
        "--reward", choices=("learned", "known"), help="plan with the model's reward head, or the env's known formula"
    )
    p.add_argument(
        "--terminal-value",
        action="store_true",
        default=None,
        help="learn V(s) by TD(0) and plan with it as terminal value",
    )
    p.add_argument(
        "--learn-termination",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train a termination head on the data's terminated flags and plan with the return of an episode "
        "that may end (default: when the random seed data holds a termination)",
    )
    p.add_argument("--hidden-sizes", help="world-model hidden layers, e.g. 200,200")
    p.add_argument("--epochs", type=int, help="epochs of each fit from scratch")
    p.add_argument(
        "--warm-start", action="store_true", default=None, help="refit each round from the previous round's model"
    )
    p.add_argument("--retrain-epochs", type=int, help="epochs of each warm refit (with --warm-start)")
    p.add_argument("--rollout-steps", type=int, help="also train the model on its own rollouts of this many steps")
    p.add_argument("--eval-episodes", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        dest="planner_options",
        help="planner option (replaces the recipe's planner options), e.g. iterations=50 (repeatable)",
    )
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE", help="env constructor kwarg (repeatable)")
    p.add_argument(
        "--eval-workers",
        type=int,
        default=1,
        help="run each round's evaluation episodes in this many Ray worker processes (needs mpc-grasp[ray])",
    )
    p.add_argument("--resume", action="store_true", help="continue in --out-dir, skipping finished rounds")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=_run_mbrl_command)


def config_from_args(args: argparse.Namespace) -> MBRLConfig:
    """The ``MBRLConfig`` of an ``mbrl`` command line: the env's recipe (or the defaults) with the flags given."""
    from mpc_grasp.cli.run import typed_planner_options

    given: dict[str, Any] = {name: getattr(args, name) for name in _CONFIG_FLAGS if getattr(args, name) is not None}
    if args.hidden_sizes is not None:
        try:
            given["hidden_sizes"] = tuple(int(size) for size in str(args.hidden_sizes).split(",") if size.strip())
        except ValueError:
            raise CLIError(f"--hidden-sizes must be comma-separated integers, got {args.hidden_sizes!r}") from None
    if args.env_kwarg:
        given["env_kwargs"] = parse_key_value(args.env_kwarg, flag="--env-kwarg")
    if args.planner_options:
        planner = given.get("planner", MBRL_RECIPES.get(args.env_id, {}).get("planner", MBRLConfig.planner))
        given["planner_options"] = typed_planner_options(args.planner_options, planner)
    try:
        return (
            mbrl_recipe(args.env_id, **given)
            if args.env_id in MBRL_RECIPES
            else MBRLConfig(env_id=args.env_id, **given)
        )
    except ValueError as error:
        raise CLIError(_in_flag_words(str(error))) from None


def _in_flag_words(message: str) -> str:
    """``message`` with a leading ``MBRLConfig`` field name replaced by its flag (``seed_steps`` -> ``--seed-steps``)."""
    field = re.match(r"\w+", message)
    if field is None or field.group() not in _FLAG_OF_FIELD:
        return message
    return _FLAG_OF_FIELD[field.group()] + message[field.end() :]


def _resume_line(args: argparse.Namespace, config: MBRLConfig) -> str | None:
    """Check ``--out-dir`` against ``--resume`` (a ``CLIError`` in flag words) and, with ``--resume``, return the
    line that says where the run continues."""
    out = writable_folder(args.out_dir, "--out-dir")
    if not args.resume:
        if any(out.glob("round_*")):
            raise CLIError(
                f"--out-dir {out} already holds rounds of a run: add --resume to continue it, or use an empty folder"
            )
        return None
    differing = resume_conflicts(out, config)
    if differing:
        changes = ", ".join(f"{_FLAG_OF_FIELD.get(k, k)} (saved {s!r}, now {g!r})" for k, (s, g) in differing.items())
        raise CLIError(f"cannot --resume in {out}: its run used other settings: {changes}")
    done, phase = finished_rounds(out), interrupted_phase(out)
    within = "" if phase is None else f", phase {phase} (its earlier phases are kept)"
    if done == 0:
        return f"--resume: no finished round in {out}; starting at round 0{within}"
    if done > config.rounds:
        return f"--resume: all {done} rounds in {out} are finished; nothing left to run"
    kept = "round 0 is" if done == 1 else f"rounds 0-{done - 1} are"
    return f"resuming at round {done}{within} in {out}: {kept} finished and kept, {config.rounds + 1 - done} to run"


def _run_mbrl_command(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    env = make_env(args.env_id, **parse_key_value(args.env_kwarg, flag="--env-kwarg"))  # clear error for an unknown id
    if not isinstance(env.action_space, gym.spaces.Box):
        raise CLIError(f"{args.env_id} has a {type(env.action_space).__name__} action space; mbrl needs a bounded Box")
    env.close()
    config = config_from_args(args)
    line = _resume_line(args, config)
    if line:
        print(line, flush=True)
    records = run_mbrl(
        config, args.out_dir, resume=args.resume, progress=not args.no_progress, eval_workers=args.eval_workers
    )
    for record in records:
        success = "" if record.success_rate is None else f", success {record.success_rate:.2f}"
        print(
            f"round {record.round}: {record.env_steps} env steps, mean return {record.mean_return:.1f} ± {record.std_return:.1f}{success}"
        )
    if records:
        how = (
            "decided on the seed data"
            if config.learn_termination is None
            else ("set by --learn-termination" if args.learn_termination is not None else "the env's recipe")
        )
        learned = "a learned termination head" if records[-1].learned_termination else "no termination head"
        print(f"planned with {learned} ({how})")
    print(f"wrote {Path(args.out_dir) / 'history.json'}, {Path(args.out_dir) / 'learning_curve.png'}")
    return 0
