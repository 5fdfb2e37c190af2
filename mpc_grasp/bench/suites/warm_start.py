"""The warm-start study (issue 4): does warm-starting GRASP from the previous plan save optimisation in closed loop?

Grid world ``wall`` (``task="random"``: start/goal anywhere, the default; ``"across"``: opposite rooms),
planning on the exact analytic model ``PointMassWalls.from_layout("wall")`` (or a learned checkpoint).

Part A, same states (one work unit per episode): a warm-started ``GraspMPC`` runs a closed-loop episode; at
every replan after the first, the SAME problem (state, goal) is solved twice with the same budget and no
early stop (:class:`ComparingGrasp`): warm (from the previous plan shifted, as the agent does) and cold (no
init). Every ``eval_every`` iterations the best candidate's true model-rollout cost is recorded. The agent
executes the warm plan. :func:`analyse` reports per replan the iterations-to-quality (first iteration whose
rollout cost is <= ``cold final cost x (1 + rel_tol) + abs_tol``) and the iterations-to-success-under-model
(some candidate's rollout ends within ``goal_tolerance``: what early stopping would cut at).

Part B, closed loop (one work unit per agent): warm- and cold-started agents with early stopping on the same
episodes: success (Wilson 95%), median iterations and wall time per plan.

Episode k of part A starts where the k-th reset after ``reset(seed=seed)`` puts it, which is what one run
of k+1 episodes from that seed meets, so the units are independent and reproduce the sequential study.
Outputs (:func:`run_warm_start`): ``warm_start.{json,md,png}`` (``warm_start_quick.*`` with ``quick``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from mpc_grasp.bench.engine import REPO_ROOT, ResumeLog, WorkUnit, file_hashes, run_units
from mpc_grasp.bench.parallel import ParallelOptions
from mpc_grasp.bench.report import median, write_report
from mpc_grasp.planners import GraspConfig, GraspPlanner, PlanResult, config_from_kwargs

if TYPE_CHECKING:
    from gymnasium import spaces

__all__ = [
    "ENV_ID",
    "QUICK",
    "ComparingGrasp",
    "Trace",
    "WarmStartConfig",
    "analyse",
    "first_reaching",
    "markdown",
    "plot",
    "run_warm_start",
]

ENV_ID = "mpc_grasp/GridWorldWall-v0"
PLANNER_KWARGS = ("dense_goal_weight", "state_weights")
"""Options that are planner arguments, not :class:`GraspConfig` fields."""
QUICK: dict[str, Any] = {"episodes": 1, "closed_loop_episodes": 1, "horizon": 30, "iterations": 60, "replan_every": 10, "max_steps": 40}
"""The ``--quick`` settings (< 1 minute)."""


@dataclass(frozen=True)
class WarmStartConfig:
    """Everything that determines the study's numbers (and its output names)."""

    model: str | None = None
    """Learned world-model checkpoint; None = the exact analytic ``PointMassWalls``."""
    episodes: int = 2
    closed_loop_episodes: int = 2
    """Part B episodes per agent (0 skips part B)."""
    horizon: int = 50
    iterations: int = 150
    replan_every: int = 5
    max_steps: int = 60
    eval_every: int = 5
    goal_tolerance: float = 0.3
    rel_tol: float = 0.05
    abs_tol: float = 0.01
    options: Mapping[str, Any] = field(default_factory=dict)
    """GRASP options (``--set``): config fields and the planner arguments in :data:`PLANNER_KWARGS`."""
    task: str = "random"
    seed: int = 1000
    quick: bool = False
    out_dir: Path = REPO_ROOT / "results"
    resume: bool = False
    parallel: ParallelOptions = field(default_factory=ParallelOptions)

    def __post_init__(self) -> None:
        for name in ("episodes", "horizon", "iterations", "replan_every", "max_steps", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1")
        if self.closed_loop_episodes < 0:
            raise ValueError("closed-loop-episodes must be >= 0")
        if self.task not in ("random", "across"):
            raise ValueError(f"task must be 'random' or 'across', got {self.task!r}")
        grasp_options(self)  # unknown options fail here, before any work

    @property
    def stem(self) -> str:
        return "warm_start_quick" if self.quick else "warm_start"

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings every work unit depends on."""
        keys = ("model", "horizon", "iterations", "replan_every", "max_steps", "eval_every", "goal_tolerance", "task", "seed")
        return {**{key: getattr(self, key) for key in keys}, "options": dict(self.options)}


def grasp_options(config: WarmStartConfig | Mapping[str, Any]) -> tuple[GraspConfig, dict[str, Any]]:
    """The GRASP config and the extra planner arguments of a study config (or its :meth:`settings`)."""
    settings = config.settings() if isinstance(config, WarmStartConfig) else config
    options = {"iterations": settings["iterations"], **settings["options"]}
    planner_kwargs = {key: options.pop(key) for key in PLANNER_KWARGS if key in options}
    return cast(GraspConfig, config_from_kwargs(GraspConfig, options)), planner_kwargs


# ----------------------------------------------------------------------------- the traced planner


@dataclass(frozen=True)
class Trace:
    """Best-candidate rollout cost and min final goal distance, sampled during one plan."""

    iterations: tuple[int, ...]
    cost: tuple[float, ...]
    min_final_distance: tuple[float, ...]
    final_cost: float
    wall_time: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trace:
        return cls(tuple(data["iterations"]), tuple(data["cost"]), tuple(data["min_final_distance"]), data["final_cost"], data["wall_time"])


class ComparingGrasp(GraspPlanner):
    """A GRASP planner that, whenever it gets a warm start, also solves the same problem cold.

    Both solves are traced (rollout cost every ``eval_every`` iterations); the warm result is
    returned, so the agent's behaviour is exactly that of a warm-started agent.
    """

    def __init__(self, model: Any, horizon: int, config: GraspConfig, eval_every: int, **kwargs: Any) -> None:
        GraspPlanner.__init__(self, model, horizon, config, **kwargs)
        self.eval_every = int(eval_every)
        self.comparisons: list[dict[str, Trace]] = []

    def plan_batch(
        self, states: Any, goals: Any = None, init: Any = None, seeds: Any = None, *, iterations: int | None = None
    ) -> PlanResult:
        if init is None:
            return super().plan_batch(states, goals, seeds=seeds, iterations=iterations)
        cold, cold_trace = self._traced(states, goals, None, seeds)
        warm, warm_trace = self._traced(states, goals, init, seeds)
        self.comparisons.append({"cold": cold_trace, "warm": warm_trace})
        return warm

    def _traced(self, states: Any, goals: Any, init: Any, seeds: Any = None) -> tuple[PlanResult, Trace]:
        start = torch.as_tensor(states, dtype=torch.float32, device=self.device)
        goal = torch.as_tensor(goals, dtype=torch.float32, device=self.device)
        iterations: list[int] = []
        costs: list[float] = []
        distances: list[float] = []
        last = self.config.iterations - 1

        def record(iteration: int, _virtual: Any, actions: torch.Tensor) -> None:
            if iteration != 0 and (iteration + 1) % self.eval_every != 0 and iteration != last:
                return
            with torch.no_grad():  # own rollout: the planner's model-call counters stay untouched
                actions = self.clamp_actions(actions)
                state = start[:, None, :].expand(actions.shape[0], actions.shape[1], self.state_dim)
                rollout = [state]
                for step in range(actions.shape[2]):
                    state = self.model(state.reshape(-1, self.state_dim), actions[:, :, step].reshape(-1, self.action_dim))
                    state = state.reshape(actions.shape[0], actions.shape[1], self.state_dim)
                    rollout.append(state)
                rollout_t = torch.stack(rollout, dim=2)
                cost = self.trajectory_cost(rollout_t, actions, goal)
                final = (rollout_t[:, :, -1] - goal[:, None]).norm(dim=-1)
            iterations.append(iteration + 1)
            costs.append(float(cost.min()))
            distances.append(float(final.min()))

        self.callback = record
        try:
            result = super().plan_batch(states, goals, init=init, seeds=seeds)
        finally:
            self.callback = None
        if result.info["iterations"] == 0:  # a warm start that already reaches the goal is kept (keep_solved_warm_start)
            iterations, costs = [0], [float(result.cost.min())]
            distances = [float(result.info["final_distance"].min())]
        trace = Trace(tuple(iterations), tuple(costs), tuple(distances), float(result.cost.min()), float(result.info["wall_time"]))
        return result, trace


# ----------------------------------------------------------------------------- analysis


def first_reaching(trace: Trace, threshold: float, values: str = "cost") -> int | None:
    """First recorded iteration whose value is <= ``threshold`` (None if never)."""
    series = trace.cost if values == "cost" else trace.min_final_distance
    for iteration, value in zip(trace.iterations, series):
        if value <= threshold:
            return iteration
    return None


def _stats(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    values = [row[key] for row in rows if row[key] is not None]
    return {"reached": len(values), "of": len(rows), "median": median(values), "mean": float(np.mean(values)) if values else None}


def analyse(comparisons: Sequence[Mapping[str, Trace]], rel_tol: float, abs_tol: float, goal_tolerance: float) -> dict[str, Any]:
    """Per-replan iterations-to-quality / -to-success for warm and cold, and their summaries."""
    rows: list[dict[str, Any]] = []
    for pair in comparisons:
        cold, warm = pair["cold"], pair["warm"]
        threshold = cold.final_cost * (1 + rel_tol) + abs_tol
        rows.append({
            "informative": cold.cost[0] - cold.final_cost > abs_tol,
            "threshold": threshold,
            "cold_final_cost": cold.final_cost,
            "warm_final_cost": warm.final_cost,
            "cold_iters_to_quality": first_reaching(cold, threshold),
            "warm_iters_to_quality": first_reaching(warm, threshold),
            "cold_iters_to_success": first_reaching(cold, goal_tolerance, "distance"),
            "warm_iters_to_success": first_reaching(warm, goal_tolerance, "distance"),
            "cold_wall_time_s": cold.wall_time,
            "warm_wall_time_s": warm.wall_time,
        })  # fmt: skip
    informative = [r for r in rows if r["informative"]]
    both = [r for r in rows if r["warm_iters_to_quality"] is not None and r["cold_iters_to_quality"] is not None]
    success_both = [r for r in rows if r["warm_iters_to_success"] is not None and r["cold_iters_to_success"] is not None]
    return {
        "replans_compared": len(rows),
        "warm_better_final_cost": sum(r["warm_final_cost"] < r["cold_final_cost"] for r in rows),
        "median_final_cost": {kind: median([r[f"{kind}_final_cost"] for r in rows]) for kind in ("warm", "cold")},
        "iters_to_quality": {kind: _stats(rows, f"{kind}_iters_to_quality") for kind in ("warm", "cold")},
        "iters_to_success_under_model": {kind: _stats(rows, f"{kind}_iters_to_success") for kind in ("warm", "cold")},
        "informative_replans": len(informative),
        "iters_to_quality_informative": {kind: _stats(informative, f"{kind}_iters_to_quality") for kind in ("warm", "cold")},
        "median_speedup_to_quality": median([r["cold_iters_to_quality"] / r["warm_iters_to_quality"] for r in both]),
        "median_speedup_to_success": median([r["cold_iters_to_success"] / r["warm_iters_to_success"] for r in success_both]),
        "rows": rows,
    }


# ----------------------------------------------------------------------------- work units


def _model(path: str | None) -> Any:
    if path:
        from mpc_grasp.models import load_world_model

        return load_world_model(path)
    from mpc_grasp.models.analytic import PointMassWalls

    return PointMassWalls.from_layout("wall", agent_radius=0.1, step_size=0.25)


def episode_start_goal(env: Any, seed: int, index: int) -> tuple[list[float], list[float]]:
    """Start and goal of episode ``index`` of a run of episodes whose first reset had ``seed``."""
    _, info = env.reset(seed=seed)
    for _ in range(index):
        _, info = env.reset()
    return np.asarray(info["position"]).tolist(), np.asarray(info["goal"]).tolist()


def run_unit(task: Mapping[str, Any]) -> dict[str, Any]:
    """Worker: part A (``part == "A"``: one episode, its warm/cold comparisons) or part B (one agent's episodes)."""
    from mpc_grasp.control.agent import GraspMPC
    from mpc_grasp.control.episodes import run_episodes, summarize_episodes
    from mpc_grasp.data import make_env

    model = _model(task["model"])
    config, planner_kwargs = grasp_options(task)
    env = make_env(ENV_ID, task=task["task"])
    try:
        if task["part"] == "A":
            action_space = cast("spaces.Box", env.action_space)
            low, high = action_space.low, action_space.high
            planner = ComparingGrasp(model, task["horizon"], config, task["eval_every"], action_low=low, action_high=high, **planner_kwargs)
            agent = GraspMPC(model, planner, action_space=env.action_space, replan_every=task["replan_every"])
            start, goal = episode_start_goal(env, task["seed"], task["episode"])
            (record,) = run_episodes(
                env, agent, 1, seed=None, max_steps=task["max_steps"], reset_options={"start": start, "goal": goal}, progress=False
            )
            episode = {**record.to_json(), "index": task["episode"]}
            return {"episode": episode, "traces": [{kind: asdict(trace) for kind, trace in pair.items()} for pair in planner.comparisons]}
        agent = GraspMPC(
            model,
            "grasp",
            horizon=task["horizon"],
            action_space=env.action_space,
            replan_every=task["replan_every"],
            warm_start=task["warm"],
            **{
                "iterations": task["iterations"],
                **task["options"],
                "goal_tolerance": task["goal_tolerance"],
                "check_every": task["eval_every"],
            },
        )
        records = run_episodes(env, agent, task["episodes"], seed=task["seed"], max_steps=task["max_steps"], progress=False)
        return {**summarize_episodes(records), "episodes_detail": [r.to_json() for r in records]}
    finally:
        env.close()


def units(config: WarmStartConfig) -> list[WorkUnit]:
    """Part A: one unit per episode; part B: one unit per agent (warm, cold)."""
    settings = config.settings()
    code = file_hashes([config.model]) if config.model else {}
    out = [
        WorkUnit({"part": "A", "episode": k}, {**settings, "model_sha256": code}, {**settings, "part": "A", "episode": k})
        for k in range(config.episodes)
    ]
    for warm in (True, False) if config.closed_loop_episodes else ():
        extra = {"part": "B", "warm": warm, "episodes": config.closed_loop_episodes}
        out.append(
            WorkUnit({"part": "B", "agent": "warm" if warm else "cold"}, {**settings, **extra, "model_sha256": code}, {**settings, **extra})
        )
    return out


def run_warm_start(config: WarmStartConfig, command: str, progress: bool = True) -> dict[str, Any]:
    """Run both parts (reusing the resume log), write ``<stem>.{json,md,png}``, return the report."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    work = units(config)
    log = ResumeLog(Path(config.out_dir) / f"{config.stem}.partial.jsonl", resume=config.resume)
    results = run_units(run_unit, work, log=log, parallel=config.parallel, progress=progress, desc="warm-start units")
    part_a = [result for unit, result in zip(work, results) if unit.key["part"] == "A"]
    traces = [pair for result in part_a for pair in result["traces"]]
    if not traces:
        raise SystemExit("no warm-started replans happened (episodes ended at the first plan); use more steps/episodes")
    comparisons = [{kind: Trace.from_json(trace) for kind, trace in pair.items()} for pair in traces]
    closed_loop = {unit.key["agent"]: result for unit, result in zip(work, results) if unit.key["part"] == "B"}
    grasp_config, _ = grasp_options(config)
    report = {
        "command": command,
        "model": f"learned ({config.model})" if config.model else "exact analytic PointMassWalls",
        "env_id": ENV_ID,
        "env_kwargs": {"task": config.task},
        "settings": {
            **{k: v for k, v in asdict(config).items() if k not in ("out_dir", "parallel", "options")},
            "options": dict(config.options),
        },
        "grasp_config": asdict(grasp_config),
        "part_a_episodes": [result["episode"] for result in part_a],
        "part_a": analyse(comparisons, config.rel_tol, config.abs_tol, config.goal_tolerance),
        "traces": traces,
        "part_b_closed_loop": closed_loop,
        "units_reused_from_log": log.reused,
        "total_time_s": time.perf_counter() - started,
    }
    write_report(config.out_dir, config.stem, report, markdown, plot)
    return report


# ----------------------------------------------------------------------------- report


def markdown(report: Mapping[str, Any]) -> str:
    """The study's findings as text (also renders ``results/warm_start.json`` of earlier runs)."""
    settings, analysis = report["settings"], report["part_a"]
    q, s, qi = analysis["iters_to_quality"], analysis["iters_to_success_under_model"], analysis["iters_to_quality_informative"]
    lines = [
        f"# GRASP warm vs cold start, grid world `wall` ({settings['task']} tasks), {report['model']}",
        "",
        f"H={settings['horizon']}, {settings['iterations']} iterations per plan, replan every {settings['replan_every']} steps, "
        f"{settings['episodes']} episode(s) of {settings['max_steps']} steps.",
        "",
        f"Part A: {analysis['replans_compared']} replans compared (same state, same budget, no early stop).",
        "",
        "| iterations | warm median (reached) | cold median (reached) |",
        "|---|---|---|",
    ]
    for name, block in (("to cold-start quality", q), ("to success under the model", s), ("to quality, informative replans", qi)):
        lines.append(
            f"| {name} | {block['warm']['median']} ({block['warm']['reached']}/{block['warm']['of']}) | "
            f"{block['cold']['median']} ({block['cold']['reached']}/{block['cold']['of']}) |"
        )
    lines += [
        "",
        f"Informative replans (the cold plan improved by > abs_tol): {analysis['informative_replans']}. Median speedup (cold/warm "
        f"iterations) to quality {analysis['median_speedup_to_quality']}, to success {analysis['median_speedup_to_success']}; warm final "
        f"cost lower in {analysis['warm_better_final_cost']}/{analysis['replans_compared']}.",
    ]
    if report["part_b_closed_loop"]:
        lines += [
            "",
            f"Part B, closed loop with early stopping at {settings['goal_tolerance']}:",
            "",
            "| agent | success [95% CI] | median iterations / plan | median plan time s | total plan time s |",
            "|---|---|---|---|---|",
        ]
        for kind, summary in report["part_b_closed_loop"].items():
            lo, hi = summary["success_ci95"]
            lines.append(
                f"| {kind} | {summary['successes']}/{summary['episodes']} [{lo:.2f}, {hi:.2f}] | {summary['median_iterations_per_plan']} | "
                f"{summary['median_plan_time_s']:.2f} | {summary['total_plan_time_s']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Cost vs iteration (median and IQR over replans) and the two iterations-to-X histograms."""
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import save_figure

    settings, analysis = report["settings"], report["part_a"]
    comparisons = [{kind: Trace.from_json(trace) for kind, trace in pair.items()} for pair in report["traces"]]
    iterations, abs_tol = settings["iterations"], settings["abs_tol"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for kind, color in (("cold", "tab:blue"), ("warm", "tab:red")):
        grid = np.asarray(comparisons[0][kind].iterations)
        pairs = [pair for pair in comparisons if len(pair[kind].cost) == len(grid)]
        curves = np.array([(np.asarray(p[kind].cost) + abs_tol) / (p["cold"].final_cost + abs_tol) for p in pairs])
        q25, med, q75 = np.percentile(curves, [25, 50, 75], axis=0)
        ax.plot(grid, med, color=color, lw=2, label=f"{kind} start (median over {len(curves)} replans)")
        ax.fill_between(grid, q25, q75, color=color, alpha=0.2)
    ax.axhline(1.0, color="0.4", ls=":", lw=1)
    ax.set(yscale="log", xlabel="GRASP iteration", ylabel="rollout cost / cold plan's final cost")
    ax.set_title("best-candidate rollout cost (band: 25-75%)", fontsize=10)
    ax.legend(fontsize=8)
    width = iterations / 15
    bins = [*np.linspace(0, iterations, 16)[:-1], iterations + 0.5, iterations + 0.5 + width]
    overflow = iterations + 0.5 + width / 2
    for ax, key, label in (
        (axes[1], "iters_to_quality", "iterations to reach the cold plan's final cost"),
        (axes[2], "iters_to_success", "iterations to success under the model"),
    ):
        for kind, color in (("cold", "tab:blue"), ("warm", "tab:red")):
            values = [r[f"{kind}_{key}"] for r in analysis["rows"]]
            missed = sum(v is None for v in values)
            ax.hist(
                [overflow if v is None else v for v in values],
                bins=bins,
                color=color,
                alpha=0.5,
                label=f"{kind} (never: {missed}/{len(values)})",
            )
        ax.axvline(iterations + 0.5, color="0.4", ls=":", lw=1)
        ax.set(xlabel=label + " (right of dotted line: never)", ylabel="replans")
        ax.legend(fontsize=8)
    q = analysis["iters_to_quality"]
    fig.suptitle(
        f"GRASP warm vs cold start, grid world `wall` ({settings['task']} tasks), {report['model'].split(' (')[0]} model, H={settings['horizon']}: "
        f"median iterations to cold quality {q['warm']['median']} vs {q['cold']['median']}"
    )
    fig.tight_layout()
    return save_figure(fig, path)
