"""World-model accuracy vs prediction horizon (DESIGN.md §6) as a suite: one work unit per env.

Each unit collects transitions with correlated exploration, holds out ``test_fraction`` of the episodes,
trains an ``MLPWorldModel`` (MSE on normalised deltas, cosine learning-rate decay, the epoch with the best
validation error kept) and measures open-loop H-step error on the held-out episodes with
:mod:`mpc_grasp.models.metrics` (``one_step_error``, ``multi_step_error``, ``open_loop_rollouts``). Units
run through :func:`~bench.engine.run_units` (resume log, in-process or Ray) and the report is
written by :func:`~bench.report.write_report` as ``model_eval.{json,md,png}``.

Normalisation (the plot and the ``nrmse`` fields): per state dimension d, RMSE_d(H) divided by the std
of that dimension over the test states, then root-mean-square over dimensions; 1.0 is an error as large
as the spread of the states. The "no-change" baseline (predict the start state) is normalised the same
way. Raw RMSE (env units) is in the JSON too; on the grid world it compares with the 0.25 maximum step.

Grid-world extras: the fraction of open-loop predicted states (H <= 25) strictly inside a wall cell, and
"push tests": start near a wall face, push into it at full speed for 10 steps, report the largest predicted
penetration beyond the face (true value 0; the wall cell itself starts 0.1 beyond the face).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.engine import ResumeLog, WorkUnit, run_units
from bench.report import write_report
from mpc_grasp.parallel import ParallelOptions

__all__ = [
    "HORIZONS",
    "MODEL_EVAL_ENVS",
    "PUSH_TESTS",
    "ModelEvalConfig",
    "evaluate_env",
    "grid_checks",
    "model_eval_markdown",
    "normalised_rmse",
    "plot_model_eval",
    "run_model_eval",
]

HORIZONS: tuple[int, ...] = (1, 2, 5, 10, 25, 50)

MODEL_EVAL_ENVS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "grid_wall": ("mpc_grasp/GridWorld-v0", {"layout": "wall"}, "wall"),
    "grid_umaze": ("mpc_grasp/GridWorld-v0", {"layout": "umaze"}, "umaze"),
    "cartpole_balance": ("mpc_grasp/CartPoleBalance-v0", {}, None),
    "cartpole_swingup": ("mpc_grasp/CartPoleSwingup-v0", {}, None),
}
"""name -> (env id, env kwargs, grid layout or None)."""

PUSH_TESTS: dict[str, list[tuple[tuple[float, float], tuple[float, float], int, float]]] = {
    "wall": [((3.4, y), (1.0, 0.0), 0, 3.9) for y in (2.0, 3.0, 4.0, 5.5)]
    + [((5.6, y), (-1.0, 0.0), 0, 5.1) for y in (2.0, 3.0, 4.0, 5.5)],
    "umaze": [((2.4, y), (1.0, 0.0), 0, 2.9) for y in (2.0, 3.0, 4.0, 5.5)]
    + [((6.6, y), (-1.0, 0.0), 0, 6.1) for y in (2.0, 3.0, 4.0, 5.5)]
    + [((x, 6.6), (0.0, -1.0), 1, 6.1) for x in (3.5, 4.5, 5.5)],
}
"""layout -> (start xy, action xy, axis, face coordinate): push into the face for 10 steps."""

NORMALISATION = "per-dim RMSE divided by the per-dim std of the test states, RMS over dims"


@dataclass(frozen=True)
class ModelEvalConfig:
    """Data, model and training budget of every env's unit (all fingerprinted)."""

    envs: tuple[str, ...] = tuple(MODEL_EVAL_ENVS)
    steps: int = 20_000
    """Transitions collected per env."""
    num_envs: int = 8
    """Vector envs for collection."""
    epochs: int = 150
    max_time: float | None = None
    """Training wall-time cap per env (s); off by default so results do not depend on machine load."""
    hidden: tuple[int, ...] = (256, 256, 256)
    batch_size: int = 512
    lr: float = 2e-3
    patience: int | None = None
    """Early-stopping patience (None: run all epochs, keep the best)."""
    test_fraction: float = 0.15
    seed: int = 0
    horizons: tuple[int, ...] = HORIZONS

    def __post_init__(self) -> None:
        for env in self.envs:
            if env not in MODEL_EVAL_ENVS:
                raise ValueError(f"unknown env {env!r}; choose from {sorted(MODEL_EVAL_ENVS)}")
        if min(self.steps, self.num_envs, self.epochs, self.batch_size, *self.hidden, *self.horizons) < 1:
            raise ValueError("steps, num_envs, epochs, batch_size, hidden sizes and horizons must be positive")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


def normalised_rmse(rmse_per_dim: Sequence[float] | None, state_std: np.ndarray) -> float | None:
    """RMS over dims of RMSE_d / std_d (see the module docstring); None stays None."""
    if rmse_per_dim is None:
        return None
    return float(np.sqrt(np.mean((np.asarray(rmse_per_dim) / state_std) ** 2)))


def grid_checks(model: Any, test: Any, layout: str) -> dict[str, Any]:
    """Wall-violation rate of open-loop predictions (H <= 25) and the push-into-wall penetrations."""
    import torch
    from mpc_grasp.envs import wall_boxes

    from mpc_grasp.models import open_loop_rollouts

    boxes = wall_boxes(layout)
    roll = open_loop_rollouts(model, test, 25, max_windows=2048)
    pts = roll["predicted"][roll["valid"]]  # [K, 2]
    inside = (
        (boxes[None, :, 0] < pts[:, None, 0])
        & (pts[:, None, 0] < boxes[None, :, 2])
        & (boxes[None, :, 1] < pts[:, None, 1])
        & (pts[:, None, 1] < boxes[None, :, 3])
    ).any(axis=1)
    pushes: list[dict[str, Any]] = []
    with torch.no_grad():
        for start, action, axis, face in PUSH_TESTS[layout]:
            state, push = torch.tensor([start], dtype=torch.float32), torch.tensor([action], dtype=torch.float32)
            sign, worst = float(np.sign(action[axis])), -np.inf
            for _ in range(10):
                state = model(state, push)
                worst = max(worst, sign * (float(state[0, axis]) - face))
            pushes.append({"start": list(start), "action": list(action), "face": face, "max_penetration": worst})
    return {
        "wall_violation_rate_h25": float(inside.mean()) if len(pts) else None,
        "n_predicted_states": int(len(pts)),
        "push_tests": pushes,
        "max_push_penetration": max(p["max_penetration"] for p in pushes),
    }


def evaluate_env(task: Mapping[str, Any]) -> dict[str, Any]:
    """Worker of one env's unit (its key + :class:`ModelEvalConfig` fields, ``threads``, ``save_dir``):
    collect, split, train, measure; returns the env's entry of the report's ``results``."""
    from mpc_grasp.data import collect_transitions
    from mpc_grasp.models import (
        multi_step_error,
        one_step_error,
        open_loop_rollouts,
        save_world_model,
        train_world_model,
    )

    name, horizons, seed = task["env"], [int(h) for h in task["horizons"]], int(task["seed"])
    env_id, env_kwargs, layout = MODEL_EVAL_ENVS[name]
    started = time.perf_counter()
    data = collect_transitions(
        env_id, task["steps"], seed=seed, num_envs=task["num_envs"], env_kwargs=env_kwargs, progress=False
    )
    collect_s = time.perf_counter() - started
    train, test = data.split(task["test_fraction"], seed=seed + 1)
    cpu0 = time.process_time()
    model = train_world_model(
        train,
        hidden_sizes=tuple(task["hidden"]),
        epochs=task["epochs"],
        batch_size=task["batch_size"],
        lr=task["lr"],
        patience=task["patience"],
        max_time_s=task["max_time"],
        seed=seed,
        progress=False,
        num_threads=task.get("threads", 1),
    )
    train_cpu_s = time.process_time() - cpu0
    history = model.training_history
    one, multi = one_step_error(model, test), multi_step_error(model, test, horizons=horizons)
    state_std = test.observations.astype(np.float64).std(axis=0)
    state_std = np.where(state_std > 1e-8, state_std, 1.0)
    roll = open_loop_rollouts(model, test, max(horizons), max_windows=4096)  # the windows multi_step_error used
    no_change = []
    for h in horizons:
        mask = roll["valid"][:, h - 1]
        diff = (roll["start"][mask] - roll["target"][mask, h - 1]).astype(np.float64)
        no_change.append(normalised_rmse(np.sqrt(np.mean(diff**2, axis=0)).tolist(), state_std) if mask.any() else None)
    result: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "dataset": {
            "n_total": len(data),
            "episodes": data.num_episodes,
            "n_train": history["n_train"],
            "n_val": history["n_val"],
            "n_test": len(test),
            "test_episodes": test.num_episodes,
            "collect_time_s": collect_s,
            "exploration": data.metadata["exploration"],
        },
        "training": {
            "wall_time_s": history["wall_time_s"],
            "cpu_time_s": train_cpu_s,
            "epochs_run": len(history["epoch"]),
            "best_epoch": history["best_epoch"],
            "stopped": history["stopped"],
            "best_val_mse_normalised": history["best_val_mse"],
        },
        "state_std": state_std.tolist(),
        "one_step": one,
        "one_step_nrmse": normalised_rmse(one["rmse_per_dim"], state_std),
        "multi_step": multi,
        "nrmse": [normalised_rmse(r, state_std) for r in multi["rmse_per_dim"]],
        "no_change_nrmse": no_change,
    }
    if layout is not None:
        result["grid"] = grid_checks(model, test, layout)
    if task.get("save_dir") is not None:
        metadata = {"experiment": "model_eval", "test_metrics": {"one_step": one, "multi_step": multi}}
        result["checkpoint"] = str(save_world_model(model, Path(task["save_dir"]) / f"{name}.pt", metadata=metadata))
    return _plain(result)


def run_model_eval(
    config: ModelEvalConfig,
    *,
    out_dir: str | Path,
    stem: str = "model_eval",
    command: str = "",
    save_dir: str | Path | None = None,
    resume: bool = False,
    parallel: ParallelOptions | None = None,
    progress: bool = True,
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Evaluate every env (reusing ``<out_dir>/<stem>.partial.jsonl``), write ``<stem>.{json,md,png}``, return the report."""
    import torch

    parallel = parallel or ParallelOptions()
    started = time.perf_counter()
    settings = {key: value for key, value in asdict(config).items() if key != "envs"}
    execution = {"threads": parallel.threads, "save_dir": None if save_dir is None else str(save_dir)}
    units = [WorkUnit({"env": env}, settings, task={"env": env, **settings, **execution}) for env in config.envs]
    log = ResumeLog(Path(out_dir) / f"{stem}.partial.jsonl", resume=resume)
    results = run_units(
        evaluate_env, units, log=log, sources=sources, parallel=parallel, progress=progress, desc="model_eval envs"
    )
    report: dict[str, Any] = {
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": parallel.threads,
        "total_time_s": time.perf_counter() - started,
        "horizons": list(config.horizons),
        "normalisation": NORMALISATION,
        "config": {**asdict(config), **execution, "out_dir": str(out_dir)},
        "reused_envs": log.reused,
        "results": dict(zip(config.envs, results)),
    }
    write_report(out_dir, stem, report, model_eval_markdown, plot_model_eval)
    return report


def plot_model_eval(report: Mapping[str, Any], path: Path) -> Path:
    """Normalised H-step error per env (solid) and the no-change baseline (dashed), log-log."""
    from mpc_grasp.plotting import plt, save_figure

    horizons = report["horizons"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for index, (name, res) in enumerate(report["results"].items()):
        for values, style, extra in (
            (res["nrmse"], "o-", {"label": name}),
            (res["no_change_nrmse"], "--", {"alpha": 0.5}),
        ):
            known = [(h, v) for h, v in zip(horizons, values) if v is not None]
            ax.plot([h for h, _ in known], [v for _, v in known], style, color=f"C{index}", **extra)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(horizons)
    ax.set_xticklabels([str(h) for h in horizons])
    ax.set_xlabel("prediction horizon H (open-loop steps)")
    ax.set_ylabel("RMSE / state std (RMS over dims)")
    ax.set_title("World-model H-step error on held-out episodes\n(solid: MLP model, dashed: no-change baseline)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def model_eval_markdown(report: Mapping[str, Any]) -> str:
    """``model_eval.md``: normalised H-step error per env (and its no-change baseline), grid-world checks."""
    horizons = report["horizons"]

    def cells(values: Sequence[float | None]) -> str:
        return " | ".join("–" if value is None else f"{value:.4f}" for value in values)

    lines = [
        "# World-model H-step error on held-out episodes",
        "",
        f"Normalised error: {report['normalisation']}; second row of each env: the no-change baseline (predict the start state).",
        "",
        "| env | n_train | train s | 1-step RMSE | " + " | ".join(f"H={h}" for h in horizons) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(horizons),
    ]
    checks = []
    for name, res in report["results"].items():
        lines.append(
            f"| {name} | {res['dataset']['n_train']} | {res['training']['wall_time_s']:.1f} | {res['one_step']['rmse']:.5f} | {cells(res['nrmse'])} |"
        )
        lines.append(f"| no-change | | | {res['one_step']['no_change_rmse']:.5f} | {cells(res['no_change_nrmse'])} |")
        if "grid" in res:
            grid = res["grid"]
            pushes = ", ".join(f"{push['max_penetration']:.3f}" for push in grid["push_tests"])
            rate = grid["wall_violation_rate_h25"]
            checks.append(
                f"- {name}: wall-violation rate (H <= 25) {'–' if rate is None else f'{rate:.4f}'}, "
                f"max push penetration {grid['max_push_penetration']:.3f} (per test: {pushes})"
            )
    return "\n".join(lines + (["", "Grid-world checks:", *checks] if checks else []))


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars turned into Python numbers (for the JSON-lines resume log)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
