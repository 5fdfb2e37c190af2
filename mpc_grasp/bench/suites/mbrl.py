"""Model-based RL on ``Pendulum-v1``: return vs env steps, GraspMPC (learned / known reward) vs SAC (issue 15).

The loops are :func:`mpc_grasp.rl.mbrl.run_mbrl` (round checkpoints under ``runs_dir``, resumable). SAC is
one unit of the RL suite (:class:`~mpc_grasp.bench.suites.rl.RLRun` with ``eval_at`` = the loop's step
counts, ``"return"`` evaluation = the loop's own fixed-seed episodes), so it runs through the engine's
resume log and can run on Ray. A terminal-value comparison runs GraspMPC at a short horizon on the last
round's model without and with a TD(0) ``V(s)``. The report is written by
:func:`~mpc_grasp.bench.report.write_report` as ``mbrl_pendulum.{json,md,png}``.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mpc_grasp.bench.engine import ResumeLog
from mpc_grasp.bench.parallel import ParallelOptions
from mpc_grasp.bench.report import git_commit, write_report
from mpc_grasp.bench.suites.rl import RLRun, run_rl_runs
from mpc_grasp.rl.mbrl import MBRLConfig, RoundRecord, evaluate_return, make_agent, plot_learning_curves, run_mbrl

if TYPE_CHECKING:
    from gymnasium import spaces

    from mpc_grasp.models.mlp import MLPWorldModel

__all__ = [
    "ENV_ID",
    "TARGET_RETURN",
    "MBRLStudyConfig",
    "first_reaching",
    "mbrl_markdown",
    "plot_mbrl",
    "run_mbrl_study",
    "sac_curve_run",
    "terminal_value_ablation",
]

ENV_ID = "Pendulum-v1"
TARGET_RETURN = -200.0
"""Issue 15's target: mean return >= -200 within 5k env steps (a good policy gets about -150)."""
LEARNED, KNOWN, SAC = "GraspMPC (GRASP H=30), learned reward", "GraspMPC (GRASP H=30), known reward", "SAC (stable-baselines3)"


@dataclass(frozen=True)
class MBRLStudyConfig:
    """Budgets of the study (``experiments/mbrl.py``'s flags)."""

    rounds: int = 10
    seed_steps: int = 200
    steps_per_round: int = 200
    known_rounds: int = 4
    """Rounds of the known-reward comparison (0: skip)."""
    value_horizon: int = 10
    """Horizon of the terminal-value comparison (0: skip)."""
    eval_episodes: int = 3
    seed: int = 0
    sac: bool = True
    sac_extra_steps: tuple[int, ...] = (5000,)
    """SAC step counts evaluated besides the loop's (issue 15's 5k target)."""

    def recipe(self, rounds: int, reward: str = "learned") -> MBRLConfig:
        """The out-of-the-box Pendulum recipe (``MBRLConfig`` defaults: GRASP, horizon 30, 200x200 MLP and
        reward head) with this study's budgets."""
        return MBRLConfig(
            env_id=ENV_ID,
            rounds=rounds,
            seed_steps=self.seed_steps,
            steps_per_round=self.steps_per_round,
            eval_episodes=self.eval_episodes,
            seed=self.seed,
            reward=reward,
        )


def sac_curve_run(steps: Sequence[int], eval_episodes: int, eval_seed: int, seed: int) -> RLRun:
    """SAC trained once up to ``max(steps)``, paused at each count to run the loop's evaluation episodes."""
    return RLRun(
        "pendulum", "sac", "curve", int(max(steps)), seed=seed, eval_seed=eval_seed, n_eval=eval_episodes, eval_at=tuple(sorted(set(steps)))
    )


def terminal_value_ablation(run_dir: Path, config: MBRLConfig, horizon: int) -> dict[str, Any]:
    """GraspMPC at ``horizon`` on the last round's model, without and with a TD(0) value of its data."""
    from mpc_grasp.data import load_dataset, make_env
    from mpc_grasp.models import load_world_model, train_value_function

    last = sorted(run_dir.glob("round_*"))[-1]
    model, dataset = cast("MLPWorldModel", load_world_model(last / "model.pt")), load_dataset(last / "dataset.npz")
    started = time.perf_counter()
    value = train_value_function(dataset, model, discount=config.value_discount, epochs=config.value_epochs, seed=config.seed)
    value_time = time.perf_counter() - started
    short = dataclasses.replace(config, horizon=horizon)
    action_space = cast("spaces.Box", make_env(ENV_ID).action_space)
    rows = {}
    for name, terminal in (("without value", None), ("with value", value)):
        started = time.perf_counter()
        summary = evaluate_return(make_agent(model, short, action_space, terminal), short)
        rows[name] = {
            "mean_return": summary["mean_return"],
            "std_return": summary["std_return"],
            "episode_returns": summary["episode_returns"],
            "wall_time_s": time.perf_counter() - started,
        }
    return {
        "round": last.name,
        "env_steps": len(dataset),
        "horizon": horizon,
        "discount": config.value_discount,
        "value_train_time_s": value_time,
        **rows,
    }


def first_reaching(steps: Sequence[int], returns: Sequence[float], target: float) -> int | None:
    """The first env-step count whose mean return reaches ``target`` (None if none does)."""
    return next((int(step) for step, value in zip(steps, returns) if value >= target), None)


def run_mbrl_study(
    study: MBRLStudyConfig,
    *,
    out_dir: str | Path,
    runs_dir: str | Path,
    stem: str = "mbrl_pendulum",
    command: str = "",
    resume: bool = False,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the loops (round checkpoints in ``runs_dir``), the SAC curve and the terminal-value comparison;
    write ``<stem>.{json,md,png}`` under ``out_dir``; return the report."""
    import torch

    runs = Path(runs_dir)
    wall: dict[str, float] = {}
    started = time.perf_counter()
    config = study.recipe(study.rounds)
    learned = run_mbrl(config, runs / "learned", resume=resume, progress=progress)
    wall["GraspMPC learned reward"] = time.perf_counter() - started
    known: list[RoundRecord] = []
    known_config = study.recipe(study.known_rounds, reward="known")
    if study.known_rounds > 0:
        started = time.perf_counter()
        known = run_mbrl(known_config, runs / "known", resume=resume, progress=progress)
        wall["GraspMPC known reward"] = time.perf_counter() - started
    sac: list[dict[str, Any]] = []
    if study.sac:
        started = time.perf_counter()
        run = sac_curve_run([r.env_steps for r in learned] + list(study.sac_extra_steps), study.eval_episodes, config.eval_seed, study.seed)
        (row,) = run_rl_runs([run], log=ResumeLog(runs / "sac.partial.jsonl", resume=resume), parallel=parallel, progress=progress)
        points = row.get("curve", [{"env_steps": row["env_steps"], "eval": row["eval"], "wall_time_s": row["train_time_s"]}])
        sac = [{"env_steps": p["env_steps"], "mean_return": p["eval"]["mean_return"], "std_return": p["eval"]["std_return"],
                "wall_time_s": p["wall_time_s"]} for p in points]  # fmt: skip
        wall["SAC"] = time.perf_counter() - started
    ablation = None
    if study.value_horizon > 0:
        started = time.perf_counter()
        ablation = terminal_value_ablation(runs / "learned", config, study.value_horizon)
        wall["terminal value comparison"] = time.perf_counter() - started
    report: dict[str, Any] = {
        "command": command, "commit": git_commit(mark_dirty=True), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(), "torch": torch.__version__, "seed": study.seed, "eval_episodes": study.eval_episodes,
        "eval_seed": config.eval_seed, "target_return": TARGET_RETURN,
        "learned": {"config": config.to_json(), "rounds": [r.to_json() for r in learned]},
        "known": {"config": known_config.to_json(), "rounds": [r.to_json() for r in known]} if known else None,
        "sac": sac, "terminal_value": ablation, "wall_time_s": wall,
    }  # fmt: skip
    report["first_reaching_target"] = {name: first_reaching(curve[0], curve[1], TARGET_RETURN) for name, curve in _curves(report).items()}
    write_report(out_dir, stem, report, mbrl_markdown, plot_mbrl)
    return report


def _curves(report: Mapping[str, Any]) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """name -> (env steps, mean returns, stds) of every agent in the report."""
    curves = {}
    for name, rows in (
        (LEARNED, report["learned"]["rounds"]),
        (KNOWN, (report.get("known") or {}).get("rounds")),
        (SAC, report.get("sac")),
    ):
        if rows:
            curves[name] = ([row["env_steps"] for row in rows], [row["mean_return"] for row in rows], [row["std_return"] for row in rows])
    return curves


def plot_mbrl(report: Mapping[str, Any], path: Path) -> Path:
    """Mean evaluation return vs training env steps of every agent, with the target."""
    return plot_learning_curves(_curves(report), path, title=f"{ENV_ID}: model-based RL vs SAC", target=report["target_return"])


def mbrl_markdown(report: Mapping[str, Any]) -> str:
    """``mbrl_pendulum.md``: one row per env-step count, the terminal-value comparison, first steps reaching the target."""
    learned = {row["env_steps"]: row for row in report["learned"]["rounds"]}
    known = {row["env_steps"]: row for row in report["known"]["rounds"]} if report.get("known") else {}
    sac = {row["env_steps"]: row for row in report.get("sac") or []}

    def cell(table: Mapping[int, Mapping[str, Any]], step: int) -> str:
        row = table.get(step)
        return "" if row is None else f"{row['mean_return']:.0f} ± {row['std_return']:.0f}"

    lines = [
        f"# Model-based RL on {ENV_ID}: mean evaluation return vs env steps", "",
        f"One seed ({report['seed']}), 1 torch thread. Evaluation: {report['eval_episodes']} fixed-seed episodes (seed {report['eval_seed']}: "
        "the same starts for every agent and step count); env steps = training steps (evaluation episodes not counted).", "",
        "| env steps | GraspMPC, learned reward | GraspMPC, known reward | SAC | model one-step RMSE on the agent's new data, before → after retraining |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for step in sorted(set(learned) | set(known) | set(sac)):
        row = learned.get(step, {})
        error = "" if row.get("model_rmse_before") is None else f"{row['model_rmse_before']:.4f} → {row['model_rmse_after']:.4f}"
        lines.append(f"| {step} | {cell(learned, step)} | {cell(known, step)} | {cell(sac, step)} | {error} |")
    ablation = report.get("terminal_value")
    if ablation:
        lines += ["", f"Terminal value ({ablation['round']}, {ablation['env_steps']} transitions, GraspMPC at horizon {ablation['horizon']}, "
                  f"discount {ablation['discount']}): without V {ablation['without value']['mean_return']:.0f}, "
                  f"with V(s) learned by TD(0) {ablation['with value']['mean_return']:.0f} (value trained in {ablation['value_train_time_s']:.1f} s)."]  # fmt: skip
    reached = ", ".join(
        f"{name} {value if value is not None else 'not reached'}" for name, value in report["first_reaching_target"].items()
    )
    lines += [
        "",
        f"First step count with mean return >= {report['target_return']:g}: {reached}",
        "",
        "Wall time (s): " + ", ".join(f"{name} {value:.0f}" for name, value in report["wall_time_s"].items()),
    ]
    return "\n".join(lines)
