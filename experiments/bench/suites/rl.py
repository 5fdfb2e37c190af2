"""The RL suite: model-free baselines (SB3 PPO / SAC(+HER)) as work units of the benchmark engine.

Each :class:`RLRun` (env x algo x budget) is one :class:`~bench.engine.WorkUnit`: train with
:func:`~mpc_grasp.rl.baselines.train_rl_baseline`, pause at ``eval_at`` step counts (a learning curve)
and at the end, and evaluate on ``n_eval`` fixed-seed episodes. Units go through
:func:`~bench.engine.run_units` (one resume log, fingerprint of settings + code, in-process
or Ray), so a killed run continues where it stopped and finished runs are never trained twice.

Two evaluations, chosen per env (:data:`RL_ENVS`): ``"success"`` is
:func:`~mpc_grasp.rl.baselines.evaluate_agent` (the episodes ``GraspMPC`` faces with the same seed and
env kwargs: success at the last / any step, return, length); ``"return"`` is
:func:`~mpc_grasp.control.episodes.run_episodes`, the evaluation of the model-based RL loop
(:func:`mpc_grasp.rl.mbrl.evaluate_return`), for envs without a success signal such as ``Pendulum-v1``.

:func:`run_rl_suite` is ``experiments/rl_baselines.py``: budgets "same" (the env steps of the world
model's data) and "large" (``large_factor`` x that), reported with :func:`~bench.report.write_report`
as ``rl_baselines.{json,md,csv}`` (``bench.suites.benchmark.rl_rows`` reads the JSON's runs).
:func:`run_rl_runs` runs any list of runs (e.g. the SAC curve of ``experiments/mbrl.py``).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.engine import ResumeLog, WorkUnit, run_units
from bench.report import ci_cell, git_commit, pct, write_report
from mpc_grasp.parallel import ParallelOptions
from mpc_grasp.rl.baselines import ALGOS

__all__ = [
    "BASELINE_ENVS",
    "BUDGETS",
    "EVALUATIONS",
    "RL_ENVS",
    "RLEnv",
    "RLRun",
    "RLSuiteConfig",
    "markdown_table",
    "plan_runs",
    "render_rl_report",
    "rl_markdown",
    "run_rl_runs",
    "run_rl_suite",
    "skipped_large_runs",
    "train_and_evaluate",
]

BUDGETS: tuple[str, ...] = ("same", "large")
EVALUATIONS: tuple[str, ...] = ("success", "return")


@dataclass(frozen=True)
class RLEnv:
    """An env of the suite: how it is trained and evaluated."""

    env_id: str
    same_steps: int
    """The "same" budget: the env steps of the world model's data on this env."""
    train_kwargs: Mapping[str, Any] = field(default_factory=dict)
    eval_kwargs: Mapping[str, Any] = field(default_factory=dict)
    goal_env: bool = False
    """Goal-conditioned Dict observations: SAC gets HER, the training task distribution is selectable."""
    evaluation: str = "success"
    """``"success"`` (``evaluate_agent``) or ``"return"`` (``run_episodes``, the model-based RL loop's evaluation)."""


RL_ENVS: dict[str, RLEnv] = {
    # grid world: trained on the default random tasks (the analogue of the model's random-exploration data),
    # evaluated on the benchmark's non-greedy "across" start/goal pairs
    "wall": RLEnv("mpc_grasp/GridWorldWall-v0", 20_000, {"task": "random"}, {"task": "across"}, goal_env=True),
    "cartpole": RLEnv("mpc_grasp/CartPoleSwingup-v0", 30_000),
    "pendulum": RLEnv("Pendulum-v1", 5_000, evaluation="return"),
    "inverted_pendulum": RLEnv("InvertedPendulum-v5", 5_000, evaluation="return"),  # the MBRL study's MuJoCo task
    "cartpole_swingup": RLEnv("mpc_grasp/CartPoleSwingup-v0", 10_000, evaluation="return"),  # the MBRL study's curve
    "reacher": RLEnv("Reacher-v5", 1_000, evaluation="return"),  # the MBRL suite's (bench.suites.mbrl_suite)
    "inverted_double_pendulum": RLEnv("InvertedDoublePendulum-v5", 5_000, evaluation="return"),
}
BASELINE_ENVS: tuple[str, ...] = ("wall", "cartpole")
"""The envs of ``experiments/rl_baselines.py`` (those with a success signal)."""


@dataclass(frozen=True)
class RLRun:
    """One training run (one work unit): ``algo`` on ``env`` for ``total_timesteps`` env steps."""

    env: str
    algo: str
    budget: str
    """Label of the budget: ``"same"``, ``"large"`` or e.g. ``"curve"``."""
    total_timesteps: int
    her: bool = False
    budget_factor: float = 1.0
    seed: int = 0
    """Training seed."""
    eval_seed: int = 1000
    n_eval: int = 50
    train_env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    eval_env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    eval_at: tuple[int, ...] = ()
    """Further env-step counts at which training pauses for an evaluation (the points of ``curve``)."""
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of ``baseline_hyperparams`` (e.g. small rollouts in tests)."""

    def __post_init__(self) -> None:
        if self.env not in RL_ENVS:
            raise ValueError(f"unknown env {self.env!r}; choose from {sorted(RL_ENVS)}")
        if self.algo not in ALGOS:
            raise ValueError(f"unknown algo {self.algo!r}; choose from {list(ALGOS)}")
        for name in ("total_timesteps", "n_eval"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if any(int(count) != count or count < 1 for count in self.eval_at):
            raise ValueError(f"eval_at must hold positive step counts, got {self.eval_at!r}")

    @property
    def checkpoints(self) -> list[int]:
        """The step counts evaluated at, ascending; the last one is ``total_timesteps``."""
        return sorted(
            {int(count) for count in self.eval_at if count < self.total_timesteps} | {int(self.total_timesteps)}
        )

    def unit(self, progress: bool = False) -> WorkUnit:
        """The work unit: keyed by env / algo / budget, fingerprinted by every other field."""
        spec = RL_ENVS[self.env]
        settings = {
            **asdict(self),
            "env_id": spec.env_id,
            "evaluation": spec.evaluation,
            "eval_at": self.checkpoints,
            "train_env_kwargs": dict(self.train_env_kwargs),
            "eval_env_kwargs": dict(self.eval_env_kwargs),
            "hyperparams": _jsonable(self.hyperparams),
        }
        key = {"env": self.env, "algo": self.algo, "budget": self.budget}
        return WorkUnit(key, settings, task={**settings, "hyperparams": dict(self.hyperparams), "progress": progress})


def train_and_evaluate(task: Mapping[str, Any]) -> dict[str, Any]:
    """Worker of one :class:`RLRun` (``unit().task``): train, evaluate at every checkpoint, return the run's row.

    The row is the run's settings plus ``env_steps`` (actually trained), ``train_time_s``, the resolved
    ``hyperparams``, ``eval`` (at the end) and, with several checkpoints, ``curve`` (one point each).
    """
    from mpc_grasp.rl.baselines import baseline_hyperparams, train_rl_baseline

    settings = {key: value for key, value in task.items() if key != "progress"}
    counts = list(task["eval_at"])
    overrides = dict(task["hyperparams"])
    if task["algo"] == "sac" and len(counts) > 1:
        overrides.setdefault(
            "buffer_size", counts[-1]
        )  # one buffer for the whole curve (not capped at the first count)
    model, points, train_time, started = None, [], 0.0, time.perf_counter()
    for count in counts:
        before = time.perf_counter()
        if model is None:
            model = train_rl_baseline(
                task["env_id"],
                task["algo"],
                count,
                seed=task["seed"],
                env_kwargs=task["train_env_kwargs"],
                her=task["her"],
                hyperparams=overrides,
                progress_bar=bool(task.get("progress")),
            )
        elif count > model.num_timesteps:
            model.learn(total_timesteps=count - model.num_timesteps, reset_num_timesteps=False)
        train_time += time.perf_counter() - before
        evaluation = _evaluate(model, task)
        points.append(
            {
                "env_steps": int(model.num_timesteps),
                "train_time_s": train_time,
                "wall_time_s": time.perf_counter() - started,
                "eval": evaluation,
            }
        )
    row = {
        **settings,
        "hyperparams": _jsonable(
            baseline_hyperparams(task["algo"], task["total_timesteps"], her=task["her"], hyperparams=overrides)
        ),
        "env_steps": points[-1]["env_steps"],
        "train_time_s": train_time,
        "eval": points[-1]["eval"],
    }
    if len(points) > 1:
        row["curve"] = points
    return row


def _evaluate(model: Any, task: Mapping[str, Any]) -> dict[str, Any]:
    """The run's evaluation: ``evaluate_agent`` (success) or ``run_episodes`` (return only)."""
    if task["evaluation"] == "success":
        from mpc_grasp.rl.baselines import evaluate_agent

        return evaluate_agent(
            model, task["env_id"], n_episodes=task["n_eval"], seed=task["eval_seed"], env_kwargs=task["eval_env_kwargs"]
        )
    from mpc_grasp.control.episodes import run_episodes, summarize_episodes
    from mpc_grasp.data import make_env

    started = time.perf_counter()
    env = make_env(task["env_id"], **task["eval_env_kwargs"])
    try:
        records = run_episodes(env, model, task["n_eval"], seed=task["eval_seed"], progress=False)
    finally:
        env.close()
    summary = summarize_episodes(records)
    return {
        "env_id": task["env_id"],
        "env_kwargs": dict(task["eval_env_kwargs"]),
        "seed": task["eval_seed"],
        "n_episodes": task["n_eval"],
        "mean_return": summary["mean_return"],
        "std_return": summary["std_return"],
        "mean_length": summary["mean_length"],
        "eval_time_s": time.perf_counter() - started,
        "episode_returns": [record.episode_return for record in records],
    }


def run_rl_runs(
    runs: Sequence[RLRun],
    *,
    log: ResumeLog | None = None,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
    sources: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The rows of ``runs`` (:func:`train_and_evaluate`), reusing those in ``log``; in run order."""
    units = [run.unit(progress=progress and (parallel is None or parallel.backend == "local")) for run in runs]
    return run_units(
        train_and_evaluate, units, log=log, sources=sources, parallel=parallel, progress=progress, desc="RL runs"
    )


# ----------------------------------------------------------------------------- the baselines suite


@dataclass(frozen=True)
class RLSuiteConfig:
    """``experiments/rl_baselines.py``: which env x algo x budget runs, and how they are evaluated."""

    envs: tuple[str, ...] = BASELINE_ENVS
    algos: tuple[str, ...] = ALGOS
    budgets: tuple[str, ...] = BUDGETS
    large_algos: tuple[str, ...] | None = None
    """Algorithms run at the large budget (None: all of ``algos``); SAC at 10x takes hours on a CPU."""
    same_steps: Mapping[str, int] = field(default_factory=dict)
    """"same" budget per env (default: ``RL_ENVS[env].same_steps``)."""
    large_factor: float = 10.0
    train_task: str = "random"
    """Grid-world training task distribution ("random" or "across")."""
    her: bool = True
    """HER for SAC on goal envs."""
    seed: int = 0
    eval_seed: int = 1000
    """Seed of the evaluation episodes (shared with the ``GraspMPC`` evaluation)."""
    n_eval: int = 50
    hyperparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-algorithm overrides of the default hyperparameters (tiny runs)."""

    def __post_init__(self) -> None:
        for name, values, valid in (
            ("env", self.envs, RL_ENVS),
            ("algo", self.algos, ALGOS),
            ("budget", self.budgets, BUDGETS),
            ("algo", self.large_algos or (), ALGOS),
        ):
            for value in values:
                if value not in valid:
                    raise ValueError(f"unknown {name} {value!r}; choose from {sorted(valid)}")
        if (
            any(int(steps) != steps or steps < 1 for steps in self.same_steps.values())
            or self.n_eval < 1
            or self.large_factor <= 0
        ):
            raise ValueError("budgets, n_eval and large_factor must be positive")
        if self.train_task not in ("random", "across"):
            raise ValueError(f"train_task must be 'random' or 'across', got {self.train_task!r}")

    def same_budget(self, env: str) -> int:
        return int(self.same_steps.get(env, RL_ENVS[env].same_steps))


def plan_runs(config: RLSuiteConfig) -> list[RLRun]:
    """The (env, algo, budget) runs, smallest budgets first so partial results are useful."""
    runs = []
    large_algos = config.algos if config.large_algos is None else config.large_algos
    for budget in (name for name in BUDGETS if name in config.budgets):
        factor = 1.0 if budget == "same" else float(config.large_factor)
        for env in config.envs:
            spec = RL_ENVS[env]
            train_kwargs = {**spec.train_kwargs, **({"task": config.train_task} if spec.goal_env else {})}
            for algo in config.algos:
                if budget == "large" and algo not in large_algos:
                    continue
                runs.append(
                    RLRun(
                        env,
                        algo,
                        budget,
                        int(round(config.same_budget(env) * factor)),
                        her=bool(algo == "sac" and spec.goal_env and config.her),
                        budget_factor=factor,
                        seed=config.seed,
                        eval_seed=config.eval_seed,
                        n_eval=config.n_eval,
                        train_env_kwargs=train_kwargs,
                        eval_env_kwargs=dict(spec.eval_kwargs),
                        hyperparams=dict(config.hyperparams.get(algo, {})),
                    )
                )
    return runs


def run_rl_suite(
    config: RLSuiteConfig,
    *,
    out_dir: str | Path,
    stem: str = "rl_baselines",
    command: str = "",
    resume: bool = False,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run (or reuse from ``<out_dir>/<stem>.partial.jsonl``) every planned run; write ``<stem>.{json,md,csv}``."""
    import torch

    parallel = parallel or ParallelOptions()
    torch.set_num_threads(parallel.threads)
    runs = plan_runs(config)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    log = ResumeLog(Path(out_dir) / f"{stem}.partial.jsonl", resume=resume)
    rows = run_rl_runs(runs, log=log, parallel=parallel, progress=progress, sources=sources)
    report: dict[str, Any] = {
        "command": command,
        "git_commit": git_commit(mark_dirty=True) or "unknown",
        "started_utc": started,
        "python": platform.python_version(),
        "torch_threads": parallel.threads,
        "seed": config.seed,
        "eval_seed": config.eval_seed,
        "n_eval": config.n_eval,
        "train_task": config.train_task,
        "same_budgets": {env: config.same_budget(env) for env in config.envs},
        "large_factor": config.large_factor,
        "large_algos": list(config.algos if config.large_algos is None else config.large_algos),
        "planned_runs": [
            {"env": r.env, "algo": r.algo, "her": r.her, "budget": r.budget, "total_timesteps": r.total_timesteps}
            for r in runs
        ],
        "reused_runs": log.reused,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
        "runs": rows,
    }
    write_report(out_dir, stem, report, rl_markdown, csv_rows=_csv_rows)
    return report


def render_rl_report(out_dir: str | Path, stem: str = "rl_baselines") -> dict[str, Any]:
    """Rewrite ``<stem>.md`` / ``.csv`` from an existing ``<stem>.json`` (``--render-only``)."""
    import json

    path = Path(out_dir) / f"{stem}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the experiment first")
    report = json.loads(path.read_text())
    report.setdefault("commit", report.get("git_commit"))
    write_report(out_dir, stem, report, rl_markdown, csv_rows=_csv_rows)
    return report


# ----------------------------------------------------------------------------- tables


def _algo_label(row: Mapping[str, Any]) -> str:
    return row["algo"].upper() + ("+HER" if row.get("her") else "")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One row per run: success (95% Wilson CI), any-step success, return, length, env steps, train time."""
    lines = [
        "| env | algo | budget | env steps | success (95% CI) | success at any step | mean return ± std | mean length | train time (s) |",
        "|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ev = row["eval"]
        lines.append(
            f"| {row['env']} | {_algo_label(row)} | {row['budget']} (×{row['budget_factor']:g}) | {row['env_steps']:,} | "
            f"{ci_cell(ev.get('success_rate'), ev.get('success_ci95'))} | {pct(ev.get('success_any_rate'))} | "
            f"{ev['mean_return']:.1f} ± {ev['std_return']:.1f} | {ev['mean_length']:.1f} | {row['train_time_s']:.0f} |"
        )
    return "\n".join(lines)


def skipped_large_runs(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``env ALGO`` pairs run at the "same" budget but not at the "large" one (for the table's note)."""
    large = {(row["env"], row["algo"]) for row in rows if row["budget"] == "large"}
    if not large:
        return []
    return [
        f"{row['env']} {_algo_label(row)}"
        for row in rows
        if row["budget"] == "same" and (row["env"], row["algo"]) not in large
    ]


def rl_markdown(report: Mapping[str, Any]) -> str:
    """``rl_baselines.md``: the evaluation protocol, the table, the runs left out of the large budget."""
    not_run = skipped_large_runs(report["runs"])
    note = (
        f"\n\nNot run at the large budget: {', '.join(not_run)} (restricted with `--large-algos`)."
        if not_run and report.get("complete")
        else ""
    )
    return (
        "# RL baselines (stable-baselines3)\n\n"
        f"Finished: {report.get('finished_utc', 'in progress')}\n\n"
        f"Evaluation: {report['n_eval']} episodes, eval seed {report['eval_seed']}, deterministic policies; grid world evaluated on "
        f'`task="across"` start/goal pairs (trained on `task="{report["train_task"]}"`). Success = `info["is_success"]` at the '
        'episode\'s last step; "any step" = at some step. CI = 95% Wilson score interval.\n\n'
        f"{markdown_table(report['runs'])}{note}\n"
    )


def _csv_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "env": row["env"],
            "algo": _algo_label(row),
            "budget": row["budget"],
            "env_steps": row["env_steps"],
            "success_rate": row["eval"].get("success_rate"),
            "success_any_rate": row["eval"].get("success_any_rate"),
            "mean_return": row["eval"]["mean_return"],
            "std_return": row["eval"]["std_return"],
            "train_time_s": row["train_time_s"],
        }
        for row in report["runs"]
    ]


def _jsonable(value: Any) -> Any:
    """Hyperparameters as JSON (classes by qualified name)."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
