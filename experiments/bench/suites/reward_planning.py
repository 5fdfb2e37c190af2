"""Reward-driven planning on the exact physics: does the planner itself swing the cart-pole up and hold it?

Closed-loop ``GraspMPC`` on ``mpc_grasp/CartPoleSwingup-v0`` with the analytic ``CartPoleSwingupModel`` and the env's
own reward (``cartpole_swingup_reward``), so no learned-model error plays a part. One work unit per planner variant
(:func:`~bench.suites.mbrl.exact_model_check`, resumable): GRASP at its reward default (lifted steps off,
a sampling sync every iteration), GRASP with the lifted steps forced on (the default before), CEM at its defaults and
at the cart-pole MBRL recipe's 3 warm iterations, MPPI. Writes ``results/reward_planning.{json,md,png}``.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.engine import ResumeLog, WorkUnit, run_units
from bench.report import ci_cell, wilson_interval, write_report
from bench.suites.mbrl import exact_model_check
from mpc_grasp.parallel import ParallelOptions

ENV_ID = "mpc_grasp/CartPoleSwingup-v0"

VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "grasp": ("grasp", {}, "GRASP, defaults (reward: lifted steps off, a sync every iteration)"),
    "grasp_lifted": ("grasp", {"lifted_updates": True}, "GRASP, lifted steps on (sync every 4 iterations)"),
    "cem": ("cem", {}, "CEM, defaults (5 warm iterations)"),
    "cem_warm3": ("cem", {"warm_iterations": 3}, "CEM, 3 warm iterations (the MBRL recipe before)"),
    "mppi": ("mppi", {}, "MPPI, defaults"),
}
"""Variant key -> (planner, options, label)."""


@dataclass(frozen=True)
class RewardPlanningConfig:
    """What ``experiments/reward_planning.py`` runs."""

    variants: tuple[str, ...] = tuple(VARIANTS)
    episodes: int = 5
    """Fixed-seed episodes per variant (seeds 0.., the same starts for every variant)."""
    horizon: int = 50
    """Planning horizon (2 s of cart-pole: the MBRL recipe's)."""
    out_dir: Path = Path("results")
    stem: str = "reward_planning"
    runs_dir: Path = Path("runs")
    resume: bool = False
    parallel: ParallelOptions = field(default_factory=ParallelOptions)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
        if self.episodes < 1 or self.horizon < 1:
            raise ValueError(f"episodes and horizon must be positive, got {self.episodes}, {self.horizon}")


def run_reward_planning(config: RewardPlanningConfig, command: str, progress: bool = True) -> dict[str, Any]:
    """Run every variant (logged under ``runs_dir/<stem>``), write the report, return it."""
    started = time.perf_counter()
    units = [
        WorkUnit(
            {"variant": key},
            {
                "env_id": ENV_ID,
                "planner": VARIANTS[key][0],
                "options": VARIANTS[key][1],
                "horizon": config.horizon,
                "episodes": config.episodes,
            },
        )
        for key in config.variants
    ]
    log = ResumeLog(config.runs_dir / config.stem / "units.partial.jsonl", resume=config.resume)
    rows = run_units(
        exact_model_check, units, log=log, parallel=config.parallel, progress=progress, desc="reward planning"
    )
    report = {
        "env_id": ENV_ID,
        "horizon": config.horizon,
        "episodes": config.episodes,
        "rows": [{"variant": key, "label": VARIANTS[key][2], **row} for key, row in zip(config.variants, rows)],
        "command": command,
        "machine": platform.platform(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "total_time_s": time.perf_counter() - started,
    }
    write_report(config.out_dir, config.stem, report, reward_planning_markdown, plot_reward_planning)
    return report


def reward_planning_markdown(report: Mapping[str, Any]) -> str:
    """Success (balanced at the last step) with its Wilson interval, returns, first success step, plan time."""
    lines = [
        f"# Reward-driven planning on the exact cart-pole ({report['env_id']}, H = {report['horizon']})",
        "",
        "Closed-loop GraspMPC with the analytic model and the env's own reward, "
        f"{report['episodes']} fixed-seed episodes per planner (250 steps; return at most 250). Success: pole within "
        "0.2 rad of upright, |θ̇| < 1 and |x| < 1 at the last step. Plan time: median per control step, 1 torch thread.",
        "",
        "| planner | balanced at the end | episode returns | mean return | first success step | plan time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        successes, episodes = int(row["successes"] or 0), int(row["episodes"])
        interval = wilson_interval(successes, episodes)
        returns = ", ".join(f"{value:.0f}" for value in row["episode_returns"])
        lines.append(
            f"| {row['label']} | {successes}/{episodes} {ci_cell(successes / episodes, interval)} | {returns} | "
            f"{row['mean_return']:.1f} | {row['first_success_steps']} | {row['median_plan_time_s']:.3f} |"
        )
    return "\n".join(lines)


def plot_reward_planning(report: Mapping[str, Any], path: Path) -> Path:
    """Episode returns per planner (dots) with their mean (bar), and the median plan time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    figure, (returns_axis, time_axis) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1.4]})
    positions = range(len(rows))
    returns_axis.bar(positions, [row["mean_return"] for row in rows], color="#9ecae1", label="mean return")
    for index, row in enumerate(rows):
        returns_axis.scatter(
            [index] * len(row["episode_returns"]), row["episode_returns"], color="#08519c", s=14, zorder=3
        )
        returns_axis.text(
            index, row["mean_return"] + 4, f"{row['successes'] or 0}/{row['episodes']}", ha="center", fontsize=9
        )
    returns_axis.set_xticks(list(positions), [row["variant"] for row in rows], rotation=20)
    returns_axis.set_ylabel("episode return (balanced at the end: n/N above the bar)")
    returns_axis.set_title(f"Exact cart-pole swing-up, env reward, H = {report['horizon']}")
    time_axis.bar(positions, [row["median_plan_time_s"] for row in rows], color="#fdae6b")
    time_axis.set_xticks(list(positions), [row["variant"] for row in rows], rotation=20)
    time_axis.set_ylabel("median plan time per step (s)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
