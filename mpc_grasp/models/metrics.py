"""Prediction-error metrics of a world model on held-out transitions (plain dicts, JSON-ready).

``one_step_error``: teacher-forced next-state error. ``multi_step_error``: open-loop rollouts from
the true start state with the recorded actions, error after H steps, only over windows that stay
inside one episode. Both report a "no-change" baseline (predict the current / start state).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mpc_grasp.data import TransitionDataset
from mpc_grasp.models.base import check_world_model, model_device

__all__ = ["multi_step_error", "one_step_error", "open_loop_rollouts"]


def _states(model: Any, obs: np.ndarray, device: torch.device) -> Tensor:
    """Observations -> model states: ``model.encode`` when the model has one, else the identity."""
    encode = getattr(model, "encode", None)
    tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)
    return encode(tensor) if encode is not None else tensor


def _predict(model: Any, states: Tensor, actions: Tensor, batch_size: int) -> Tensor:
    out = [model(states[i : i + batch_size], actions[i : i + batch_size]) for i in range(0, len(states), batch_size)]
    return torch.cat(out) if out else states.clone()


@torch.no_grad()
def one_step_error(model: Any, dataset: TransitionDataset, *, batch_size: int = 65536) -> dict[str, Any]:
    """One-step errors of ``model(s, a)`` against ``next_observations``.

    Returns ``n``, ``rmse`` (over rows and state dims), ``mae``, ``rmse_per_dim``, ``max_abs_error``,
    ``no_change_rmse`` (predicting ``s``, i.e. the RMS true one-step change) and, when the
    model has ``predict_distribution``, ``nll`` (mean Gaussian NLL per dim) and ``mean_std``.
    """
    check_world_model(model)
    if len(dataset) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    device = model_device(model)
    s = _states(model, dataset.observations, device)
    n = _states(model, dataset.next_observations, device)
    a = torch.as_tensor(dataset.actions, dtype=torch.float32, device=device)
    pred = _predict(model, s, a, batch_size)
    err = (pred - n).double()
    result: dict[str, Any] = {
        "n": len(dataset),
        "rmse": float(err.square().mean().sqrt()),
        "mae": float(err.abs().mean()),
        "rmse_per_dim": err.square().mean(0).sqrt().tolist(),
        "max_abs_error": float(err.abs().max()),
        "no_change_rmse": float((s - n).double().square().mean().sqrt()),
    }
    if hasattr(model, "predict_distribution"):
        means, stds = [], []
        for i in range(0, len(s), batch_size):
            m, sd = model.predict_distribution(s[i : i + batch_size], a[i : i + batch_size])
            means.append(m)
            stds.append(sd)
        mean, std = torch.cat(means).double(), torch.cat(stds).double()
        nll = 0.5 * ((n.double() - mean) / std).square() + std.log() + 0.5 * np.log(2 * np.pi)
        result["nll"] = float(nll.mean())
        result["mean_std"] = float(std.mean())
    return result


def episode_windows(dataset: TransitionDataset, max_horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start rows ``[W]``, row indices of each window's steps ``[W, H]`` (padded past the end of the start row's
    episode run: ``valid`` ``[W, H]`` is False there), one window per row; windows never cross an episode boundary."""
    starts, rows, valid = [], [], []
    steps = np.arange(max_horizon)
    for traj in dataset.trajectories():
        length = len(traj)
        offsets = np.arange(length)[:, None] + steps[None, :]  # [L, H] positions inside the run
        ok = offsets < length
        idx = traj.indices[np.minimum(offsets, length - 1)]
        starts.append(traj.indices)
        rows.append(idx)
        valid.append(ok)
    if not starts:
        return (
            np.zeros(0, dtype=np.int64),
            np.zeros((0, max_horizon), dtype=np.int64),
            np.zeros((0, max_horizon), dtype=bool),
        )
    return np.concatenate(starts), np.concatenate(rows), np.concatenate(valid)


@torch.no_grad()
def open_loop_rollouts(
    model: Any,
    dataset: TransitionDataset,
    horizon: int,
    *,
    max_windows: int | None = 4096,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Roll ``model`` open-loop for ``horizon`` steps from every (or a seeded random subset of
    ``max_windows``) start row with the recorded actions.

    Returns numpy arrays: ``start`` ``[W, S]`` (model states), ``predicted`` and ``target``
    ``[W, H, S]`` (state after k+1 steps) and ``valid`` ``[W, H]`` (False past the end of the
    start row's episode run, where predictions continue with padded actions and must be ignored).
    """
    check_world_model(model)
    if int(horizon) < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    horizon = int(horizon)
    starts, rows, valid = episode_windows(dataset, horizon)
    if max_windows is not None and len(starts) > max_windows:
        pick = np.sort(np.random.default_rng(seed).choice(len(starts), size=int(max_windows), replace=False))
        starts, rows, valid = starts[pick], rows[pick], valid[pick]
    device = model_device(model)
    state = _states(model, dataset.observations[starts], device)
    start = state
    actions = torch.as_tensor(dataset.actions[rows], dtype=torch.float32, device=device)  # [W, H, A]
    predicted = []
    for k in range(horizon):
        state = model(state, actions[:, k])
        predicted.append(state)
    target = _states(model, dataset.next_observations[rows.reshape(-1)], device).reshape(
        len(starts), horizon, *start.shape[1:]
    )
    stacked = torch.stack(predicted, dim=1)
    return {
        "start": start.cpu().numpy(),
        "predicted": stacked.cpu().numpy(),
        "target": target.cpu().numpy(),
        "valid": valid,
    }


def multi_step_error(
    model: Any,
    dataset: TransitionDataset,
    horizons: Sequence[int] = (1, 5, 10, 25, 50),
    *,
    max_windows: int | None = 4096,
    seed: int = 0,
) -> dict[str, Any]:
    """Open-loop H-step errors: roll ``model`` from each window's true start state with the recorded
    actions and compare the state after ``h`` steps with the recorded one.

    Only windows lying entirely inside one episode run count for horizon ``h`` (so long horizons
    use fewer windows); at most ``max_windows`` start rows (a seeded random subset) are used.
    Returns lists aligned with ``horizons``: ``rmse``, ``rmse_per_dim``, ``no_change_rmse``
    (error of predicting the start state) and ``n_windows`` (``rmse`` is ``None`` where 0).
    """
    horizons = [int(h) for h in horizons]
    if not horizons or min(horizons) < 1:
        raise ValueError(f"horizons must be positive integers, got {horizons}")
    roll = open_loop_rollouts(model, dataset, max(horizons), max_windows=max_windows, seed=seed)
    result: dict[str, Any] = {
        "horizons": horizons,
        "rmse": [],
        "rmse_per_dim": [],
        "no_change_rmse": [],
        "n_windows": [],
    }
    for h in horizons:
        mask = roll["valid"][:, h - 1]
        count = int(mask.sum())
        result["n_windows"].append(count)
        if count == 0:
            result["rmse"].append(None)
            result["rmse_per_dim"].append(None)
            result["no_change_rmse"].append(None)
            continue
        target = roll["target"][mask, h - 1].astype(np.float64)
        err = roll["predicted"][mask, h - 1].astype(np.float64) - target
        baseline = roll["start"][mask].astype(np.float64) - target
        result["rmse"].append(float(np.sqrt(np.mean(err**2))))
        result["rmse_per_dim"].append(np.sqrt(np.mean(err**2, axis=0)).tolist())
        result["no_change_rmse"].append(float(np.sqrt(np.mean(baseline**2))))
    return result
