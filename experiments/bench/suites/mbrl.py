"""Model-based RL studies: return vs env steps, GraspMPC vs SAC at equal env steps (issue 15).

One study per env of :data:`STUDY_ENVS` (``Pendulum-v1``, ``InvertedPendulum-v5``). The loops are
:func:`mpc_grasp.rl.mbrl.run_mbrl` on the env's recipe (:func:`mpc_grasp.rl.mbrl.mbrl_recipe`; round
checkpoints under ``runs_dir``, resumable), for one or more training seeds; optional comparison loops
run the other reward (``known_rounds``) or MPPI in place of GRASP (``mppi_rounds``). SAC is one unit of
the RL suite per training seed (:class:`~bench.suites.rl.RLRun` with ``eval_at`` = the loop's
step counts, ``"return"`` evaluation = the loop's own fixed-seed episodes), so it runs through the
engine's resume log and can run on Ray. A terminal-value comparison runs GraspMPC at a short horizon on
the last round's model without and with a TD(0) ``V(s)``. The report is written by
:func:`~bench.report.write_report` as ``mbrl_<env>.{json,md,png}``; reports written before
this module knew several envs and seeds (``results/mbrl_pendulum.json``) still load and render.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bench.engine import ResumeLog, WorkUnit, run_units
from bench.report import git_commit, write_report
from bench.suites.rl import RL_ENVS, RLRun, run_rl_runs
from mpc_grasp.parallel import ParallelOptions
from mpc_grasp.rl.mbrl import (
    MBRLConfig,
    RoundRecord,
    evaluate_return,
    make_agent,
    mbrl_recipe,
    plot_learning_curves,
    run_mbrl,
)

if TYPE_CHECKING:
    from gymnasium import spaces

    from mpc_grasp.models.mlp import MLPWorldModel

__all__ = [
    "ENV_ID",
    "STUDY_ENVS",
    "TARGET_RETURN",
    "EnvStudy",
    "MBRLStudyConfig",
    "exact_model_check",
    "final_evaluation",
    "first_reaching",
    "loop_label",
    "loop_time",
    "mbrl_markdown",
    "plot_mbrl",
    "run_mbrl_study",
    "sac_curve_run",
    "terminal_value_ablation",
]

ENV_ID = "Pendulum-v1"
TARGET_RETURN = -200.0
"""Issue 15's Pendulum target: mean return >= -200 within 5k env steps (a good policy gets about -150)."""
SAC = "SAC (stable-baselines3)"


@dataclass(frozen=True)
class EnvStudy:
    """What the study does on one env by default (``MBRLStudyConfig.for_env``)."""

    env_id: str
    slug: str
    """File stem ``mbrl_<slug>`` and RL-suite env key."""
    target_return: float
    known_rounds: int = 0
    """Rounds of the comparison loop with the other reward (0: none)."""
    value_horizon: int = 0
    mppi_rounds: int = 0
    seeds: int = 1
    sac_extra_steps: tuple[int, ...] = (5000,)
    known_label: str = "known reward"
    """How the ``reward="known"`` objective is named in tables and plots."""
    comparison_planner: str = "mppi"
    """The planner of the ``mppi_rounds`` comparison loop (in place of the recipe's)."""
    final_eval_episodes: int = 0
    """Fixed-seed episodes on which each seed's last model is evaluated for success (0: none)."""
    final_eval_rewards: tuple[str, ...] = ("learned",)
    """Rewards planned with in the final evaluation: the loop's learned head and/or the env's known formula
    (same model: separates the reward head's error from the dynamics')."""
    exact_model_planners: tuple[str, ...] = ()
    """Planners run closed loop on the env's exact physics with its known reward (is the planner the limit?)."""
    note: str = ""
    """One paragraph for the Markdown report (what the objective is, what the target means)."""


STUDY_ENVS: dict[str, EnvStudy] = {
    "Pendulum-v1": EnvStudy("Pendulum-v1", "pendulum", TARGET_RETURN, known_rounds=4, value_horizon=10),
    "InvertedPendulum-v5": EnvStudy(
        "InvertedPendulum-v5",
        "inverted_pendulum",
        1000.0,
        seeds=3,
        known_label="env reward + learned termination + TD terminal value",
        note=(
            "InvertedPendulum-v5 pays 1 per step while |pole angle| <= 0.2 rad and ends the episode otherwise "
            "(return = steps survived, at most 1000). That reward is constant while alive: GraspMPC plans with it "
            "(`alive_bonus_reward`) and the model's learned termination head, maximising the predicted return of "
            "an episode that may end, with a TD value of that return as the terminal value. Every number below is the env's own return. Target: 1000 = all evaluation "
            "episodes survive the full episode."
        ),
    ),
    "mpc_grasp/CartPoleSwingup-v0": EnvStudy(
        "mpc_grasp/CartPoleSwingup-v0",
        "cartpole_swingup",
        190.0,
        known_rounds=0,
        mppi_rounds=3,
        seeds=1,
        sac_extra_steps=(),
        comparison_planner="cem",
        final_eval_episodes=10,
        final_eval_rewards=("learned", "known"),
        exact_model_planners=("grasp", "cem"),
        note=(
            "Cart-pole swing-up (DeepMind Control's reward in [0, 1] per step, 250-step episodes; success = pole "
            "within 0.2 rad of upright, |θ̇| < 1 and |x| < 1 at the last step; the episode ends if the cart leaves "
            "the track). Issue 15's target: >= 9 of 10 seeded episodes swung up and balanced after <= 10k env steps. "
            "The recipe plans with GRASP inside GraspMPC and the learned reward head; CEM's loop is the comparison row "
            "(the exact-model table: can each planner do the task with the true physics?)."
        ),
    ),
}


@dataclass(frozen=True)
class MBRLStudyConfig:
    """Budgets of the study (``experiments/mbrl.py``'s flags). The defaults are the Pendulum study's."""

    rounds: int | None = 10
    """Rounds of the main loop (None: the env recipe's)."""
    seed_steps: int | None = 200
    """None: the env recipe's."""
    steps_per_round: int | None = 200
    """None: the env recipe's."""
    known_rounds: int = 4
    """Rounds of the comparison loop with the other reward (learned <-> known; 0: skip)."""
    value_horizon: int = 10
    """Horizon of the terminal-value comparison (0: skip)."""
    eval_episodes: int = 3
    seed: int = 0
    sac: bool = True
    sac_extra_steps: tuple[int, ...] = (5000,)
    """SAC step counts evaluated besides the loop's (issue 15's 5k target)."""
    env_id: str = ENV_ID
    reward: str | None = None
    """Reward of the main loop (None: the env recipe's: learned on Pendulum, the alive bonus on InvertedPendulum)."""
    seeds: int = 1
    """Training seeds ``seed, seed + 1, ...`` of the main loop and of SAC."""
    mppi_rounds: int = 0
    """Rounds of a comparison loop with MPPI in place of GRASP (first seed, main reward; 0: skip)."""

    def __post_init__(self) -> None:
        if self.env_id not in STUDY_ENVS:
            raise ValueError(f"no MBRL study for {self.env_id!r}; studies: {sorted(STUDY_ENVS)}")
        if self.seeds < 1 or self.eval_episodes < 1 or min(self.known_rounds, self.mppi_rounds, self.value_horizon) < 0:
            raise ValueError(
                "seeds and eval_episodes must be positive; comparison rounds and value_horizon non-negative"
            )

    @classmethod
    def for_env(cls, env_id: str, **overrides: Any) -> MBRLStudyConfig:
        """The study's defaults for ``env_id`` (:data:`STUDY_ENVS`; budgets from the env's recipe), with ``overrides``."""
        if env_id not in STUDY_ENVS:
            raise ValueError(f"no MBRL study for {env_id!r}; studies: {sorted(STUDY_ENVS)}")
        spec = STUDY_ENVS[env_id]
        recipe = mbrl_recipe(env_id)
        defaults: dict[str, Any] = dict(
            env_id=env_id,
            rounds=recipe.rounds,
            seed_steps=recipe.seed_steps,
            steps_per_round=recipe.steps_per_round,
            known_rounds=spec.known_rounds,
            value_horizon=spec.value_horizon,
            seeds=spec.seeds,
            mppi_rounds=spec.mppi_rounds,
            sac_extra_steps=spec.sac_extra_steps,
        )
        return cls(**{**defaults, **overrides})

    @property
    def env(self) -> EnvStudy:
        return STUDY_ENVS[self.env_id]

    @property
    def main_reward(self) -> str:
        return self.reward or mbrl_recipe(self.env_id).reward

    @property
    def other_reward(self) -> str:
        return "known" if self.main_reward == "learned" else "learned"

    @property
    def training_seeds(self) -> list[int]:
        return [self.seed + offset for offset in range(self.seeds)]

    def recipe(
        self,
        rounds: int | None = None,
        reward: str | None = None,
        *,
        planner: str | None = None,
        seed: int | None = None,
    ) -> MBRLConfig:
        """The env's out-of-the-box recipe (:func:`mbrl_recipe`; Pendulum: the ``MBRLConfig`` defaults, GRASP, horizon 30,
        200x200 MLP and reward head) with this study's budgets; ``planner`` replaces the recipe's (and its options)."""
        budgets = {
            "rounds": rounds if rounds is not None else self.rounds,
            "seed_steps": self.seed_steps,
            "steps_per_round": self.steps_per_round,
        }
        return mbrl_recipe(
            self.env_id,
            **{name: value for name, value in budgets.items() if value is not None},
            eval_episodes=self.eval_episodes,
            seed=self.seed if seed is None else seed,
            reward=reward or self.main_reward,
            **({} if planner is None else {"planner": planner}),
        )


def loop_label(config: MBRLConfig | Mapping[str, Any], known_label: str = "known reward") -> str:
    """``"GraspMPC (GRASP H=30), learned reward"``: the name of a loop's curve (no seed)."""
    values = config.to_json() if isinstance(config, MBRLConfig) else config
    reward = known_label if values["reward"] == "known" else f"{values['reward']} reward"
    return f"GraspMPC ({str(values['planner']).upper()} H={values['horizon']}), {reward}"


def _rl_env_key(env_id: str) -> str:
    """The RL-suite key of ``env_id`` (``"pendulum"``): its ``"return"``-evaluated entry in ``RL_ENVS``."""
    for key, spec in RL_ENVS.items():
        if spec.env_id == env_id and spec.evaluation == "return":
            return key
    raise ValueError(f"no return-evaluated RL baseline for {env_id!r}: add it to bench.suites.rl.RL_ENVS")


def sac_curve_run(steps: Sequence[int], eval_episodes: int, eval_seed: int, seed: int, env_id: str = ENV_ID) -> RLRun:
    """SAC trained once up to ``max(steps)``, paused at each count to run the loop's evaluation episodes.

    The unit's budget label is ``"curve"`` for training seed 0 (the key of the Pendulum study's resume log)
    and ``"curve_seed<k>"`` otherwise."""
    return RLRun(
        _rl_env_key(env_id),
        "sac",
        "curve" if seed == 0 else f"curve_seed{seed}",
        int(max(steps)),
        seed=seed,
        eval_seed=eval_seed,
        n_eval=eval_episodes,
        eval_at=tuple(sorted(set(steps))),
    )


def terminal_value_ablation(run_dir: Path, config: MBRLConfig, horizon: int) -> dict[str, Any]:
    """GraspMPC at ``horizon`` on the last round's model, without and with a TD(0) value of its data."""
    from mpc_grasp.data import load_dataset, make_env
    from mpc_grasp.models import load_world_model, train_value_function

    last = sorted(run_dir.glob("round_*"))[-1]
    model, dataset = cast("MLPWorldModel", load_world_model(last / "model.pt")), load_dataset(last / "dataset.npz")
    started = time.perf_counter()
    value = train_value_function(
        dataset, model, discount=config.value_discount, epochs=config.value_epochs, seed=config.seed
    )
    value_time = time.perf_counter() - started
    short = dataclasses.replace(config, horizon=horizon)
    action_space = cast("spaces.Box", make_env(config.env_id, **dict(config.env_kwargs)).action_space)
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


def final_evaluation(task: Mapping[str, Any]) -> dict[str, Any]:
    """Work unit: success and return of GraspMPC on a loop's last model over ``task["episodes"]`` fixed-seed
    episodes, planning with ``task["reward"]`` (the loop's learned head, or the env's known formula)."""
    from mpc_grasp.data import make_env
    from mpc_grasp.models import load_world_model

    last = Path(task["run_dir"]) / task["round"]
    record = json.loads((last / "record.json").read_text())
    model = cast("MLPWorldModel", load_world_model(last / "model.pt"))
    config = MBRLConfig(**{**task["config"], "reward": task["reward"], "eval_episodes": task["episodes"]})
    action_space = cast("spaces.Box", make_env(config.env_id, **dict(config.env_kwargs)).action_space)
    summary = evaluate_return(make_agent(model, config, action_space), config)
    keys = (
        "successes",
        "success_rate",
        "success_ci95",
        "mean_return",
        "std_return",
        "episode_returns",
        "median_plan_time_s",
    )
    return {
        "seed": config.seed,
        "reward": task["reward"],
        "round": task["round"],
        "env_steps": record["env_steps"],
        "episodes": task["episodes"],
        **{k: summary.get(k) for k in keys},
    }


def exact_model_check(task: Mapping[str, Any]) -> dict[str, Any]:
    """Work unit: GraspMPC with ``task["planner"]`` (at its defaults, or ``task["options"]``) on the env's exact
    physics and known reward, closed loop, ``task["episodes"]`` fixed-seed episodes: can the planner do the task
    at all, apart from any learned model? Cart-pole swing-up only."""
    from mpc_grasp.control.agent import GraspMPC
    from mpc_grasp.control.episodes import run_episodes, summarize_episodes
    from mpc_grasp.data import make_env
    from mpc_grasp.models.analytic import CartPoleSwingupModel
    from mpc_grasp.rl.mbrl import KNOWN_REWARDS

    env_id = task["env_id"]
    if env_id != "mpc_grasp/CartPoleSwingup-v0":
        raise ValueError(f"no exact model for {env_id!r}")
    env = make_env(env_id)
    model, reward = CartPoleSwingupModel(), KNOWN_REWARDS[env_id]
    options = dict(task.get("options") or {})
    agent = GraspMPC(
        model,
        task["planner"],
        horizon=task["horizon"],
        action_space=env.action_space,
        reward_fn=reward,
        seed=0,
        **options,
    )
    try:
        records = run_episodes(env, agent, task["episodes"], seed=0, progress=False)
    finally:
        env.close()
    summary = summarize_episodes(records)
    return {
        "planner": task["planner"],
        "options": options,
        "horizon": task["horizon"],
        "episode_returns": [r.episode_return for r in records],
        "first_success_steps": [r.first_success_step for r in records],
        **{k: summary.get(k) for k in ("successes", "episodes", "mean_return", "median_plan_time_s", "wall_time_s")},
    }


def _checks(
    study: MBRLStudyConfig, runs: Path, resume: bool, parallel: ParallelOptions | None, progress: bool
) -> dict[str, list]:
    """The env's final evaluations (every seed's last model, each reward) and exact-model rows, as logged work units."""
    spec = study.env
    units = []
    if spec.final_eval_episodes:
        for index, seed in enumerate(study.training_seeds):
            config = study.recipe(seed=seed)
            run_dir = runs / (study.main_reward if index == 0 else f"{study.main_reward}_seed{seed}")
            last = sorted(run_dir.glob("round_*"))[-1].name
            for reward in spec.final_eval_rewards:
                settings = {
                    "env_id": study.env_id,
                    "config": config.to_json(),
                    "run_dir": str(run_dir),
                    "round": last,
                    "episodes": spec.final_eval_episodes,
                    "reward": reward,
                }
                units.append(WorkUnit({"part": "final", "seed": seed, "reward": reward}, settings))
    horizon = study.recipe().horizon
    for planner in spec.exact_model_planners:
        units.append(
            WorkUnit(
                {"part": "exact", "planner": planner},
                {"env_id": study.env_id, "planner": planner, "horizon": horizon, "episodes": 3},
            )
        )
    if not units:
        return {"final": [], "exact": []}
    rows = run_units(
        _check_unit,
        units,
        log=ResumeLog(runs / "checks.partial.jsonl", resume=resume),
        parallel=parallel,
        progress=progress,
        desc="final evaluations and exact-model checks",
    )
    return {
        "final": [row for unit, row in zip(units, rows) if unit.key["part"] == "final"],
        "exact": [row for unit, row in zip(units, rows) if unit.key["part"] == "exact"],
    }


def _check_unit(task: Mapping[str, Any]) -> dict[str, Any]:
    return final_evaluation(task) if task["part"] == "final" else exact_model_check(task)


def loop_time(records: Sequence[RoundRecord] | Sequence[Mapping[str, Any]]) -> float:
    """Seconds a loop's rounds took (collect + train + evaluate), also for rounds reused on resume."""
    rows = [record.to_json() if isinstance(record, RoundRecord) else record for record in records]
    return float(sum(row["collect_time_s"] + row["train_time_s"] + row["eval_time_s"] for row in rows))


def first_reaching(steps: Sequence[int], returns: Sequence[float], target: float) -> int | None:
    """The first env-step count whose mean return reaches ``target`` (None if none does)."""
    return next((int(step) for step, value in zip(steps, returns) if value >= target), None)


def run_mbrl_study(
    study: MBRLStudyConfig,
    *,
    out_dir: str | Path,
    runs_dir: str | Path,
    stem: str | None = None,
    command: str = "",
    resume: bool = False,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the loops (round checkpoints in ``runs_dir``), the SAC curves and the terminal-value comparison;
    write ``<stem>.{json,md,png}`` (default stem ``mbrl_<env slug>``) under ``out_dir``; return the report.

    Run folders: ``learned`` / ``known`` (first seed, Pendulum's names), ``<reward>_seed<k>`` for further
    seeds, ``mppi_<reward>`` for the MPPI loop; SAC's resume log ``sac.partial.jsonl``."""
    import torch

    runs = Path(runs_dir)
    spec = study.env
    wall: dict[str, float] = {}
    loops: list[dict[str, Any]] = []

    def run_loop(config: MBRLConfig, folder: str, role: str) -> list[RoundRecord]:
        records = run_mbrl(config, runs / folder, resume=resume, progress=progress)
        label = loop_label(config, spec.known_label)
        wall[f"{label}, seed {config.seed}"] = loop_time(records)  # rounds reused from an earlier run count too
        loops.append(
            {
                "label": label,
                "role": role,
                "seed": config.seed,
                "config": config.to_json(),
                "rounds": [r.to_json() for r in records],
            }
        )
        return records

    main_records: list[RoundRecord] = []
    for index, seed in enumerate(study.training_seeds):
        folder = study.main_reward if index == 0 else f"{study.main_reward}_seed{seed}"
        records = run_loop(study.recipe(seed=seed), folder, "main")
        main_records = main_records or records
    if study.known_rounds > 0:
        run_loop(study.recipe(study.known_rounds, reward=study.other_reward), study.other_reward, "comparison")
    if study.mppi_rounds > 0:
        planner = spec.comparison_planner
        run_loop(study.recipe(study.mppi_rounds, planner=planner), f"{planner}_{study.main_reward}", "comparison")
    started = time.perf_counter()
    checks = _checks(study, runs, resume, parallel, progress)
    if checks["final"] or checks["exact"]:
        wall["final evaluations and exact-model checks"] = time.perf_counter() - started
    config = study.recipe()
    sac_runs: list[dict[str, Any]] = []
    if study.sac:
        started = time.perf_counter()
        steps = [r.env_steps for r in main_records] + list(study.sac_extra_steps)
        curve_runs = [
            sac_curve_run(steps, study.eval_episodes, config.eval_seed, seed, study.env_id)
            for seed in study.training_seeds
        ]
        rows = run_rl_runs(
            curve_runs, log=ResumeLog(runs / "sac.partial.jsonl", resume=resume), parallel=parallel, progress=progress
        )
        for seed, row in zip(study.training_seeds, rows):
            points = row.get(
                "curve", [{"env_steps": row["env_steps"], "eval": row["eval"], "wall_time_s": row["train_time_s"]}]
            )
            sac_runs.append(
                {
                    "seed": seed,
                    "points": [
                        {
                            "env_steps": p["env_steps"],
                            "mean_return": p["eval"]["mean_return"],
                            "std_return": p["eval"]["std_return"],
                            "episode_returns": p["eval"].get("episode_returns"),
                            "wall_time_s": p["wall_time_s"],
                        }
                        for p in points
                    ],
                }
            )
        wall["SAC"] = time.perf_counter() - started
    ablation = None
    if study.value_horizon > 0:
        started = time.perf_counter()
        ablation = terminal_value_ablation(runs / study.main_reward, config, study.value_horizon)
        wall["terminal value comparison"] = time.perf_counter() - started
    report: dict[str, Any] = {
        "command": command,
        "commit": git_commit(mark_dirty=True),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "env_id": study.env_id,
        "seed": study.seed,
        "seeds": study.training_seeds,
        "eval_episodes": study.eval_episodes,
        "eval_seed": config.eval_seed,
        "target_return": spec.target_return,
        "note": spec.note,
        "loops": loops,
        "sac_runs": sac_runs,
        "terminal_value": ablation,
        "final_evaluation": checks["final"],
        "exact_model": checks["exact"],
        "wall_time_s": wall,
    }
    report["first_reaching_target"] = {
        name: first_reaching(c.steps, c.mean, spec.target_return) for name, c in _curves(report).items()
    }
    write_report(out_dir, stem or f"mbrl_{spec.slug}", report, mbrl_markdown, plot_mbrl)
    return report


# --------------------------------------------------------------------------- reading reports (old and new)


@dataclass(frozen=True)
class _Curve:
    """One agent's return vs env steps: per-seed returns at each step count, their mean and spread."""

    steps: list[int]
    per_seed: list[list[float]]
    """``per_seed[i][j]``: seed ``j``'s mean evaluation return at ``steps[i]`` (seeds missing a step are left out)."""
    eval_std: list[float]
    """Std over the evaluation episodes (first seed)."""

    @property
    def mean(self) -> list[float]:
        return [float(np.mean(values)) for values in self.per_seed]

    @property
    def spread(self) -> list[float]:
        """Std over seeds with several seeds, else over evaluation episodes."""
        if max(len(values) for values in self.per_seed) > 1:
            return [float(np.std(values)) for values in self.per_seed]
        return self.eval_std


def _loops(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's loops; a report of the one-env, one-seed study (``learned`` / ``known``) as loops."""
    if "loops" in report:
        return list(report["loops"])
    loops = []
    for key, role in (("learned", "main"), ("known", "comparison")):
        block = report.get(key)
        if block:
            loops.append({"label": loop_label(block["config"]), "role": role, "seed": report.get("seed", 0), **block})
    return loops


def _sac_runs(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    if "sac_runs" in report:
        return list(report["sac_runs"])
    return [{"seed": report.get("seed", 0), "points": report["sac"]}] if report.get("sac") else []


def _curve(runs: Sequence[Sequence[Mapping[str, Any]]]) -> _Curve:
    """Merge the step -> return rows of several seeds."""
    steps = sorted({int(row["env_steps"]) for rows in runs for row in rows})
    tables = [{int(row["env_steps"]): row for row in rows} for rows in runs]
    per_seed = [[float(table[step]["mean_return"]) for table in tables if step in table] for step in steps]
    first = tables[0]
    eval_std = [float(first[step]["std_return"]) if step in first else 0.0 for step in steps]
    return _Curve(steps, per_seed, eval_std)


def _curves(report: Mapping[str, Any]) -> dict[str, _Curve]:
    """name -> curve of every agent in the report (loops of one label merged over seeds; SAC last)."""
    by_label: dict[str, list[list[Mapping[str, Any]]]] = {}
    for loop in _loops(report):
        by_label.setdefault(loop["label"], []).append(loop["rounds"])
    sac = _sac_runs(report)
    if sac:
        by_label[SAC] = [run["points"] for run in sac]
    return {label: _curve(runs) for label, runs in by_label.items() if any(runs)}


def _seed_count(report: Mapping[str, Any], label: str) -> int:
    if label == SAC:
        return len(_sac_runs(report))
    return sum(1 for loop in _loops(report) if loop["label"] == label)


def plot_mbrl(report: Mapping[str, Any], path: Path) -> Path:
    """Mean evaluation return vs training env steps of every agent (mean over seeds, shaded ± std), with the target."""
    curves = {}
    for name, curve in _curves(report).items():
        seeds = _seed_count(report, name)
        curves[name if seeds == 1 else f"{name} ({seeds} seeds)"] = (curve.steps, curve.mean, curve.spread)
    env_id = report.get("env_id", ENV_ID)
    return plot_learning_curves(curves, path, title=f"{env_id}: model-based RL vs SAC", target=report["target_return"])


def mbrl_markdown(report: Mapping[str, Any]) -> str:
    """``mbrl_<env>.md``: one row per env-step count (mean over seeds, each seed's value), the model error of the
    first seed's main loop, the terminal-value comparison, first steps reaching the target."""
    env_id = report.get("env_id", ENV_ID)
    curves = _curves(report)
    tables = {name: dict(zip(curve.steps, zip(curve.per_seed, curve.eval_std))) for name, curve in curves.items()}
    seeds = report.get("seeds", [report.get("seed", 0)])
    main = next((loop for loop in _loops(report) if loop.get("role") == "main"), None)
    errors = {row["env_steps"]: row for row in main["rounds"]} if main else {}

    def cell(name: str, step: int) -> str:
        entry = tables[name].get(step)
        if entry is None:
            return ""
        values, eval_std = entry
        if _seed_count(report, name) == 1:
            return f"{values[0]:.0f} ± {eval_std:.0f}"
        return f"**{np.mean(values):.0f}** ({' / '.join(f'{value:.0f}' for value in values)})"

    names = list(curves)
    seed_text = (
        f"one seed ({seeds[0]})" if len(seeds) == 1 else f"{len(seeds)} training seeds ({', '.join(map(str, seeds))})"
    )
    lines = [f"# Model-based RL on {env_id}: mean evaluation return vs env steps", ""]
    if report.get("note"):
        lines += [report["note"], ""]
    lines += [
        f"{seed_text[0].upper() + seed_text[1:]}, 1 torch thread. Evaluation: {report['eval_episodes']} fixed-seed episodes "
        f"(seed {report['eval_seed']}: the same starts for every agent, seed and step count); env steps = training steps "
        "(evaluation episodes not counted). A cell with one seed is mean ± std over the evaluation episodes; with several, "
        "the mean over seeds in bold, then each seed's mean return. Runs: "
        + "; ".join(f"{name} {_seed_count(report, name)} seed(s)" for name in names)
        + ".",
        "",
        "| env steps | "
        + " | ".join(names)
        + " | model one-step RMSE on the agent's new data, before → after retraining |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for step in sorted({step for curve in curves.values() for step in curve.steps}):
        row = errors.get(step, {})
        error = (
            ""
            if row.get("model_rmse_before") is None
            else f"{row['model_rmse_before']:.4f} → {row['model_rmse_after']:.4f}"
        )
        lines.append(f"| {step} | " + " | ".join(cell(name, step) for name in names) + f" | {error} |")
    ablation = report.get("terminal_value")
    if ablation:
        lines += [
            "",
            f"Terminal value ({ablation['round']}, {ablation['env_steps']} transitions, GraspMPC at horizon {ablation['horizon']}, "
            f"discount {ablation['discount']}): without V {ablation['without value']['mean_return']:.0f}, "
            f"with V(s) learned by TD(0) {ablation['with value']['mean_return']:.0f} (value trained in {ablation['value_train_time_s']:.1f} s).",
        ]
    final = report.get("final_evaluation") or []
    if final:
        lines += [
            "",
            f"Final evaluation of each seed's last model ({final[0]['episodes']} fixed-seed episodes, success at the last step):",
            "",
        ]
        lines += [
            "| seed | planning reward | env steps | successes | success (95% CI) | mean return ± std | median plan time (s) |",
            "|---|---|---:|---:|---|---:|---:|",
        ]
        for row in final:
            ci = row.get("success_ci95") or [float("nan"), float("nan")]
            lines.append(
                f"| {row['seed']} | {row.get('reward', 'learned')} | {row['env_steps']} | {row['successes']}/{row['episodes']} | {row['success_rate']:.2f} "
                f"[{ci[0]:.2f}, {ci[1]:.2f}] | {row['mean_return']:.0f} ± {row['std_return']:.0f} | {row['median_plan_time_s']:.3f} |"
            )
    exact = report.get("exact_model") or []
    if exact:
        lines += [
            "",
            f"Planners on the exact physics with the known reward (GraspMPC at its defaults, H={exact[0]['horizon']}, "
            f"{exact[0]['episodes']} episodes each, seed 0):",
            "",
            "| planner | successes | episode returns | first success step | median plan time (s) |",
            "|---|---:|---|---|---:|",
        ]
        for row in exact:
            lines.append(
                f"| {row['planner']} | {row['successes']}/{row['episodes']} | {' / '.join(f'{v:.0f}' for v in row['episode_returns'])} "
                f"| {row['first_success_steps']} | {row['median_plan_time_s']:.3f} |"
            )
    reached = ", ".join(
        f"{name} {value if value is not None else 'not reached'}"
        for name, value in report["first_reaching_target"].items()
    )
    lines += [
        "",
        f"First step count with mean return >= {report['target_return']:g} (mean over seeds): {reached}",
        "",
        "Wall time (s): " + ", ".join(f"{name} {value:.0f}" for name, value in report["wall_time_s"].items()),
    ]
    return "\n".join(lines)
