"""Model-free RL baselines (SB3 PPO / SAC) on the grid world and cart-pole swing-up.

For each env x algo x budget: train with :func:`mpc_grasp.rl.train_rl_baseline`, then evaluate
with :func:`mpc_grasp.rl.evaluate_agent` on ``--n-eval`` episodes with the fixed ``--eval-seed``
(the same episodes ``GraspMPC`` is evaluated on when given the same seed and env kwargs).

Budgets: "same" = the env steps the world model's data uses (``--grid-steps`` 20k, ``--cartpole-steps``
30k); "large" = ``--large-factor`` x that (10 by default).

Grid world: training uses the env's default *random* task distribution (uniform start / goal at
least 1.5 apart), the analogue of the world model's random-exploration data; evaluation uses the
benchmark's non-greedy ``task="across"`` start/goal pairs. SAC on the grid world uses HER by
default (``--no-her`` to disable): the standard model-free baseline for goal-conditioned tasks.

Writes ``<out-dir>/rl_baselines.json`` (every run, resolved hyperparameters, per-episode results,
command line, git commit) after every run, and ``<out-dir>/rl_baselines.md`` (markdown table).
``--quick`` is a smoke-size run writing ``rl_baselines_quick.{json,md}`` instead; ``--render-only``
re-renders the markdown from the JSON. SAC is ~20-25 ms per env step here (one gradient step per
env step, 1 CPU thread), so a 10x SAC budget takes hours: ``--large-algos ppo`` restricts it.

Example: ``python experiments/rl_baselines.py`` (full), ``python experiments/rl_baselines.py --quick``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mpc_grasp import reporting
from mpc_grasp.rl import ALGOS, baseline_hyperparams, evaluate_agent, train_rl_baseline

REPO_ROOT = Path(__file__).resolve().parents[1]

# name -> env id, training env kwargs, evaluation env kwargs, CLI flag holding the "same" budget
ENVS: dict[str, dict[str, Any]] = {
    "wall": {
        "env_id": "mpc_grasp/GridWorldWall-v0",
        "train_kwargs": {"task": "random"},
        "eval_kwargs": {"task": "across"},
        "budget_arg": "grid_steps",
        "goal_env": True,
    },
    "cartpole": {
        "env_id": "mpc_grasp/CartPoleSwingup-v0",
        "train_kwargs": {},
        "eval_kwargs": {},
        "budget_arg": "cartpole_steps",
        "goal_env": False,
    },
}
BUDGETS = ("same", "large")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--envs", nargs="+", choices=sorted(ENVS), default=list(ENVS), help="environments to run")
    p.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS), help="algorithms to run")
    p.add_argument("--budgets", nargs="+", choices=BUDGETS, default=list(BUDGETS), help="budgets to run")
    p.add_argument("--large-algos", nargs="+", choices=ALGOS, default=None,
                   help="algorithms run at the large budget (default: all of --algos)")
    p.add_argument("--grid-steps", type=int, default=20_000, help="'same' budget on the grid world (world-model data size)")
    p.add_argument("--cartpole-steps", type=int, default=30_000, help="'same' budget on cart-pole swing-up")
    p.add_argument("--large-factor", type=float, default=10.0, help="large budget = factor x same budget")
    p.add_argument("--train-task", choices=("random", "across"), default="random", help="grid-world training task distribution")
    p.add_argument("--her", action=argparse.BooleanOptionalAction, default=True, help="HER for SAC on the grid world")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--eval-seed", type=int, default=1000, help="seed of the evaluation episodes (shared with GraspMPC evaluation)")
    p.add_argument("--n-eval", type=int, default=50, help="evaluation episodes")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results", help="output directory")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="smoke-size run (2k steps, x2 large, 5 eval episodes)")
    p.add_argument("--render-only", action="store_true", help="only rewrite the markdown table from the existing JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.grid_steps, args.cartpole_steps, args.large_factor, args.n_eval = 2_000, 2_000, 2.0, 5
    for name in ("grid_steps", "cartpole_steps", "n_eval", "threads"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.large_factor <= 0:
        p.error("--large-factor must be positive")
    if args.large_algos is None:
        args.large_algos = list(args.algos)
    return args


def git_commit() -> str:
    """HEAD commit of the repository (``+dirty`` if tracked files changed), or "unknown"."""
    return reporting.git_commit(REPO_ROOT, mark_dirty=True) or "unknown"


def _jsonable(value: Any) -> Any:
    """Hyperparameters to JSON (classes by qualified name)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def plan_runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The (env, algo, budget) runs to do, smallest budgets first so partial results are useful."""
    runs = []
    for budget in BUDGETS:
        if budget not in args.budgets:
            continue
        for env_name in args.envs:
            spec = ENVS[env_name]
            same = int(getattr(args, spec["budget_arg"]))
            for algo in args.algos:
                if budget == "large" and algo not in args.large_algos:
                    continue
                factor = 1.0 if budget == "same" else args.large_factor
                train_kwargs = dict(spec["train_kwargs"])
                if spec["goal_env"]:
                    train_kwargs["task"] = args.train_task
                runs.append({
                    "env": env_name,
                    "env_id": spec["env_id"],
                    "algo": algo,
                    "her": bool(algo == "sac" and spec["goal_env"] and args.her),
                    "budget": budget,
                    "budget_factor": factor,
                    "total_timesteps": int(round(same * factor)),
                    "train_env_kwargs": train_kwargs,
                    "eval_env_kwargs": dict(spec["eval_kwargs"]),
                })
    return runs


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One row per run: success (95% Wilson CI), any-step success, return, length, env steps, time."""
    lines = [
        "| env | algo | budget | env steps | success (95% CI) | success at any step | mean return ± std | mean length | train time (s) |",
        "|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ev = r["eval"]
        lo, hi = ev["success_ci95"]
        algo = r["algo"].upper() + ("+HER" if r["her"] else "")
        lines.append(
            f"| {r['env']} | {algo} | {r['budget']} (×{r['budget_factor']:g}) | {r['env_steps']:,} | "
            f"{ev['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] | {ev['success_any_rate']:.2f} | "
            f"{ev['mean_return']:.1f} ± {ev['std_return']:.1f} | {ev['mean_length']:.1f} | {r['train_time_s']:.0f} |"
        )
    return "\n".join(lines)


def skipped_large_runs(results: list[dict[str, Any]]) -> list[str]:
    """``env ALGO`` pairs run at the "same" budget but not at the "large" one (for the table's note)."""
    large = {(r["env"], r["algo"]) for r in results if r["budget"] == "large"}
    if not large:
        return []
    same = [(r["env"], r["algo"], r["her"]) for r in results if r["budget"] == "same"]
    return [f"{env} {algo.upper()}{'+HER' if her else ''}" for env, algo, her in same if (env, algo) not in large]


def write_outputs(out_json: Path, out_md: Path, header: dict[str, Any], results: list[dict[str, Any]], complete: bool) -> str:
    """Write the JSON (header + runs) and the markdown table; return the table."""
    out_json.parent.mkdir(parents=True, exist_ok=True)
    payload = {**header, "complete": complete, "runs": results}
    tmp = out_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(out_json)
    table = markdown_table(results)
    not_run = skipped_large_runs(results)
    skip_note = (
        "\n\nNot run at the large budget: " + ", ".join(not_run)
        + " (restricted with `--large-algos`; see the command line)." if not_run and complete else ""
    )
    ev_note = (
        f"Evaluation: {header['n_eval']} episodes, eval seed {header['eval_seed']}, deterministic policies; "
        "grid world evaluated on `task=\"across\"` start/goal pairs (trained on "
        f"`task=\"{header['train_task']}\"`). Success = `info[\"is_success\"]` at the episode's last step; "
        "\"any step\" = at some step. CI = 95% Wilson score interval."
    )
    out_md.write_text(
        "# RL baselines (stable-baselines3)\n\n"
        f"Command: `{header['command']}`  \nCommit: `{header['git_commit']}`  \n"
        f"Finished: {header.get('finished_utc', 'in progress')}\n\n{ev_note}\n\n{table}{skip_note}\n"
    )
    return table


def main(argv: list[str] | None = None) -> int:
    """Run every planned (env, algo, budget), saving after each, and print the table."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    stem = "rl_baselines_quick" if args.quick else "rl_baselines"
    out_json, out_md = args.out_dir / f"{stem}.json", args.out_dir / f"{stem}.md"
    if args.render_only:
        if not out_json.exists():
            raise SystemExit(f"--render-only: {out_json} does not exist; run the experiment first")
        saved = json.loads(out_json.read_text())
        results = saved.pop("runs")
        complete = bool(saved.pop("complete", False))
        print(write_outputs(out_json, out_md, saved, results, complete=complete), flush=True)
        return 0
    runs = plan_runs(args)
    header: dict[str, Any] = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]) if argv is None
        else " ".join(shlex.quote(a) for a in ["experiments/rl_baselines.py", *argv]),
        "git_commit": git_commit(),
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch_threads": args.threads,
        "seed": args.seed,
        "eval_seed": args.eval_seed,
        "n_eval": args.n_eval,
        "train_task": args.train_task,
        "same_budgets": {"wall": args.grid_steps, "cartpole": args.cartpole_steps},
        "large_factor": args.large_factor,
        "large_algos": list(args.large_algos),
        "planned_runs": [{k: r[k] for k in ("env", "algo", "her", "budget", "total_timesteps")} for r in runs],
    }
    print(f"{len(runs)} runs -> {out_json}", flush=True)
    results: list[dict[str, Any]] = []
    for i, run in enumerate(runs, 1):
        label = f"[{i}/{len(runs)}] {run['env']} {run['algo']}{'+her' if run['her'] else ''} {run['budget']} ({run['total_timesteps']:,} steps)"
        print(label, flush=True)
        start = time.perf_counter()
        model = train_rl_baseline(
            run["env_id"], run["algo"], run["total_timesteps"], seed=args.seed,
            env_kwargs=run["train_env_kwargs"], her=run["her"], progress_bar=True,
        )
        train_time = time.perf_counter() - start
        ev = evaluate_agent(model, run["env_id"], n_episodes=args.n_eval, seed=args.eval_seed, env_kwargs=run["eval_env_kwargs"])
        results.append({
            **run,
            "env_steps": int(model.num_timesteps),
            "train_time_s": train_time,
            "hyperparams": _jsonable(baseline_hyperparams(run["algo"], run["total_timesteps"], her=run["her"])),
            "eval": ev,
        })
        lo, hi = ev["success_ci95"]
        print(
            f"    success {ev['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] (any step {ev['success_any_rate']:.2f}), "
            f"return {ev['mean_return']:.1f} ± {ev['std_return']:.1f}, length {ev['mean_length']:.1f}, "
            f"{model.num_timesteps:,} steps, train {train_time:.0f} s, eval {ev['eval_time_s']:.0f} s",
            flush=True,
        )
        write_outputs(out_json, out_md, header, results, complete=False)
    header["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    table = write_outputs(out_json, out_md, header, results, complete=True)
    print(f"\n{table}\n\nwrote {out_json} and {out_md}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
