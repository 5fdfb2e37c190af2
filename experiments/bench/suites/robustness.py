"""The robustness suite (issue 30): the planner gym's problems (:mod:`bench.suites.problems`) perturbed one
factor at a time, every planner at its defaults and at equal wall time per plan.

* Variants (:data:`VARIANTS`), each off the base (the gym's problem as is: its own ``state_weights``, horizon
  and instances): goal weights none (no ``state_weights``: the planners' default natural scaling), three
  random draws (log-uniform in [0.2, 5] per dimension, seeded, times the gym's weights, or ones where the
  problem has none), horizon x0.6 and x1.5 (rounded), start spread x3 (``make_problem(..., spread=3)``: the
  starts three times as far from the nominal start). A variant that is the base itself on some problem
  (weights none where the problem has no weights) or that the problem does not take (spread on the walls,
  whose starts already span a room) is skipped there, with the reason in the report. Success is the
  problem's own ``solved`` test on the exact model, whatever weights the planner was given.
* Cells: one work unit per (problem, variant, planner, budget) plans the variant's seeded instances open
  loop with ``plan_batch`` (a batch of ``batch`` instances per call, each problem seeded with the planner's
  own seed, so every plan equals the gym's one-at-a-time ``plan`` of that instance); time per plan = a
  batch's wall time / its instances. Budget ``defaults``: every planner at its defaults. Budget ``equal
  time``: each planner's iteration budgets scaled (:func:`~bench.suites.paper_protocol.scaled_budget`) by
  the factor that gives it GRASP's default median time per plan on that (problem, variant), first
  estimated from the two default cells, re-estimated once from the cell's own run when that is off by more
  than :data:`CALIBRATION_TOLERANCE`; GRASP is its own reference (factor 1, its default cell).
* Report: ``robustness.{json,md,png}`` under the output folder (``--quick``: ``robustness_quick``, a smoke
  run at a quarter of every iteration budget), written by :func:`~bench.report.write_report` with the
  command and commit; the cells are resumable (``robustness.partial.jsonl``).

    python experiments/robustness.py                      # 16 instances per variant, defaults + equal time
    python experiments/robustness.py --problems cartpole_swingup --planners grasp cem gd --instances 4 --out /tmp/r
    python experiments/robustness.py --quick --out /tmp/r  # smoke run
    python experiments/robustness.py --resume --backend ray --workers 2   # reuse finished cells, the rest on Ray
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.engine import ResumeLog, WorkUnit, run_units
from bench.report import ci_cell, number_cell, write_report
from bench.suites.gym import GYM_PLANNERS, judge, summarize
from bench.suites.paper_protocol import scaled_budget
from bench.suites.problems import PROBLEMS, PlanningProblem, make_problem
from mpc_grasp.parallel import ParallelOptions
from mpc_grasp.planners import Planner, make_planner

__all__ = [
    "DEFAULT_PROBLEMS",
    "REFERENCE",
    "ROBUSTNESS_PLANNERS",
    "VARIANTS",
    "RobustnessSuite",
    "Variant",
    "make_runner",
    "markdown",
    "plan_batches",
    "plot",
    "run_cell",
    "run_robustness",
    "skip_reason",
    "summary_lines",
    "variant_problem",
    "variant_weights",
]

ROBUSTNESS_PLANNERS: dict[str, tuple[str, dict[str, Any]]] = {**GYM_PLANNERS, "icem": ("icem", {})}
"""Row label -> (planner, options): the gym's planners and iCEM, each at its defaults."""
REFERENCE = "grasp"
"""The planner whose default time per plan every planner gets in the equal-time cells."""
BASELINES = tuple(label for label, (name, _) in ROBUSTNESS_PLANNERS.items() if name != "grasp")
"""The planners GRASP is compared with in the summary (every non-GRASP planner)."""
DEFAULT_PROBLEMS = ("double_integrator_2d", "cartpole_swingup", "pendulum_swingup", "walls_across_h50")
GAP_POINTS = 5.0
"""Percentage points below the best baseline that the summary still calls "within"."""
RANDOM_WEIGHT_RANGE = (0.2, 5.0)
"""Per-dimension factors of the random goal weights: log-uniform in this range."""
CALIBRATION_TOLERANCE = 0.2
"""Relative miss of the reference time per plan above which an equal-time cell re-estimates its factor once."""
FACTOR_BOUNDS = (0.01, 100.0)
STEM = "robustness"
BUDGETS = ("defaults", "equal time")


@dataclass(frozen=True)
class Variant:
    """One perturbation of a gym problem; every field at its default is the base (the problem as is)."""

    weights: str = "gym"
    """``"gym"`` (the problem's ``state_weights``), ``"none"`` (none passed) or ``"random"``."""
    draw: int = 0
    """Which random draw (``weights="random"`` only)."""
    horizon: float = 1.0
    """The problem's horizon times this (rounded, at least 1)."""
    spread: float = 1.0
    """The starts' deviation from the nominal start times this (``make_problem``'s ``spread``)."""


VARIANTS: dict[str, Variant] = {
    "base": Variant(),
    "weights none": Variant(weights="none"),
    **{f"weights random {draw}": Variant(weights="random", draw=draw) for draw in (1, 2, 3)},
    "H x0.6": Variant(horizon=0.6),
    "H x1.5": Variant(horizon=1.5),
    "spread x3": Variant(spread=3.0),
}


@dataclass(frozen=True)
class RobustnessSuite:
    """Which cells the suite runs, on how many instances, and at which budgets."""

    problems: tuple[str, ...] = DEFAULT_PROBLEMS
    planners: tuple[str, ...] = tuple(ROBUSTNESS_PLANNERS)
    variants: tuple[str, ...] = tuple(VARIANTS)
    instances: int = 16
    """Seeded (start, goal) instances per variant (the same for every planner)."""
    seed: int = 0
    """Seed of the instance sampler and of the random weights."""
    batch: int | None = None
    """Instances per ``plan_batch`` call; None = all of a cell in one call."""
    time_cap: float | None = None
    """Seconds of planning per cell after which it stops at the end of a batch (fewer instances); None = no cap."""
    equal_time: bool = True
    """Also run every planner at :data:`REFERENCE`'s default time per plan (which must then be a planner)."""
    iteration_scale: float = 1.0
    """Every planner's iteration budgets times this; below 1 only for smoke runs (``--quick``), which say so."""
    threads: int = 1
    """torch threads (recorded in the report; set by the caller and in every Ray task)."""

    def __post_init__(self) -> None:
        for kind, names, known in (
            ("problem", self.problems, PROBLEMS),
            ("planner", self.planners, ROBUSTNESS_PLANNERS),
            ("variant", self.variants, VARIANTS),
        ):
            unknown = [name for name in names if name not in known]
            if unknown or not names:
                raise ValueError(f"unknown or no {kind}s {unknown}; choose from {list(known)}")
        if int(self.instances) != self.instances or self.instances < 1:
            raise ValueError(f"instances must be a positive integer, got {self.instances!r}")
        if self.batch is not None and (int(self.batch) != self.batch or self.batch < 1):
            raise ValueError(f"batch must be a positive integer or None, got {self.batch!r}")
        if self.time_cap is not None and not self.time_cap > 0:
            raise ValueError(f"time_cap must be positive or None, got {self.time_cap!r}")
        if not self.iteration_scale > 0:
            raise ValueError(f"iteration_scale must be positive, got {self.iteration_scale!r}")
        if self.equal_time and REFERENCE not in self.planners:
            raise ValueError(f"equal time needs the reference planner {REFERENCE!r} among the planners")

    @property
    def stem(self) -> str:
        """File stem of the report: ``robustness``, or ``robustness_quick`` for a smoke run."""
        return STEM if self.iteration_scale == 1.0 else f"{STEM}_quick"

    def settings(self) -> dict[str, Any]:
        """What every cell's result depends on besides its key and the code."""
        return {
            "instances": int(self.instances),
            "seed": int(self.seed),
            "batch": int(self.instances if self.batch is None else self.batch),
            "time_cap": self.time_cap,
            "iteration_scale": float(self.iteration_scale),
        }

    def cells(self) -> list[tuple[str, str]]:
        """The (problem, variant) pairs that run: those :func:`skip_reason` lets through."""
        return [
            (problem, variant)
            for problem in self.problems
            for variant in self.variants
            if skip_reason(problem, variant) is None
        ]

    def default_units(self) -> list[WorkUnit]:
        """One unit per (problem, variant, planner) at the planners' defaults."""
        return [
            WorkUnit({"problem": problem, "variant": variant, "planner": label, "budget": "defaults"}, self.settings())
            for problem, variant in self.cells()
            for label in self.planners
        ]

    def equal_time_units(self, default_rows: Sequence[Mapping[str, Any]]) -> list[WorkUnit]:
        """One unit per (problem, variant, planner other than the reference), its first factor estimate the
        reference's default median time per plan over the planner's (both from ``default_rows``)."""
        seconds = {(row["problem"], row["variant"], row["planner"]): row["median_time_s"] for row in default_rows}
        units = []
        for problem, variant in self.cells():
            reference = seconds[problem, variant, REFERENCE]
            for label in self.planners:
                if label == REFERENCE:
                    continue
                factor = _clamp(reference / seconds[problem, variant, label])
                settings = {**self.settings(), "reference_time_s": _round(reference), "factor": _round(factor)}
                key = {"problem": problem, "variant": variant, "planner": label, "budget": "equal time"}
                units.append(WorkUnit(key, settings))
        return units


def _clamp(factor: float) -> float:
    return min(FACTOR_BOUNDS[1], max(FACTOR_BOUNDS[0], factor))


def _round(value: float) -> float:
    """Four significant digits: a measured time or factor as it enters a unit's (fingerprinted) settings."""
    return float(f"{value:.4g}")


# ----------------------------------------------------------------------------- variants


def variant_weights(problem: PlanningProblem, variant: str, seed: int) -> tuple[float, ...] | None:
    """The ``state_weights`` the planners get on ``variant`` of ``problem`` (None: none passed)."""
    spec = VARIANTS[variant]
    own = problem.planner_kwargs.get("state_weights")
    if spec.weights == "none":
        return None
    if spec.weights == "gym":
        return None if own is None else tuple(float(weight) for weight in own)
    rng = np.random.default_rng([seed, spec.draw, zlib.crc32(problem.name.encode())])
    low, high = np.log(RANDOM_WEIGHT_RANGE[0]), np.log(RANDOM_WEIGHT_RANGE[1])
    dims = len(problem.instances[0][0])  # the state dimension
    factors = np.exp(rng.uniform(low, high, dims))
    base = np.ones(dims) if own is None else np.asarray(own, dtype=np.float64)
    return tuple(float(weight) for weight in factors * base)


def skip_reason(problem: str, variant: str) -> str | None:
    """Why ``variant`` does not run on ``problem`` (None: it runs)."""
    spec = VARIANTS[variant]
    if spec.weights == "none" and "state_weights" not in make_problem(problem, 1).planner_kwargs:
        return "the problem has no state weights of its own: the same as base"
    try:
        make_problem(problem, 1, spread=spec.spread)
    except ValueError as error:
        return str(error)
    return None


def variant_problem(name: str, variant: str, instances: int, seed: int) -> tuple[PlanningProblem, dict[str, Any]]:
    """Problem ``name`` perturbed as ``variant`` says (horizon, start spread), and the planner arguments
    (the problem's own, its ``state_weights`` replaced by :func:`variant_weights`)."""
    spec = VARIANTS[variant]
    problem = make_problem(name, instances, seed, spread=spec.spread)
    if spec.horizon != 1.0:
        problem = replace(problem, horizon=max(1, round(problem.horizon * spec.horizon)))
    kwargs = {key: value for key, value in problem.planner_kwargs.items() if key != "state_weights"}
    weights = variant_weights(problem, variant, seed)
    return problem, kwargs if weights is None else {**kwargs, "state_weights": weights}


# ----------------------------------------------------------------------------- plans


def make_runner(label: str, problem: PlanningProblem, planner_kwargs: Mapping[str, Any], scale: float) -> Planner:
    """Planner ``label`` at its defaults for ``problem``, its iteration budgets times ``scale``."""
    name, options = ROBUSTNESS_PLANNERS[label]
    runner = make_planner(name, problem.model, problem.horizon, **planner_kwargs, **options)
    if scale == 1.0:
        return runner
    config = scaled_budget(runner.config, scale)
    return make_planner(name, problem.model, problem.horizon, **planner_kwargs, config=config)


def plan_batches(
    problem: PlanningProblem, runner: Planner, batch: int, time_cap: float | None = None
) -> list[dict[str, Any]]:
    """Plan every instance, ``batch`` at a time with ``plan_batch`` (each problem seeded with the planner's
    seed, so its plan is that of ``runner.plan``), until ``time_cap`` seconds are spent; one record per plan
    as :func:`~bench.suites.gym.summarize` reads it: ``wall_time`` and ``model_transitions`` are the batch's
    shares per plan, ``model_calls`` the batch's calls (each serves every plan of the batch)."""
    records: list[dict[str, Any]] = []
    spent = 0.0
    for first in range(0, len(problem.instances), batch):
        chunk = problem.instances[first : first + batch]
        starts, goals = np.stack([start for start, _ in chunk]), np.stack([goal for _, goal in chunk])
        result = runner.plan_batch(starts, goals, seeds=[runner.config.seed] * len(chunk))
        seconds = float(result.info["wall_time"])
        spent += seconds
        for index, (start, goal) in enumerate(chunk):
            records.append(
                {
                    **judge(problem, start, goal, result.states[index].numpy()),
                    "wall_time": seconds / len(chunk),
                    "model_calls": int(result.info["model_calls"]),
                    "model_transitions": int(result.info["model_transitions"]) / len(chunk),
                    "iterations": int(result.info["problem_iterations"][index]),
                }
            )
        if time_cap is not None and spent > time_cap:
            break
    return records


def run_cell(task: Mapping[str, Any]) -> dict[str, Any]:
    """Worker of one cell (``task``: a unit's key and settings): the report row. An equal-time cell
    (``reference_time_s``, ``factor``) re-estimates its factor once when its time per plan misses the
    reference's by more than :data:`CALIBRATION_TOLERANCE`, and reports the run at the final factor."""
    problem, kwargs = variant_problem(task["problem"], task["variant"], task["instances"], task["seed"])
    reference, factor, runs = task.get("reference_time_s"), float(task.get("factor", 1.0)), 0
    while True:
        runner = make_runner(task["planner"], problem, kwargs, task["iteration_scale"] * factor)
        row = summarize(plan_batches(problem, runner, task["batch"], task["time_cap"]))
        runs += 1
        miss = 0.0 if reference is None else row["median_time_s"] / reference - 1.0
        if runs == 2 or abs(miss) <= CALIBRATION_TOLERANCE:
            break
        factor = _clamp(factor / (1.0 + miss))
    return {
        **{name: task[name] for name in ("problem", "variant", "planner", "budget")},
        **row,
        "factor": factor,
        "calibration_runs": runs if reference is not None else 0,
        "reference_time_s": reference,
        "iteration_budget": runner.config.iterations,
        "horizon": problem.horizon,
        "spread": VARIANTS[task["variant"]].spread,
        "state_weights": kwargs.get("state_weights"),
    }


# ----------------------------------------------------------------------------- the run


def run_robustness(
    suite: RobustnessSuite,
    out_dir: str | Path,
    *,
    command: str,
    resume: bool = False,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the default cells, then (``suite.equal_time``) the equal-time cells calibrated on them, reusing
    those in ``out_dir/<stem>.partial.jsonl`` with ``resume``; write ``<stem>.{json,md,png}`` under
    ``out_dir`` and return the report."""
    log = ResumeLog(Path(out_dir) / f"{suite.stem}.partial.jsonl", resume=resume)
    options: dict[str, Any] = {"log": log, "parallel": parallel, "progress": progress}
    rows = run_units(run_cell, suite.default_units(), desc="robustness: defaults", **options)
    if suite.equal_time:
        reference = [dict(row, budget="equal time") for row in rows if row["planner"] == REFERENCE]
        rows += reference + run_units(run_cell, suite.equal_time_units(rows), desc="robustness: equal time", **options)
    skipped = [
        {"problem": problem, "variant": variant, "reason": skip_reason(problem, variant)}
        for problem in suite.problems
        for variant in suite.variants
        if skip_reason(problem, variant) is not None
    ]
    report = {
        "command": command,
        "threads": suite.threads,
        "smoke_run": suite.iteration_scale != 1.0,
        "problems": list(suite.problems),
        "planners": list(suite.planners),
        "variants": list(suite.variants),
        "budgets": list(BUDGETS if suite.equal_time else BUDGETS[:1]),
        "settings": suite.settings(),
        "reference": REFERENCE,
        "rows": rows,
        "skipped": skipped,
        "backend": (parallel or ParallelOptions()).backend,
        "units_reused_from_log": log.reused,
    }
    write_report(out_dir, suite.stem, report, markdown, plot)
    return report


# ----------------------------------------------------------------------------- report


def _cells(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (problem, variant) pairs with rows, in the report's order."""
    return list(dict.fromkeys((row["problem"], row["variant"]) for row in report["rows"]))


def _rows(report: Mapping[str, Any], budget: str) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    return {(r["problem"], r["variant"], r["planner"]): r for r in report["rows"] if r["budget"] == budget}


def _cell(row: Mapping[str, Any] | None, budget: str) -> str:
    if row is None:
        return "–"
    text = f"{ci_cell(row['success_rate'], row['ci95'])} · {number_cell(row['median_time_s'], 3)} s"
    return text if budget == "defaults" else f"{text} · ×{row['factor']:.3g}"


def _gaps(report: Mapping[str, Any], budget: str, planner: str) -> list[tuple[float, str, str]]:
    """Per (problem, variant): (points below the best other baseline, where, which baseline)."""
    rows, gaps = _rows(report, budget), []
    for problem, variant in _cells(report):
        others = [b for b in BASELINES if b != planner and (problem, variant, b) in rows]
        if not others or (problem, variant, planner) not in rows:
            continue
        best = max(others, key=lambda b: rows[problem, variant, b]["success_rate"])
        gap = 100 * (rows[problem, variant, best]["success_rate"] - rows[problem, variant, planner]["success_rate"])
        gaps.append((gap, f"{problem} · {variant}", best))
    return gaps


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """Per budget and planner: "within N points of the best baseline on every variant" (N: the worst gap
    over the variants, at most :data:`GAP_POINTS`), else the variants where it falls further behind; then
    GRASP against GD at equal time on the swing-up variants."""
    lines = []
    for budget in report["budgets"]:
        for planner in report["planners"]:
            gaps = _gaps(report, budget, planner)
            if not gaps:
                continue
            gap, where, best = max(gaps)
            over = [f"{place} ({points:.0f} below {other})" for points, place, other in gaps if points > GAP_POINTS]
            verdict = (
                f"within {max(gap, 0.0):.0f} points of the best baseline on every variant (worst: {where}, "
                f"{_points(gap)} {best})"
                if not over
                else f"more than {GAP_POINTS:g} points below the best baseline on {len(over)}/{len(gaps)} variants: "
                + "; ".join(over)
            )
            lines.append(f"- {budget}, **{planner}**: {verdict}.")
    return lines + _against_gd(report)


def _points(gap: float) -> str:
    """A gap in percentage points as words: "3 points below", "level with", "2 points above"."""
    if round(gap) == 0:
        return "level with"
    return f"{abs(gap):.0f} points {'below' if gap > 0 else 'above'}"


def _against_gd(report: Mapping[str, Any]) -> list[str]:
    """GRASP against GD at equal time on the swing-up variants (the issue's second claim)."""
    rows = _rows(report, "equal time")
    pairs = [
        (f"{problem} · {variant}", rows[problem, variant, REFERENCE], rows[problem, variant, "gd"])
        for problem, variant in _cells(report)
        if "swingup" in problem and (problem, variant, "gd") in rows and (problem, variant, REFERENCE) in rows
    ]
    if not pairs:
        return []
    below = [
        f"{where} ({100 * grasp['success_rate']:.0f}% vs {100 * gd['success_rate']:.0f}%)"
        for where, grasp, gd in pairs
        if grasp["success_rate"] < gd["success_rate"]
    ]
    verdict = "at least GD's success on every one" if not below else "below GD on " + "; ".join(below)
    return [f"- equal time, **{REFERENCE}** vs **gd** on the {len(pairs)} swing-up variants: {verdict}."]


def markdown(report: Mapping[str, Any]) -> str:
    """The tables (rows (problem, variant), columns planners; one per budget), the summary and the notes."""
    settings, planners = report["settings"], report["planners"]
    lines = [
        "# Robustness suite (planner gym problems perturbed, exact models, open loop)",
        "",
        f"{report['threads']} torch thread(s); {settings['instances']} seeded instances per variant, planned "
        f"{settings['batch']} at a time with `plan_batch` (each plan equal to the gym's one-at-a-time `plan`); "
        "time per plan = a batch's wall time / its instances, so lower than the gym's one-at-a-time times.",
    ]
    if report["smoke_run"]:
        lines += [
            "",
            f"**Smoke run**: iteration budgets ×{settings['iteration_scale']:g}; its rates are not measurements.",
        ]
    lines += [
        "",
        "Variants, one factor at a time off `base` (the gym's problem as is): `weights none` (the planners' "
        "natural scaling), `weights random k` (log-uniform in [0.2, 5] per dimension × the gym's weights), "
        "`H x0.6` / `H x1.5`, `spread x3` (starts 3× as far from the nominal start). Success: the problem's own test.",
    ]
    titles = {
        "defaults": "Every planner at its defaults",
        "equal time": f"Equal wall time per plan ({REFERENCE}'s default; iteration budgets × the factor shown)",
    }
    for budget in report["budgets"]:
        rows = _rows(report, budget)
        lines += ["", f"## {titles[budget]}", "", "Cell: success [95% CI] · median s per plan.", ""]
        lines += ["| problem · variant | " + " | ".join(planners) + " |", "|---|" + "---|" * len(planners)]
        for problem, variant in _cells(report):
            cells = [_cell(rows.get((problem, variant, planner)), budget) for planner in planners]
            lines.append(f"| {problem} · {variant} | " + " | ".join(cells) + " |")
    lines += ["", "## Summary", "", *summary_lines(report)]
    if report["skipped"]:
        lines += ["", "Skipped:", ""] + [
            f"- {s['problem']} · {s['variant']}: {s['reason']}." for s in report["skipped"]
        ]
    return "\n".join(lines) + "\n"


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Success per variant (x: (problem, variant), each planner's points shifted a little so that equal rates
    stay visible), one line per planner and problem; a panel per budget."""
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import save_figure

    cells, budgets = _cells(report), report["budgets"]
    fig, axes = plt.subplots(1, len(budgets), figsize=(max(7.0, 0.45 * len(cells)) * len(budgets), 4.8), squeeze=False)
    for axis, budget in zip(axes[0], budgets):
        rows = _rows(report, budget)
        for number, planner in enumerate(report["planners"]):
            for problem in dict.fromkeys(name for name, _ in cells):  # one line per problem, no line across them
                x = [index for index, cell in enumerate(cells) if cell[0] == problem]
                rates = [rows.get((*cells[index], planner), {}).get("success_rate") for index in x]
                values = [np.nan if rate is None else 100 * rate for rate in rates]
                label = planner if problem == cells[0][0] else None
                shift = 0.08 * (number - (len(report["planners"]) - 1) / 2)  # equal rates stay visible
                axis.plot(np.add(x, shift), values, marker="o", markersize=3, color=f"C{number}", label=label)
        for index in range(1, len(cells)):
            if cells[index][0] != cells[index - 1][0]:
                axis.axvline(index - 0.5, color="grey", linewidth=0.5, linestyle="--")
        axis.set_xticks(range(len(cells)), [f"{p} · {v}" for p, v in cells], rotation=60, ha="right", fontsize=7)
        axis.set(title=budget, ylabel="success %", ylim=(-3, 103))
        axis.legend(fontsize=7)
    fig.suptitle("Robustness: success per variant of the planner gym's problems")
    fig.tight_layout()
    return save_figure(fig, path)
