"""The five-env sample-efficiency suite of model-based RL (issue 33): GraspMPC (GRASP, CEM) vs SAC and PPO.

Envs (:data:`SUITE_ENVS`): ``Pendulum-v1``, ``mpc_grasp/CartPoleSwingup-v0``, ``Reacher-v5``, ``InvertedPendulum-v5``
and ``InvertedDoublePendulum-v5``, each with its solved threshold (mean evaluation return). Agents: the MBRL loop
(:func:`mpc_grasp.rl.mbrl.run_mbrl`) with GRASP and with CEM inside ``GraspMPC`` -- the env's recipe where it has one
(:func:`~mpc_grasp.rl.mbrl.mbrl_recipe`), else the ``MBRLConfig`` defaults, so Reacher and the double pendulum measure
defaults no one chose on them -- and SB3's SAC and PPO at their defaults for ``rl_steps`` env steps, paused at the
loop's step counts (and a grid up to ``rl_steps``) to run the same fixed-seed evaluation episodes as the loop.

Every run is resumable and reused: a loop keeps its round checkpoints in ``runs_dir/<env>/<agent>_seed<k>``, the RL
runs go through the engine's resume log ``runs_dir/rl.partial.jsonl``. :func:`collect_suite` reads whatever has
finished (a loop's finished rounds, a finished RL run), so the report can be drawn from a partial suite; each curve
says how many seeds it has. Per env and agent the report gives the curve (mean over seeds with a 95% t-interval),
the env steps at which the mean first reaches the threshold, SAC's return at ``rl_steps`` and the env steps each
agent needs to reach it (issue 33: at most a fifth of SAC's), and the training wall-clock per env step.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.engine import ResumeLog
from bench.suites.mbrl import first_reaching
from bench.suites.rl import RLRun, run_rl_runs
from mpc_grasp.parallel import ParallelOptions
from mpc_grasp.rl.mbrl import MBRL_RECIPES, MBRLConfig, finished_rounds, mbrl_recipe, resume_conflicts, run_mbrl

__all__ = [
    "LOOP_AGENTS",
    "RL_AGENTS",
    "SUITE_ENVS",
    "SuiteEnv",
    "agent_summary",
    "collect_suite",
    "loop_config",
    "mean_interval",
    "plot_suite",
    "rl_run",
    "run_suite",
    "suite_markdown",
]

LOOP_AGENTS: tuple[str, ...] = ("grasp", "cem")
"""Planners inside ``GraspMPC`` in the MBRL loop."""
RL_AGENTS: tuple[str, ...] = ("sac", "ppo")
AGENT_LABELS = {"grasp": "GraspMPC (GRASP)", "cem": "GraspMPC (CEM)", "sac": "SAC", "ppo": "PPO"}
RL_GRID: tuple[int, ...] = (1000, 2000, 3000, 4000, 5000, 7500, 10_000, 15_000, 20_000)
"""Step counts the RL runs are evaluated at besides the loop's (up to ``rl_steps``)."""


@dataclass(frozen=True)
class SuiteEnv:
    """One env of the suite: its threshold and the loop's budget (None: the recipe's, else the defaults')."""

    env_id: str
    threshold: float
    """Solved: mean evaluation return at or above this."""
    rounds: int
    """Rounds of the loop after the random seed round."""
    eval_episodes: int
    seed_steps: int | None = None
    steps_per_round: int | None = None
    rl_key: str = ""
    """The ``"return"``-evaluated entry of ``bench.suites.rl.RL_ENVS`` for SAC and PPO."""


SUITE_ENVS: dict[str, SuiteEnv] = {
    "pendulum": SuiteEnv("Pendulum-v1", -200.0, rounds=9, eval_episodes=5, rl_key="pendulum"),
    "cartpole_swingup": SuiteEnv(
        "mpc_grasp/CartPoleSwingup-v0", 190.0, rounds=5, eval_episodes=3, rl_key="cartpole_swingup"
    ),
    "reacher": SuiteEnv("Reacher-v5", -5.0, rounds=9, eval_episodes=5, rl_key="reacher"),
    "inverted_pendulum": SuiteEnv("InvertedPendulum-v5", 1000.0, rounds=9, eval_episodes=3, rl_key="inverted_pendulum"),
    "inverted_double_pendulum": SuiteEnv(
        "InvertedDoublePendulum-v5", 9000.0, rounds=19, eval_episodes=3, rl_key="inverted_double_pendulum"
    ),
}
"""The suite's envs by slug. Thresholds are issue 33's targets (cart-pole: the swing-up study's 190 of 250)."""


def loop_config(env: SuiteEnv, planner: str, seed: int) -> MBRLConfig:
    """The loop of ``planner`` on ``env``: the env's recipe (or the ``MBRLConfig`` defaults) at the suite's budget."""
    budget: dict[str, Any] = {"rounds": env.rounds, "eval_episodes": env.eval_episodes, "seed": seed}
    budget.update(
        {name: value for name in ("seed_steps", "steps_per_round") if (value := getattr(env, name)) is not None}
    )
    if env.env_id in MBRL_RECIPES:
        return mbrl_recipe(env.env_id, planner=planner, **budget)
    return MBRLConfig(env_id=env.env_id, planner=planner, **budget)


def rl_run(env: SuiteEnv, algo: str, seed: int, rl_steps: int) -> RLRun:
    """``algo`` trained for ``rl_steps`` env steps, evaluated at the loop's step counts and :data:`RL_GRID` on the
    loop's fixed-seed evaluation episodes."""
    loop = loop_config(env, LOOP_AGENTS[0], seed)
    counts = {loop.env_steps(index) for index in range(loop.rounds + 1)} | set(RL_GRID)
    return RLRun(
        env.rl_key,
        algo,
        f"suite_seed{seed}",
        rl_steps,
        seed=seed,
        eval_seed=loop.eval_seed,
        n_eval=env.eval_episodes,
        eval_at=tuple(sorted(count for count in counts if count <= rl_steps)),
    )


def _run_dir(runs_dir: Path, slug: str, agent: str, seed: int) -> Path:
    return runs_dir / slug / f"{agent}_seed{seed}"


def run_suite(
    runs_dir: str | Path,
    *,
    envs: Sequence[str],
    agents: Sequence[str],
    seeds: Sequence[int],
    rl_steps: int = 20_000,
    parallel: ParallelOptions | None = None,
    eval_workers: int = 1,
    progress: bool = True,
) -> None:
    """Run (or continue) every requested run, seed by seed (a partial suite has every env at its first seeds): the
    loops (``eval_workers`` > 1: each round's evaluation episodes as Ray tasks), then the RL runs through one resume
    log (``parallel``: in-process or Ray)."""
    runs = Path(runs_dir)
    unknown = sorted(set(envs) - set(SUITE_ENVS)) + sorted(set(agents) - set(AGENT_LABELS))
    if unknown:
        raise ValueError(f"unknown envs/agents {unknown}; envs: {sorted(SUITE_ENVS)}, agents: {list(AGENT_LABELS)}")
    for seed in seeds:
        for slug in envs:
            for agent in (agent for agent in agents if agent in LOOP_AGENTS):
                config = loop_config(SUITE_ENVS[slug], agent, seed)
                folder = _run_dir(runs, slug, agent, seed)
                run_mbrl(config, folder, resume=True, progress=progress, eval_workers=eval_workers)
    rl = [
        rl_run(SUITE_ENVS[slug], algo, seed, rl_steps)
        for seed in seeds
        for slug in envs
        for algo in agents
        if algo in RL_AGENTS
    ]
    if rl:
        log = ResumeLog(runs / "rl.partial.jsonl", resume=True)
        run_rl_runs(rl, log=log, parallel=parallel, progress=progress)


# --------------------------------------------------------------------------- reading the runs


def _loop_run(folder: Path, expected: MBRLConfig) -> dict[str, Any] | None:
    """A loop's first ``expected.rounds + 1`` rounds as a run (None until they have all finished: a run still going
    would cut every seed's curve at its last round), with the config fields in which it differs from ``expected``
    (a run of earlier defaults: kept, and marked in the report)."""
    rounds = expected.rounds
    if finished_rounds(folder) < rounds + 1:
        return None
    records = [json.loads((folder / f"round_{index:03d}" / "record.json").read_text()) for index in range(rounds + 1)]
    config = json.loads((folder / "config.json").read_text())
    steps = records[-1]["env_steps"]
    train = sum(row["collect_time_s"] + row["train_time_s"] for row in records)
    plan_times = [row["median_plan_time_s"] for row in records if row["median_plan_time_s"] is not None]
    return {
        "seed": config["seed"],
        "config": config,
        "points": [{"env_steps": row["env_steps"], "mean_return": row["mean_return"]} for row in records],
        "train_time_per_step_s": train / steps,
        "eval_time_s": sum(row["eval_time_s"] for row in records),
        "median_plan_time_s": float(np.median(plan_times)) if plan_times else None,
        "config_differs": sorted(resume_conflicts(folder, expected)),
    }


def _rl_runs(runs_dir: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Finished suite RL runs in the resume log, by (RL env key, algo, seed); the newest entry of a key wins."""
    path = runs_dir / "rl.partial.jsonl"
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)["payload"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut off by a kill
        if str(row.get("budget", "")).startswith("suite_seed"):
            points = row.get("curve") or [{"env_steps": row["env_steps"], "eval": row["eval"]}]
            found[(row["env"], row["algo"], int(row["seed"]))] = {
                "seed": int(row["seed"]),
                "points": [{"env_steps": p["env_steps"], "mean_return": p["eval"]["mean_return"]} for p in points],
                "train_time_per_step_s": row["train_time_s"] / row["env_steps"],
                "total_timesteps": row["total_timesteps"],
            }
    return found


def collect_suite(runs_dir: str | Path, *, seeds: Sequence[int], rl_steps: int) -> dict[str, Any]:
    """What has finished under ``runs_dir``: per env slug and agent the runs of ``seeds`` (RL runs of ``rl_steps``; loops
    of the suite's rounds), and the loops begun but not finished (``"unfinished"``, left out of the curves)."""
    runs = Path(runs_dir)
    rl = _rl_runs(runs)
    envs: dict[str, Any] = {}
    for slug, env in SUITE_ENVS.items():
        agents: dict[str, list[dict[str, Any]]] = {}
        unfinished_runs: list[str] = []
        for agent in LOOP_AGENTS:
            folders = [_run_dir(runs, slug, agent, seed) for seed in seeds]
            found = [_loop_run(folder, loop_config(env, agent, seed)) for seed, folder in zip(seeds, folders)]
            agents[agent] = [run for run in found if run is not None]
            unfinished = [
                f"{agent} seed {seed}"
                for seed, folder, run in zip(seeds, folders, found)
                if run is None and finished_rounds(folder)
            ]
            unfinished_runs.extend(unfinished)
        for algo in RL_AGENTS:
            found_rl = [rl.get((env.rl_key, algo, seed)) for seed in seeds]
            agents[algo] = [run for run in found_rl if run is not None and run["total_timesteps"] == rl_steps]
        envs[slug] = {"env_id": env.env_id, "threshold": env.threshold, "runs": agents, "unfinished": unfinished_runs}
    return envs


# --------------------------------------------------------------------------- summaries


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student-t 0.975 quantiles for 1-10 degrees of freedom (beyond: 1.96)."""


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval ``(mean, low, high)`` of ``values`` (one value: the interval is the value)."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if data.size < 2:
        return mean, mean, mean
    quantile = _T975[data.size - 2] if data.size - 1 <= len(_T975) else 1.96
    half = quantile * float(data.std(ddof=1)) / np.sqrt(data.size)
    return mean, mean - half, mean + half


def agent_summary(runs: Sequence[Mapping[str, Any]], threshold: float, reference: float | None) -> dict[str, Any]:
    """One agent's curve over seeds (steps every seed reached), steps to ``threshold`` and to ``reference``."""
    tables = [{int(p["env_steps"]): float(p["mean_return"]) for p in run["points"]} for run in runs]
    steps = sorted(set.intersection(*(set(table) for table in tables))) if tables else []
    intervals = [mean_interval([table[step] for table in tables]) for step in steps]
    means = [interval[0] for interval in intervals]
    return {
        "seeds": [int(run["seed"]) for run in runs],
        "steps": steps,
        "mean": means,
        "low": [interval[1] for interval in intervals],
        "high": [interval[2] for interval in intervals],
        "per_seed": [[table[step] for table in tables] for step in steps],
        "steps_to_threshold": first_reaching(steps, means, threshold),
        "threshold_held_from": held_from(steps, means, threshold),
        "seed_steps_to_threshold": [
            first_reaching(steps, [table[step] for step in steps], threshold) for table in tables
        ],
        "steps_to_reference": None if reference is None else first_reaching(steps, means, reference),
        "train_time_per_step_s": float(np.mean([run["train_time_per_step_s"] for run in runs])) if runs else None,
        "median_plan_time_s": _median_or_none([run.get("median_plan_time_s") for run in runs]),
        "config_differs": sorted({field for run in runs for field in run.get("config_differs", [])}),
    }


def held_from(steps: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """The first step count from which every later value stays at or above ``threshold`` (None: the last is below)."""
    held = None
    for step, value in zip(steps, values):
        held = (held or step) if value >= threshold else None
    return held


def _median_or_none(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(np.median(present)) if present else None


def summarize_env(env: Mapping[str, Any], rl_steps: int) -> dict[str, Any]:
    """Per agent :func:`agent_summary`; the reference is SAC's mean return at ``rl_steps`` (None without SAC runs)."""
    sac = agent_summary(env["runs"]["sac"], env["threshold"], None) if env["runs"]["sac"] else None
    reference = sac["mean"][-1] if sac and sac["steps"] and sac["steps"][-1] == rl_steps else None
    agents = {agent: agent_summary(runs, env["threshold"], reference) for agent, runs in env["runs"].items() if runs}
    return {"sac_return_at_rl_steps": reference, "agents": agents}


# --------------------------------------------------------------------------- report


def build_report(
    runs_dir: str | Path, *, seeds: Sequence[int], rl_steps: int, command: str, threads: int
) -> dict[str, Any]:
    """The suite's report (``mbrl_suite.json``) from the finished runs under ``runs_dir``."""
    envs = collect_suite(runs_dir, seeds=seeds, rl_steps=rl_steps)
    for env in envs.values():
        env.update(summarize_env(env, rl_steps))
    return {
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "torch_threads": threads,
        "seeds": list(seeds),
        "rl_steps": rl_steps,
        "budgets": {
            slug: loop_config(env, LOOP_AGENTS[0], 0).to_json() | {"threshold": env.threshold}
            for slug, env in SUITE_ENVS.items()
        },
        "envs": envs,
    }


def _steps_cell(steps: int | None, summary: Mapping[str, Any]) -> str:
    if steps is not None:
        return f"{steps:,}"
    return f"not by {summary['steps'][-1]:,}" if summary["steps"] else ""


def suite_markdown(report: Mapping[str, Any]) -> str:
    """``mbrl_suite.md``: the steps-to-threshold table, then one table per env."""
    names = list(AGENT_LABELS)
    lines = [
        "# Model-based RL suite: env steps to each env's threshold",
        "",
        "Mean evaluation return over training seeds (fixed-seed evaluation episodes, the same for every agent; env "
        "steps = training steps). Cell: the first evaluated step count at which the mean over seeds reaches the "
        f"threshold (`not by N`: not within the N steps run), seeds in brackets. SAC and PPO: SB3 defaults, "
        f"{report['rl_steps']:,} env steps. 1 torch thread per run.",
        "",
        "| env | threshold | " + " | ".join(AGENT_LABELS[name] for name in names) + " |",
        "|---|---:|" + "---|" * len(names),
    ]
    for env in report["envs"].values():
        cells = []
        for name in names:
            summary = env["agents"].get(name)
            cells.append(
                ""
                if summary is None
                else f"{_steps_cell(summary['steps_to_threshold'], summary)} ({len(summary['seeds'])})"
                + ("†" if summary.get("config_differs") else "")
            )
        lines.append(f"| {env['env_id']} | {env['threshold']:g} | " + " | ".join(cells) + " |")
    differing = sorted(
        {
            field
            for env in report["envs"].values()
            for s in env["agents"].values()
            for field in s.get("config_differs", [])
        }
    )
    if differing:
        lines += ["", f"†: loops run with an earlier config than today's suite (differing in {', '.join(differing)})."]
    for env in report["envs"].values():
        lines += ["", *_env_section(env, report["rl_steps"])]
    return "\n".join(lines)


def _env_section(env: Mapping[str, Any], rl_steps: int) -> list[str]:
    reference = env["sac_return_at_rl_steps"]
    lines = [
        f"## {env['env_id']} (threshold {env['threshold']:g})",
        "",
        "SAC's mean return at "
        + (f"{rl_steps:,} env steps: {reference:.1f}" if reference is not None else f"{rl_steps:,}: not run")
        + ". Columns: final step count run, mean return there [95% t-interval over seeds] (each seed), steps to the "
        "threshold (mean; each seed), the step count from which the mean stays at or above it, steps to SAC's final "
        "return (a fifth of SAC's is "
        f"{rl_steps // 5:,}), training wall-clock per env step (collect + fit; RL: SB3 `learn`), median plan time.",
        "",
        "| agent | seeds | env steps | mean return [95% CI] (seeds) | to threshold (seeds) | held from | to SAC's final | s / env step | plan (s) |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    lines += _rows(env, reference)
    if env.get("unfinished"):
        lines += ["", "Begun but not finished (left out): " + ", ".join(env["unfinished"]) + "."]
    for name, summary in env["agents"].items():
        if summary.get("config_differs"):
            lines += [
                "",
                f"{AGENT_LABELS[name]}: run with an earlier config (differs in {', '.join(summary['config_differs'])}).",
            ]
    if reference is not None:
        lines += ["", _fifth_verdict(env, reference, rl_steps)]
    return lines + ["", *_equal_steps_table(env)]


def _equal_steps_table(env: Mapping[str, Any]) -> list[str]:
    """Mean return of every agent at the loops' step counts (equal env steps), then at each run's last count."""
    agents = {name: summary for name, summary in env["agents"].items() if summary["steps"]}
    if not agents:
        return ["No finished runs."]
    loop_steps = sorted({step for name in LOOP_AGENTS if name in agents for step in agents[name]["steps"]})
    finals = sorted({summary["steps"][-1] for summary in agents.values()} - set(loop_steps))
    lines = [
        "| env steps | " + " | ".join(AGENT_LABELS[name] for name in agents) + " |",
        "|---:|" + "---:|" * len(agents),
    ]
    for step in [*loop_steps, *finals]:
        cells = []
        for summary in agents.values():
            means = dict(zip(summary["steps"], summary["mean"]))
            cells.append(f"{means[step]:.1f}" if step in means else "")
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return lines


def _fifth_verdict(env: Mapping[str, Any], reference: float, rl_steps: int) -> str:
    """Whether each GraspMPC agent reached SAC's final return within a fifth of SAC's env steps."""
    parts = []
    for name in LOOP_AGENTS:
        summary = env["agents"].get(name)
        if summary is None or not summary["steps"]:
            continue
        steps = summary["steps_to_reference"]
        verdict = "yes" if steps is not None and steps <= rl_steps / 5 else "no"
        parts.append(f"{AGENT_LABELS[name]} {verdict} ({_steps_cell(steps, summary)})")
    return (
        f"SAC's {rl_steps:,}-step return ({reference:.1f}) within a fifth of its env steps: " + "; ".join(parts) + "."
    )


def _rows(env: Mapping[str, Any], reference: float | None) -> list[str]:
    lines = []
    for name, summary in env["agents"].items():
        if not summary["steps"]:
            continue
        last = -1
        per_seed = " / ".join(f"{value:.1f}" for value in summary["per_seed"][last])
        seeds = ", ".join("–" if s is None else f"{s:,}" for s in summary["seed_steps_to_threshold"])
        plan = summary["median_plan_time_s"]
        lines.append(
            f"| {AGENT_LABELS[name]} | {len(summary['seeds'])} | {summary['steps'][last]:,} | "
            f"{summary['mean'][last]:.1f} [{summary['low'][last]:.1f}, {summary['high'][last]:.1f}] ({per_seed}) | "
            f"{_steps_cell(summary['steps_to_threshold'], summary)} ({seeds}) | "
            f"{'' if summary['threshold_held_from'] is None else format(summary['threshold_held_from'], ',')} | "
            f"{'' if reference is None else _steps_cell(summary['steps_to_reference'], summary)} | "
            f"{summary['train_time_per_step_s']:.4f} | {'' if plan is None else f'{plan:.3f}'} |"
        )
    return lines


def plot_suite(report: Mapping[str, Any], path: Path) -> Path:
    """One panel per env: mean return vs env steps (log axis) per agent with its 95% band, and the threshold."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from mpc_grasp.plotting import plt, save_figure

    envs = list(report["envs"].values())
    columns = 3
    rows = -(-len(envs) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 3.6 * rows), squeeze=False)
    for ax, env in zip(axes.flat, envs):
        for name, summary in env["agents"].items():
            if not summary["steps"]:
                continue
            label = f"{AGENT_LABELS[name]} ({len(summary['seeds'])}){'†' if summary.get('config_differs') else ''}"
            color = f"C{list(AGENT_LABELS).index(name)}"  # one colour per agent in every panel
            ax.plot(
                summary["steps"], summary["mean"], "o-" if name in LOOP_AGENTS else "-", ms=3, color=color, label=label
            )
            ax.fill_between(summary["steps"], summary["low"], summary["high"], color=color, alpha=0.15)
        ax.axhline(env["threshold"], color="0.4", ls="--", lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{env['env_id']} (threshold {env['threshold']:g})", fontsize=10)
        ax.set_xlabel("training env steps")
        ax.set_ylabel("mean evaluation return")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes, color="0.4")
    for ax in list(axes.flat)[len(envs) :]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)
