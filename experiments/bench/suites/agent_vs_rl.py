"""Suite: GraspMPC in closed loop with a learned MLP world model vs the RL baselines, at equal env-step budgets.

Per env: collect ``--grid-steps`` / ``--cartpole-steps`` transitions (the "same" budgets of
``experiments/rl_baselines.py``: 20k and 30k) with correlated random exploration, train an MLP
world model on them, then run ``GraspMPC`` episodes through :func:`mpc_grasp.control.episodes.run_episodes`
seeded like :func:`mpc_grasp.rl.baselines.evaluate_agent` (``--eval-seed`` 1000, ``--n-eval`` 50), so the
k-th start/goal is the one PPO/SAC faced. Rows:

* ``wall_across``: grid world ``wall``, start/goal in opposite rooms (the RL baselines' evaluation);
* ``wall_random``: the same model, start/goal anywhere in free space (no RL counterpart);
* ``cartpole``: cart-pole swing-up, goal = upright at rest (``info["goal"]``).

Each env is one work unit of the engine (resume log ``<out>/<stem>.partial.jsonl``, ``--resume``);
models are cached in ``--model-dir`` (reused when the data budget and seed match). Planner and
agent options are flags (``--horizon``, ``--iterations``, ``--replan-every``, ...; ``--set
KEY=VALUE`` for any planner option, ``--set ENV:KEY=VALUE`` for one env only, e.g.
``--set dense_goal_weight=0.1 --set cartpole:state_weights=[0.2,0.1,1,1,0.1]``).

Writes ``results/agent_vs_rl.json`` (every run, settings, per-episode results, command, commit)
and ``results/agent_vs_rl.md`` (one table with the PPO/SAC rows of ``results/rl_baselines.json``).
``--quick`` is a smoke run (2k steps, 2 short episodes) writing ``agent_vs_rl_quick.{json,md}``.

    python experiments/closed_loop.py                      # full (tens of minutes to hours on 2 CPUs)
    python experiments/closed_loop.py --quick
    python experiments/closed_loop.py --envs cartpole --set cartpole:num_candidates=8
"""

from __future__ import annotations

import argparse
import functools
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bench.engine import REPO_ROOT, ResumeLog, WorkUnit, run_units
from bench.report import command_line, write_report
from bench.suites.real_env import load_or_train_mlp, load_rl_runs
from mpc_grasp.cli.commands import parse_key_value
from mpc_grasp.control.agent import GraspMPC
from mpc_grasp.control.episodes import check_model_matches_env, run_episodes, summarize_episodes
from mpc_grasp.data import make_env


@dataclass(frozen=True)
class AgentSettings:
    """GraspMPC settings for one env (planner options go to the planner config / constructor)."""

    planner: str = "grasp"
    horizon: int = 50
    iterations: int = 300
    replan_every: int = 10
    replan_threshold: float | None = None
    goal_tolerance: float | None = None
    warm_start: bool = True
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class EnvSpec:
    """One row family: env id, eval kwargs, data budget flag, RL baseline key, default agent settings."""

    env_id: str
    eval_kwargs: tuple[tuple[str, Any], ...]
    budget_arg: str
    model_key: str
    rl_key: str | None
    agent: AgentSettings


ENVS: dict[str, EnvSpec] = {
    "wall_across": EnvSpec(
        "mpc_grasp/GridWorldWall-v0",
        (("task", "across"),),
        "grid_steps",
        "wall",
        "wall",
        AgentSettings(replan_threshold=0.2, goal_tolerance=0.3),
    ),
    "wall_random": EnvSpec(
        "mpc_grasp/GridWorldWall-v0",
        (("task", "random"),),
        "grid_steps",
        "wall",
        None,
        AgentSettings(replan_threshold=0.2, goal_tolerance=0.3),
    ),
    "cartpole": EnvSpec(
        "mpc_grasp/CartPoleSwingup-v0",
        (),
        "cartpole_steps",
        "cartpole",
        "cartpole",
        AgentSettings(iterations=100, replan_every=5),
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring); unset agent flags keep each env's default."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--envs", nargs="+", choices=sorted(ENVS), default=list(ENVS))
    p.add_argument(
        "--grid-steps", type=int, default=20_000, help="world-model data on the grid world (RL 'same' budget)"
    )
    p.add_argument(
        "--cartpole-steps", type=int, default=30_000, help="world-model data on cart-pole (RL 'same' budget)"
    )
    p.add_argument("--train-seconds", type=float, default=120.0, help="wall-time cap of world-model training")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    p.add_argument("--planner", choices=("grasp", "cem", "mppi", "gd"), default=None)
    p.add_argument("--horizon", type=int, default=None)
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--replan-every", type=int, default=None)
    p.add_argument("--replan-threshold", type=float, default=None)
    p.add_argument("--goal-tolerance", type=float, default=None, help="early-stop tolerance of the planner")
    p.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--set",
        action="append",
        metavar="[ENV:]KEY=VALUE",
        dest="options",
        help="planner option for every env, or for ENV only (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="data collection / training seed")
    p.add_argument(
        "--eval-seed", type=int, default=1000, help="seed of the first evaluation episode (as the RL baselines)"
    )
    p.add_argument("--n-eval", type=int, default=50, help="evaluation episodes")
    p.add_argument(
        "--max-steps", type=int, default=None, help="cap on steps per episode (default: the env's time limit)"
    )
    p.add_argument("--rl-results", type=Path, default=REPO_ROOT / "results" / "rl_baselines.json")
    p.add_argument("--model-dir", type=Path, default=REPO_ROOT / "checkpoints" / "closed_loop")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 2k steps, 5 s training, 2 episodes of <= 30 steps, H=20"
    )
    p.add_argument(
        "--resume", action="store_true", help="reuse finished envs of an earlier run with identical settings and code"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.grid_steps, args.cartpole_steps, args.train_seconds, args.n_eval = 2_000, 2_000, 5.0, 2
        args.max_steps = args.max_steps or 30
        args.horizon = args.horizon or 20
        args.iterations = args.iterations or 30
    for name in ("grid_steps", "cartpole_steps", "n_eval", "horizon", "iterations", "replan_every", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    try:
        args.env_options = split_options(args.options)
    except ValueError as error:
        p.error(str(error))
    return args


def split_options(items: list[str] | None) -> dict[str | None, dict[str, Any]]:
    """``["a=1", "cartpole:b=2"]`` -> ``{None: {"a": 1}, "cartpole": {"b": 2}}`` (unknown env names rejected)."""
    result: dict[str | None, dict[str, Any]] = {}
    for item in items or ():
        key = item.partition("=")[0]
        env, sep, _ = key.partition(":")
        if sep and env not in ENVS:
            raise ValueError(f"--set {item!r}: unknown env {env!r}; valid: {sorted(ENVS)}")
        target = env if sep else None
        result.setdefault(target, {}).update(parse_key_value([item.split(":", 1)[1] if sep else item]))
    return result


def agent_settings(name: str, args: argparse.Namespace) -> AgentSettings:
    """The env's defaults, overridden by the flags that were given."""
    settings = ENVS[name].agent
    overrides = {
        key: getattr(args, key)
        for key in (
            "planner",
            "horizon",
            "iterations",
            "replan_every",
            "replan_threshold",
            "goal_tolerance",
            "warm_start",
        )
        if getattr(args, key) is not None
    }
    options = {**dict(settings.options), **args.env_options.get(None, {}), **args.env_options.get(name, {})}
    return replace(settings, **overrides, options=tuple(sorted(options.items())))


def world_model(spec: EnvSpec, steps: int, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Load the cached model for (env, steps, seed, layers), or collect + train + save it; returns (model, info)."""
    path = args.model_dir / f"{spec.model_key}_{steps}_seed{args.seed}{'_quick' if args.quick else ''}.pt"
    print(f"    world model {path} ({steps} transitions of {spec.env_id}; trained here if not cached)", flush=True)
    model, info = load_or_train_mlp(
        spec.env_id, steps, path, seed=args.seed, hidden=args.hidden, train_seconds=args.train_seconds
    )
    print(
        f"    one-step RMSE {info['one_step_rmse']:.4f} on held-out episodes" + (" (cached)" if info["reused"] else ""),
        flush=True,
    )
    return model, info


def run_env(models: dict[str, tuple[Any, dict[str, Any]]], unit: dict[str, Any]) -> dict[str, Any]:
    """One work unit: evaluate GraspMPC on ``n_eval`` seeded episodes of one env with its (shared) world model."""
    torch.set_num_threads(1)
    name, spec, settings = (
        unit["env"],
        ENVS[unit["env"]],
        AgentSettings(**{**unit["agent"], "options": tuple(sorted(unit["agent"]["options"].items()))}),
    )
    model, model_info = models[spec.model_key]
    env = make_env(spec.env_id, **dict(spec.eval_kwargs))
    check_model_matches_env(model, env)
    agent = GraspMPC(
        model,
        settings.planner,
        horizon=settings.horizon,
        action_space=env.action_space,
        replan_every=settings.replan_every,
        replan_threshold=settings.replan_threshold,
        warm_start=settings.warm_start,
        iterations=settings.iterations,
        goal_tolerance=settings.goal_tolerance,
        **dict(settings.options),
    )
    records = run_episodes(env, agent, unit["n_eval"], seed=unit["eval_seed"], max_steps=unit["max_steps"])
    env.close()
    summary = summarize_episodes(records)
    return {
        "env": name,
        "env_id": spec.env_id,
        "eval_env_kwargs": dict(spec.eval_kwargs),
        "rl_key": spec.rl_key,
        "agent": unit["agent"],
        "planner_config": {k: v for k, v in vars(agent.planner.config).items()},
        "model": model_info,
        "data_env_steps": unit["data_steps"],
        "eval_env_steps": summary["env_steps"],
        "eval": summary,
        "episodes_detail": [r.to_json() for r in records],
    }


def _ci(ev: dict[str, Any]) -> str:
    lo, hi = ev["success_ci95"]
    return f"{ev['success_rate']:.2f} [{lo:.2f}, {hi:.2f}]"


def markdown_table(mpc: list[dict[str, Any]], rl: list[dict[str, Any]]) -> str:
    """GraspMPC rows next to the RL rows of the same env, one table."""
    lines = [
        "| env (eval tasks) | method | training env steps | eval env steps | success (95% CI) | success at any step | "
        "mean return ± std | mean length | train / eval time (s) | median plan time (s) |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    order = list(ENVS)
    for run in sorted(mpc, key=lambda r: order.index(r["env"])):
        ev, settings = run["eval"], run["agent"]
        train_time = run["model"].get("collect_train_time_s")
        plan = ev["median_plan_time_s"]
        lines.append(
            f"| {run['env']} | GraspMPC ({settings['planner']}, H={settings['horizon']}, {settings['iterations']} it, "
            f"replan {settings['replan_every']}) + MLP | {run['data_env_steps']:,} | {run['eval_env_steps']:,} | {_ci(ev)} | "
            f"{ev['success_any_rate']:.2f} | {ev['mean_return']:.1f} ± {ev['std_return']:.1f} | {ev['mean_length']:.1f} | "
            f"{'-' if train_time is None else f'{train_time:.0f}'} / {ev['wall_time_s']:.0f} | {'-' if plan is None else f'{plan:.2f}'} |"
        )
        for r in (r for r in rl if r["env"] == run["rl_key"]):
            rev = r["eval"]
            algo = r["algo"].upper() + ("+HER" if r.get("her") else "")
            lines.append(
                f"| {run['env']} | {algo} ({r['budget']} budget) | {r['env_steps']:,} | {rev.get('env_steps', sum(rev.get('episode_lengths', []))):,} | {_ci(rev)} | "
                f"{rev['success_any_rate']:.2f} | {rev['mean_return']:.1f} ± {rev['std_return']:.1f} | {rev['mean_length']:.1f} | "
                f"{r['train_time_s']:.0f} / {rev['eval_time_s']:.0f} | - |"
            )
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The merged table and how to read it."""
    header, rl_header = report, report["rl_baselines"]["source"]
    mismatch = ""
    if rl_header and (rl_header.get("eval_seed") != header["eval_seed"] or rl_header.get("n_eval") != header["n_eval"]):
        mismatch = (
            f"\n\n**Not the same episodes**: RL evaluated with seed {rl_header.get('eval_seed')} on {rl_header.get('n_eval')} "
            f"episodes, GraspMPC with seed {header['eval_seed']} on {header['n_eval']}."
        )
    return (
        "# GraspMPC (learned MLP world model) vs RL baselines, closed loop\n\n"
        f"Finished: {header.get('finished_utc', 'in progress')}  \nRL rows: `{rl_header.get('command')}` (from `{header['rl_results']}`)\n\n"
        f"Evaluation: {header['n_eval']} episodes, first reset seeded with {header['eval_seed']} and later ones continuing the "
        "env RNG (as `mpc_grasp.rl.baselines.evaluate_agent`), so with the same seed and count every method faces the same start/goal "
        'sequence. Success = `info["is_success"]` at the last step; CI = 95% Wilson. GraspMPC\'s training env steps are '
        "the world model's data (random exploration); its eval env steps are the steps acted in the evaluation episodes "
        "(it does not learn from them). RL was trained on the grid world's `random` tasks and evaluated on `across`; "
        f"`wall_random` has no RL row.{mismatch}\n\n{markdown_table(report['runs'], report['rl_baselines']['runs'])}\n"
    )


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Train (or reuse) each env's model, run every env as a work unit, write the report."""
    torch.set_num_threads(1)
    stem = "agent_vs_rl_quick" if args.quick else "agent_vs_rl"
    rl, rl_header = load_rl_runs(args.rl_results)
    units, models = [], {}
    for name in args.envs:
        spec = ENVS[name]
        steps = int(getattr(args, spec.budget_arg))
        if spec.model_key not in models:
            models[spec.model_key] = world_model(spec, steps, args)
        settings = agent_settings(name, args)
        agent = {**asdict(settings), "options": dict(settings.options)}
        model_id = {k: v for k, v in models[spec.model_key][1].items() if k not in ("reused", "collect_train_time_s")}
        task = {
            "env": name,
            "agent": agent,
            "n_eval": args.n_eval,
            "eval_seed": args.eval_seed,
            "max_steps": args.max_steps,
            "data_steps": steps,
        }
        units.append(WorkUnit({"env": name}, {**task, "model": model_id}, task))
    log = ResumeLog(args.out_dir / f"{stem}.partial.jsonl", resume=args.resume)
    runs = run_units(functools.partial(run_env, models), units, log=log, desc="closed-loop envs")
    report = {
        "command": command,
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "seed": args.seed,
        "eval_seed": args.eval_seed,
        "n_eval": args.n_eval,
        "max_steps": args.max_steps,
        "budgets": {"grid_steps": args.grid_steps, "cartpole_steps": args.cartpole_steps},
        "train_seconds": args.train_seconds,
        "hidden": args.hidden,
        "rl_results": str(args.rl_results),
        "quick": args.quick,
        "runs": runs,
        "rl_baselines": {
            "source": rl_header,
            "runs": [
                {
                    **r,
                    "eval": {
                        **{k: v for k, v in r["eval"].items() if not k.startswith("episode_")},
                        "env_steps": sum(r["eval"]["episode_lengths"]),
                    },
                }
                for r in rl
            ],
        },
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    paths = write_report(args.out_dir, stem, report, markdown)
    report["git_commit"] = report["commit"]
    print(
        markdown_table(runs, report["rl_baselines"]["runs"]) + f"\n\nwrote {paths['json']} and {paths['md']}",
        flush=True,
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python experiments/closed_loop.py [flags]``."""
    args = parse_args(None if argv is None else list(argv))
    run(args, command_line("experiments/closed_loop.py", argv))
    return 0
