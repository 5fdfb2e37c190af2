"""Planner hyperparameter tuning at equal compute on the analytic ``wall`` test bed (issue 7).

Every planner (grasp / cem / mppi / gd) gets the same **model-transition budget per plan**: the
number of (state, action) rows pushed through the world model, forward passes counted, backward
passes not (they cost about one forward each for GRASP and GD, which the table's wall times show).
A configuration's ``iterations`` is derived from the budget, so a bigger population or more
candidates means fewer iterations. The budget is deterministic, unlike wall time on a shared
machine, so the chosen configs do not depend on machine load or on how trials are scheduled.

Search (random search, ``--samples`` configurations per planner, drawn with ``--seed``; the first
configuration is always the benchmark default of ``planner_bench.py``). ``SEARCH_SPACE`` below is
the documented space:

* grasp: num_candidates {4, 8, 16, 32}; lr_states log-U[0.02, 0.5]; lr_actions log-U[0.01, 0.3];
  lifted_goal_weight log-U[0.1, 3]; noise_scale U[0, 0.15]; sync_every {0, 25, 50, 100}
* cem: num_candidates {64, 128, 256, 512}; elite fraction U[0.05, 0.25]; action_noise U[0.3, 1.5];
  momentum U[0, 0.5]
* mppi: num_candidates {64, 128, 256, 512}; temperature log-U[0.01, 1]; action_noise U[0.2, 1.0]
* gd: num_candidates {4, 8, 16, 32}; lr_actions log-U[0.005, 0.3]; action_noise U[0, 1];
  max_grad_norm {None, 1, 10}

Score of a configuration = success rate on the tuning pairs (``wall`` start/goal pairs drawn with
task seed ``--task-seed``, disjoint from the benchmark's, keeping only pairs feasible at H) minus 0.01 × median closest distance
(tie-break). The best configuration per planner and the default are then evaluated on
``--eval-pairs`` held-out pairs (the benchmark's own pairs, task seed 0).

Execution: ``--backend local`` evaluates the configurations in-process with
``mpc_grasp.parallel.run_tasks``; ``--backend ray`` runs them as Ray Tune trials (``tune.Tuner``
over the pre-drawn configurations, one CPU per trial, ``--workers`` concurrent). Both give the same
scores (every plan is seeded by its pair index; the budget is not time-based).

    python experiments/tune_planners.py --quick                       # seconds: tiny smoke run
    python experiments/tune_planners.py --backend ray --workers 2     # results/tuning.{json,md}
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planner_bench as bench  # noqa: E402  (the benchmark's tasks, plan runner and statistics)

from mpc_grasp.parallel import ParallelOptions, add_parallel_arguments, ray_session, run_tasks, ship_by_value  # noqa: E402
from mpc_grasp.planners import make_planner  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLANNER_ORDER = bench.PLANNER_ORDER

SEARCH_SPACE: dict[str, dict[str, tuple]] = {
    # field: ("choice", values) | ("uniform", low, high) | ("loguniform", low, high)
    "grasp": {
        "num_candidates": ("choice", (4, 8, 16, 32)),
        "lr_states": ("loguniform", 0.02, 0.5),
        "lr_actions": ("loguniform", 0.01, 0.3),
        "lifted_goal_weight": ("loguniform", 0.1, 3.0),
        "noise_scale": ("uniform", 0.0, 0.15),
        "sync_every": ("choice", (0, 25, 50, 100)),
    },
    "cem": {
        "num_candidates": ("choice", (64, 128, 256, 512)),
        "elite_fraction": ("uniform", 0.05, 0.25),
        "action_noise": ("uniform", 0.3, 1.5),
        "momentum": ("uniform", 0.0, 0.5),
    },
    "mppi": {
        "num_candidates": ("choice", (64, 128, 256, 512)),
        "temperature": ("loguniform", 0.01, 1.0),
        "action_noise": ("uniform", 0.2, 1.0),
    },
    "gd": {
        "num_candidates": ("choice", (4, 8, 16, 32)),
        "lr_actions": ("loguniform", 0.005, 0.3),
        "action_noise": ("uniform", 0.0, 1.0),
        "max_grad_norm": ("choice", (None, 1.0, 10.0)),
    },
}


# ----------------------------------------------------------------------------- search space and budget


def sample_config(planner: str, rng: np.random.Generator) -> dict[str, Any]:
    """One random configuration of ``planner`` from ``SEARCH_SPACE`` (planner config fields)."""
    config: dict[str, Any] = {}
    for name, spec in SEARCH_SPACE[planner].items():
        kind = spec[0]
        if kind == "choice":
            value = spec[1][int(rng.integers(len(spec[1])))]
        elif kind == "uniform":
            value = float(rng.uniform(spec[1], spec[2]))
        elif kind == "loguniform":
            value = float(math.exp(rng.uniform(math.log(spec[1]), math.log(spec[2]))))
        else:  # pragma: no cover - the table above is fixed
            raise ValueError(f"unknown search-space kind {kind!r}")
        config[name] = value
    if "elite_fraction" in config:  # CEM elites as a fraction of the population
        config["elites"] = max(2, int(round(config.pop("elite_fraction") * config["num_candidates"])))
    return config


def default_config(planner: str) -> dict[str, Any]:
    """The benchmark's default budget for ``planner`` without its iteration count."""
    return {key: value for key, value in bench.DEFAULT_BUDGETS[planner].items() if key != "iterations"}


def transitions_per_iteration(planner: str, config: dict[str, Any], horizon: int) -> float:
    """Model transitions (forward rows) one iteration costs, from the planner's effective config.

    GRASP: B·T for the lifted loss, plus per sync (every ``sync_every``) ``sync_steps`` shooting
    rollouts and one reset rollout of B·T rows each. GD: B·T. CEM / MPPI: num_candidates · T.
    (Early-stop checks and the final selection rollout are extra for every planner alike.)
    """
    effective = make_planner(planner, bench.build_model("linear"), horizon, **config).config
    if planner == "grasp":
        per = effective.num_candidates * horizon
        if effective.sync_every and effective.sync_steps:
            per += (effective.sync_steps + 1) * effective.num_candidates * horizon / effective.sync_every
        return float(per)
    return float(effective.num_candidates * horizon)  # GD, CEM, MPPI: one rollout per candidate


def with_budget(planner: str, config: dict[str, Any], horizon: int, budget: int) -> dict[str, Any]:
    """``config`` plus the iterations that spend ``budget`` model transitions per plan."""
    iterations = max(1, int(budget // transitions_per_iteration(planner, config, horizon)))
    return {**config, "iterations": iterations}


# ----------------------------------------------------------------------------- trials


@dataclasses.dataclass(frozen=True)
class Trial:
    """One configuration of one planner, evaluated on a list of start/goal pairs (picklable)."""

    planner: str
    index: int
    """0 = the benchmark default; 1.. = random samples."""
    config: dict[str, Any]
    """Full planner options including the budget-derived iterations."""
    horizon: int
    goal_tolerance: float
    pairs: tuple[dict[str, Any], ...]


def evaluate_trial(trial: Trial) -> dict[str, Any]:
    """Plan every pair (planner seed = pair index); success statistics and the score."""
    model = bench.build_model("wall")
    env = bench.GridWorldEnv(layout="wall", step_size=bench.STEP_SIZE, agent_radius=bench.AGENT_RADIUS, goal_radius=trial.goal_tolerance)
    records = [
        bench.run_plan(trial.planner, model, trial.horizon, task, pair, trial.config, trial.goal_tolerance, env=env)[0]
        for pair, task in enumerate(trial.pairs)
    ]
    summary = bench.summarize(records)
    score = summary["success_rate"] - 0.01 * (summary["median_min_distance"] or 0.0)
    return {"planner": trial.planner, "index": trial.index, "config": trial.config, "score": score, "summary": summary}


def run_trials(trials: list[Trial], options: ParallelOptions, progress: bool) -> list[dict[str, Any]]:
    """Evaluate ``trials`` in-process (``run_tasks``) or as Ray Tune trials; results in trial order."""
    if options.backend == "local":
        return run_tasks(evaluate_trial, trials, progress=progress, desc="tuning trials")
    with ray_session(options.address, options.num_workers) as ray:
        from ray import tune

        ship_by_value(bench.run_plan, ray)  # planner_bench is imported from experiments/, not installed

        def trainable(config: dict[str, Any]) -> dict[str, Any]:
            torch.set_num_threads(options.threads)
            outcome = evaluate_trial(trials[config["trial"]])
            return {"score": outcome["score"], "outcome": outcome}

        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"trial": tune.grid_search(list(range(len(trials))))},
            tune_config=tune.TuneConfig(metric="score", mode="max", max_concurrent_trials=options.num_workers),
            run_config=tune.RunConfig(name="tune_planners", storage_path=str(Path("/tmp") / "mpc_grasp_tune"), verbose=1 if progress else 0),
        )
        grid = tuner.fit()
        by_trial = {}
        for result in grid:
            if result.error is not None:
                raise RuntimeError(f"Ray Tune trial failed: {result.error}")
            by_trial[result.config["trial"]] = result.metrics["outcome"]
        return [by_trial[index] for index in range(len(trials))]


def outcomes_of(outcomes: list[dict[str, Any]], planner: str) -> list[dict[str, Any]]:
    return [outcome for outcome in outcomes if outcome["planner"] == planner]


def best_outcome(outcomes: list[dict[str, Any]], planner: str) -> dict[str, Any]:
    """Highest score; ties go to the earlier configuration (the default is first)."""
    return max(outcomes_of(outcomes, planner), key=lambda outcome: (outcome["score"], -outcome["index"]))


def evaluate_held_out(
    outcomes: list[dict[str, Any]], args: argparse.Namespace, horizon: int, eval_pairs: tuple[dict[str, Any], ...]
) -> tuple[list[Trial], list[dict[str, Any]]]:
    """Default and best configuration of every planner on the held-out pairs (run_tasks)."""
    held_out = [
        Trial(planner, which, outcome["config"], horizon, args.goal_tolerance, eval_pairs)
        for planner in args.planners
        for which, outcome in ((0, outcomes_of(outcomes, planner)[0]), (1, best_outcome(outcomes, planner)))
    ]
    return held_out, args.parallel.run(evaluate_trial, held_out, progress=not args.no_progress, desc="held-out evaluation")


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--planners", nargs="+", default=list(PLANNER_ORDER), choices=PLANNER_ORDER)
    parser.add_argument("--horizon", type=int, default=None, help="default 50 (--quick 10)")
    parser.add_argument("--budget", type=int, default=None, help="model transitions per plan (default 50000, --quick 3000)")
    parser.add_argument("--samples", type=int, default=None, help="random configurations per planner besides the default (default 5, --quick 2)")
    parser.add_argument("--pairs", type=int, default=None, help="tuning start/goal pairs, all feasible at the horizon (default 6, --quick 2)")
    parser.add_argument("--eval-pairs", type=int, default=None, help="held-out pairs for best vs default (default 12, --quick 2)")
    parser.add_argument("--task-seed", type=int, default=1000, help="task seed of the tuning pairs (the held-out pairs use 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random search")
    parser.add_argument("--goal-tolerance", type=float, default=0.3)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--out-dir", type=Path, default=REPO / "results")
    parser.add_argument("--prefix", default="tuning")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (here and in every worker)")
    parser.add_argument("--no-progress", action="store_true")
    add_parallel_arguments(parser)
    args = parser.parse_args(argv)
    try:
        args.parallel = ParallelOptions.from_args(args)
    except ValueError as error:
        parser.error(str(error))
    for name in ("horizon", "budget", "samples", "pairs", "eval_pairs"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "samples" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    horizon = args.horizon or (10 if args.quick else 50)
    budget = args.budget or (3000 if args.quick else 50_000)
    samples = args.samples if args.samples is not None else (2 if args.quick else 5)
    n_pairs = args.pairs or (2 if args.quick else 6)
    n_eval = args.eval_pairs or (2 if args.quick else 12)
    started = time.perf_counter()

    # tuning pairs that some plan of length H can solve (an infeasible pair scores every config alike)
    candidates = bench.wall_tasks(20 * n_pairs, args.task_seed)
    feasible = [task for task in candidates if bench.feasible(task, horizon, args.goal_tolerance)]
    tuning_pairs = tuple((feasible or candidates)[:n_pairs])
    eval_pairs = tuple(bench.wall_tasks(n_eval, 0))
    trials: list[Trial] = []
    for planner in args.planners:
        rng = np.random.default_rng([args.seed, PLANNER_ORDER.index(planner)])
        configs = [default_config(planner)] + [sample_config(planner, rng) for _ in range(samples)]
        for index, config in enumerate(configs):
            trials.append(Trial(planner, index, with_budget(planner, config, horizon, budget), horizon, args.goal_tolerance, tuning_pairs))
    session = ray_session(args.parallel.address, args.parallel.num_workers) if args.parallel.backend == "ray" else contextlib.nullcontext()
    with session:  # one Ray for the tuning and the held-out evaluation
        outcomes = run_trials(trials, args.parallel, progress=not args.no_progress)
        held_out, evaluations = evaluate_held_out(outcomes, args, horizon, eval_pairs)
    tuning_seconds = time.perf_counter() - started
    chosen = {planner: {"best": best_outcome(outcomes, planner), "default": outcomes_of(outcomes, planner)[0]} for planner in args.planners}
    for trial, evaluation in zip(held_out, evaluations):
        chosen[trial.planner]["eval_" + ("default" if trial.index == 0 else "best")] = evaluation["summary"]

    report = {
        "command": "python experiments/tune_planners.py" + (" " + shlex.join(argv) if argv else ""),
        "git_commit": bench.git_commit(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(), "threads": args.threads},
        "config": {
            "testbed": "PointMassWalls.from_layout('wall') (as planner_bench.py), open-loop plans",
            "horizon": horizon,
            "budget_model_transitions_per_plan": budget,
            "samples_per_planner": samples + 1,
            "tuning_pairs": n_pairs,
            "tuning_task_seed": args.task_seed,
            "eval_pairs": n_eval,
            "eval_task_seed": 0,
            "search_seed": args.seed,
            "goal_tolerance": args.goal_tolerance,
            "score": "success_rate - 0.01 * median_min_distance on the tuning pairs",
            "backend": args.parallel.backend,
            "workers": args.parallel.num_workers,
            "quick": bool(args.quick),
        },
        "search_space": {planner: {name: list(spec) for name, spec in space.items()} for planner, space in SEARCH_SPACE.items() if planner in args.planners},
        "chosen": {planner: {"config": item["best"]["config"], "trial": item["best"]["index"], "score": item["best"]["score"]} for planner, item in chosen.items()},
        "held_out": {
            planner: {"default": item["eval_default"], "best": item["eval_best"], "default_config": item["default"]["config"]}
            for planner, item in chosen.items()
        },
        "trials": [{key: outcome[key] for key in ("planner", "index", "config", "score", "summary")} for outcome in outcomes],
        "tuning_seconds": tuning_seconds,
        "total_seconds": time.perf_counter() - started,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.prefix}.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out_dir / f"{args.prefix}.md").write_text(markdown_report(report))
    if not args.no_progress:
        print(markdown_report(report))
    return report


def _pct(summary: dict[str, Any], key: str = "success_rate") -> str:
    return f"{100 * summary[key]:.0f}%"


def markdown_report(report: dict[str, Any]) -> str:
    config = report["config"]
    lines = [
        "# Planner tuning at equal compute (analytic `wall` test bed)",
        "",
        f"Generated {report['timestamp']} by `{report['command']}` (commit `{report['git_commit'] or 'none'}`).",
        "",
        f"Budget: **{config['budget_model_transitions_per_plan']:,} model transitions per plan** (forward rows; iterations derived "
        f"from each configuration), H={config['horizon']}, {config['samples_per_planner']} configurations per planner "
        f"(the benchmark default + random samples), scored on {config['tuning_pairs']} tuning pairs feasible at H (task seed "
        f"{config['tuning_task_seed']}); best vs default re-evaluated on {config['eval_pairs']} held-out pairs (the benchmark's, "
        f"task seed 0). Backend: {config['backend']}.",
        "",
        "| planner | chosen config | tuning score | held-out success default → best | exact-physics success default → best | median time / plan default → best |",
        "|---|---|---|---|---|---|",
    ]
    for planner, chosen in report["chosen"].items():
        held = report["held_out"][planner]
        shown = ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}" for key, value in chosen["config"].items())
        lines.append(
            f"| {planner} | {shown} | {chosen['score']:.3f} | {_pct(held['default'])} → {_pct(held['best'])} | "
            f"{_pct(held['default'], 'success_env_rate')} → {_pct(held['best'], 'success_env_rate')} | "
            f"{held['default']['median_wall_time']:.2f} s → {held['best']['median_wall_time']:.2f} s |"
        )
    lines += ["", "## Search space", "", "```json", json.dumps(report["search_space"], indent=1), "```", ""]
    lines += [
        "Notes: success = the test-bed rollout comes within the goal tolerance at any step; exact-physics success executes the",
        "same actions open-loop in the grid world. Wall times are on a shared 2-core CPU (compare within a run). With few pairs",
        "the intervals are wide (see `trials` in the JSON for every configuration's Wilson interval).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
