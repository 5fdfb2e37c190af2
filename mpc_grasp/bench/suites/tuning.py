"""Planner tuning at equal compute on a planner-gym problem (issue 7), as a suite of the benchmark engine.

Every planner gets the same **model-transition budget per plan**: the number of (state, action) rows
pushed through the model, forward passes counted, backward passes not. A configuration's
``iterations`` is derived from the budget (:func:`with_budget`), so a bigger population or more
candidates means fewer iterations. The budget is deterministic, unlike wall time on a shared machine,
so the chosen configurations do not depend on machine load or on how trials are scheduled.

Random search: ``samples`` configurations per planner from :data:`SEARCH_SPACE` (drawn with ``seed``),
after the planner's defaults for the searched fields. Score = success rate on the tuning instances
(drawn with ``task_seed``, keeping those some plan of length H can solve where the problem knows,
e.g. the walls' shortest path) minus 0.01 × the median closest distance (tie-break). The best and the
default configuration are then evaluated on ``eval_pairs`` held-out instances (the gym's own, seed 0).
Trials and held-out runs are work units of :func:`~mpc_grasp.bench.engine.run_units` (in-process or
Ray, one resume log); ``tuning.json``'s ``chosen`` is what ``mpc_grasp.bench.suites.benchmark.load_configs`` reads.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpc_grasp.bench.engine import ResumeLog, WorkUnit, run_units
from mpc_grasp.bench.parallel import ParallelOptions, ray_session
from mpc_grasp.bench.report import ci_cell, write_report
from mpc_grasp.bench.suites.gym import plan_instances, problem_view, summarize
from mpc_grasp.bench.suites.problems import PROBLEMS, make_problem
from mpc_grasp.planners import PLANNERS, GraspConfig, make_planner

__all__ = [
    "PLANNER_ORDER",
    "SEARCH_SPACE",
    "TuningSuite",
    "evaluate_trial",
    "run_tuning",
    "sample_config",
    "transitions_per_iteration",
    "with_budget",
]

PLANNER_ORDER = ("grasp", "cem", "mppi", "gd")

SEARCH_SPACE: dict[str, dict[str, tuple[Any, ...]]] = {
    # field: ("choice", values) | ("uniform", low, high) | ("loguniform", low, high)
    "grasp": {
        "num_candidates": ("choice", (4, 8, 16, 32)),
        "lr_states": ("loguniform", 0.02, 0.5),
        "lr_actions": ("loguniform", 0.01, 0.3),
        "lifted_goal_weight": ("loguniform", 0.1, 3.0),
        "noise_scale": ("uniform", 0.0, 0.15),
        "sync_every": ("choice", (0, 4, 10, 25, 50)),
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


@dataclass(frozen=True)
class TuningSuite:
    """What the random search tunes, on which problem, at which budget."""

    problem: str = "walls_across_h50"
    planners: tuple[str, ...] = PLANNER_ORDER
    budget: int = 50_000
    """Model transitions (forward rows) per plan."""
    samples: int = 5
    """Random configurations per planner besides the default."""
    pairs: int = 6
    """Tuning instances (reachable within H where the problem knows)."""
    eval_pairs: int = 12
    """Held-out instances for best vs default (the gym's instances, seed 0)."""
    task_seed: int = 1000
    seed: int = 0
    """Seed of the random search."""
    horizon: int | None = None
    """Plan length; None = the problem's."""

    def __post_init__(self) -> None:
        if self.problem not in PROBLEMS:
            raise ValueError(f"unknown problem {self.problem!r}; choose from {sorted(PROBLEMS)}")
        for planner in self.planners:
            if planner not in SEARCH_SPACE:
                raise ValueError(f"unknown planner {planner!r}; choose from {list(SEARCH_SPACE)}")
        for name in ("budget", "pairs", "eval_pairs") + (("horizon",) if self.horizon is not None else ()):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if int(self.samples) != self.samples or self.samples < 0:
            raise ValueError(f"samples must be a non-negative integer, got {self.samples!r}")


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
    """The planner's defaults of the searched fields (CEM: ``elites`` for the elite fraction)."""
    defaults = PLANNERS[planner].config_class()
    fields = ["elites" if name == "elite_fraction" else name for name in SEARCH_SPACE[planner]]
    return {name: getattr(defaults, name) for name in fields}


def transitions_per_iteration(planner: str, config: Mapping[str, Any], horizon: int, model: Any = None) -> float:
    """Model transitions (forward rows) one iteration costs with ``config`` (on ``model``, which resolves
    model-dependent defaults such as GRASP's ``sync_every``).

    GRASP: B·T for the lifted loss (when it runs), plus per sync (every ``sync_every`` iterations) the sampling sync's
    (``sync_samples`` + 2)·B·T rows, ``sync_steps`` shooting rollouts of B·T and the state reset's B·T
    (reused from the sampling sync when there are no shooting steps). GD, CEM, MPPI: one rollout per
    candidate, ``num_candidates``·T. Early-stop checks and the final selection are extra for all alike.
    """
    if model is None:
        from mpc_grasp.models.analytic import LinearSystem

        model = LinearSystem.point()
    built: Any = make_planner(planner, model, horizon, **config)
    rows = built.config.num_candidates * horizon
    if planner != "grasp":
        return float(rows)
    settings: GraspConfig = built.config
    sync = (settings.sync_samples + 2) * rows if settings.sync_samples else 0
    sync += settings.sync_steps * rows
    if settings.sync_reset_states and (settings.sync_steps or not settings.sync_samples):
        sync += rows
    syncing = built.sync_every and (settings.sync_steps or settings.sync_samples)
    lifted = rows if built.lifted_updates else 0  # no lifted loss with a reward objective (GraspConfig.lifted_updates)
    return float(lifted + (sync / built.sync_every if syncing else 0.0))


def with_budget(planner: str, config: Mapping[str, Any], horizon: int, budget: int, model: Any = None) -> dict[str, Any]:
    """``config`` plus the iterations that spend ``budget`` model transitions per plan."""
    iterations = max(1, int(budget // transitions_per_iteration(planner, config, horizon, model)))
    return {**config, "iterations": iterations}


# ----------------------------------------------------------------------------- trials


def evaluate_trial(task: Mapping[str, Any]) -> dict[str, Any]:
    """Worker: plan the task's instances with one configuration; statistics and the score."""
    problem = problem_view(task["problem"], task["instances"], task["instance_seed"], task["indices"], task["horizon"])
    summary = summarize(plan_instances(problem, task["planner"], task["config"]))
    score = summary["success_rate"] - 0.01 * (summary["median_closest_distance"] or 0.0)
    return {"planner": task["planner"], "index": task["index"], "config": dict(task["config"]), "score": score, "summary": summary}


def _unit(stage: str, planner: str, index: int, which: str, settings: Mapping[str, Any]) -> WorkUnit:
    return WorkUnit({"stage": stage, "planner": planner, "which": which}, settings, task={**settings, "planner": planner, "index": index})


def tuning_instances(suite: TuningSuite) -> tuple[list[int], int]:
    """Indices of the tuning instances among ``20 · pairs`` drawn with ``task_seed`` (reachable ones
    first: an unreachable instance scores every configuration alike), and that draw's size."""
    drawn = 20 * suite.pairs
    problem = problem_view(suite.problem, drawn, suite.task_seed, horizon=suite.horizon)
    reachable = [index for index, (start, goal) in enumerate(problem.instances) if problem.reachable(start, goal) is not False]
    return (reachable or list(range(drawn)))[: suite.pairs], drawn


def run_tuning(
    suite: TuningSuite, out_dir: str | Path, *, command: str, stem: str = "tuning", resume: bool = False,
    parallel: ParallelOptions | None = None, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Search, re-evaluate best and default on held-out instances, write ``stem.{json,md}``; the report."""
    started = time.perf_counter()
    horizon = suite.horizon or make_problem(suite.problem, 1).horizon
    model = make_problem(suite.problem, 1).model
    indices, drawn = tuning_instances(suite)
    where = {"problem": suite.problem, "horizon": horizon}
    tuning_set = {**where, "instances": drawn, "instance_seed": suite.task_seed, "indices": indices}
    units = []
    for planner in suite.planners:
        rng = np.random.default_rng([suite.seed, PLANNER_ORDER.index(planner)])
        configs = [default_config(planner)] + [sample_config(planner, rng) for _ in range(suite.samples)]
        for index, config in enumerate(configs):
            units.append(
                _unit(
                    "tune", planner, index, str(index), {**tuning_set, "config": with_budget(planner, config, horizon, suite.budget, model)}
                )
            )
    log = ResumeLog(Path(out_dir) / f"{stem}.partial.jsonl", resume=resume)
    options = parallel or ParallelOptions()
    with (
        ray_session(options.address, options.num_workers) if options.backend == "ray" else contextlib.nullcontext()
    ):  # one Ray for both stages
        outcomes = run_units(evaluate_trial, units, log=log, parallel=options, progress=progress, desc="tuning trials")
        tuning_seconds = time.perf_counter() - started
        mine = {planner: [outcome for outcome in outcomes if outcome["planner"] == planner] for planner in suite.planners}
        best = {planner: max(found, key=lambda outcome: (outcome["score"], -outcome["index"])) for planner, found in mine.items()}
        held_set = {**where, "instances": suite.eval_pairs, "instance_seed": 0, "indices": list(range(suite.eval_pairs))}
        held_units = [
            _unit("held_out", planner, outcome["index"], which, {**held_set, "config": outcome["config"]})
            for planner in suite.planners for which, outcome in (("default", mine[planner][0]), ("best", best[planner]))
        ]  # fmt: skip
        held = run_units(evaluate_trial, held_units, log=log, parallel=options, progress=progress, desc="held-out evaluation")
    held_problem = problem_view(suite.problem, suite.eval_pairs, 0, horizon=horizon)
    reachable = [held_problem.reachable(start, goal) for start, goal in held_problem.instances]
    report = {
        "command": command,
        "config": {
            "problem": suite.problem, "horizon": horizon, "budget_model_transitions_per_plan": suite.budget,
            "samples_per_planner": suite.samples + 1, "tuning_pairs": len(indices), "tuning_task_seed": suite.task_seed,
            "eval_pairs": suite.eval_pairs, "eval_task_seed": 0, "search_seed": suite.seed,
            "eval_reachable": None if None in reachable else sum(bool(flag) for flag in reachable),
            "score": "success_rate - 0.01 * median_closest_distance on the tuning instances",
            "backend": options.backend, "workers": options.num_workers,
        },
        "search_space": {planner: {name: list(spec) for name, spec in SEARCH_SPACE[planner].items()} for planner in suite.planners},
        "chosen": {planner: {"config": item["config"], "trial": item["index"], "score": item["score"]} for planner, item in best.items()},
        "held_out": {
            planner: {"default": held[2 * k]["summary"], "best": held[2 * k + 1]["summary"], "default_config": mine[planner][0]["config"]}
            for k, planner in enumerate(suite.planners)
        },
        "trials": outcomes,
        "units_reused_from_log": log.reused,
        "tuning_seconds": tuning_seconds,
        "total_seconds": time.perf_counter() - started,
    }  # fmt: skip
    write_report(out_dir, stem, report, markdown)
    return report


# ----------------------------------------------------------------------------- report


def _shown(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}" for key, value in config.items())


def markdown(report: Mapping[str, Any]) -> str:
    """Chosen configuration per planner, its tuning score, held-out success and time default → best."""
    config = report["config"]
    bound = (
        f"; {config['eval_reachable']} reachable within H, an upper bound on success" if config.get("eval_reachable") is not None else ""
    )
    lines = [
        f"# Planner tuning at equal compute (planner gym `{config['problem']}`)", "",
        f"Budget: **{config['budget_model_transitions_per_plan']:,} model transitions per plan** (forward rows; iterations derived "
        f"from each configuration), H={config['horizon']}, {config['samples_per_planner']} configurations per planner "
        f"(the planner's defaults + random samples), scored on {config['tuning_pairs']} tuning instances (task seed "
        f"{config['tuning_task_seed']}); best vs default re-evaluated on {config['eval_pairs']} held-out instances (the gym's, "
        f"seed 0{bound}). Backend: {config['backend']}.", "",
        "| planner | chosen config | tuning score | held-out success default → best | median time / plan default → best |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for planner, chosen in report["chosen"].items():
        default, best = report["held_out"][planner]["default"], report["held_out"][planner]["best"]
        lines.append(
            f"| {planner} | {_shown(chosen['config'])} | {chosen['score']:.3f} | {ci_cell(default['success_rate'], default['ci95'])} → "
            f"{ci_cell(best['success_rate'], best['ci95'])} | {default['median_time_s']:.2f} s → {best['median_time_s']:.2f} s |"
        )
    lines += ["", "Default configurations (the planners' own values of the searched fields, iterations from the budget):", ""]
    lines += [f"- {planner}: {_shown(item['default_config'])}" for planner, item in report["held_out"].items()]
    lines += ["", "## Search space", "", "```json", json.dumps(report["search_space"], indent=1), "```", ""]
    lines += [
        "Notes: success is judged on the exact model's rollout (the gym problem's own test); cells show the 95% Wilson",
        "interval. Wall times are on a shared CPU (compare within a run). Every configuration's statistics: `trials` in the JSON.",
    ]
    return "\n".join(lines) + "\n"
