"""Training the pixel world model from images and actions only (reconstruction, multi-step latent
prediction, then a dynamics refinement on cached encodings), held-out evaluation, and a cached
load-or-train used by the benchmark and tests."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as nnf

from mpc_grasp.models.checkpoint import CheckpointError
from mpc_grasp.models.pixel.data import PixelDataset, _as_pixel_dataset, _background_image, _batch_images
from mpc_grasp.models.pixel.diagnostics import latent_distance_correlation
from mpc_grasp.models.pixel.model import PixelWorldModel, load_pixel_world_model, save_pixel_world_model
from mpc_grasp.options import config_from_options
from mpc_grasp.validation import is_integer_at_least


def _weighted_mse(prediction: Tensor, target: Tensor, background: Tensor | None, foreground_weight: float) -> Tensor:
    """Pixel MSE with pixels that differ from the static background (in the target or in the
    prediction) weighted ``1 + foreground_weight``: small moving objects then dominate the loss
    instead of the easy, static background."""
    error = (prediction - target).pow(2)
    if background is None or foreground_weight <= 0:
        return error.mean()
    with torch.no_grad():
        moving = torch.maximum((target - background).abs().amax(-1), (prediction - background).abs().amax(-1)) > 0.1
        weight = 1.0 + foreground_weight * moving.float()
    return (error.mean(-1) * weight).mean()


def _model_loss(
    model: PixelWorldModel,
    images: Tensor,
    actions: Tensor,
    dynamics_weight: float,
    predicted_recon_weight: float,
    background: Tensor | None = None,
    foreground_weight: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """Loss on windows ``images [B, k+R, H, W, C]`` (float in [0, 1]; k = ``model.history`` context frames,
    then the R frames reached) and ``actions [B, R, A]`` (taken from the last context frame on).

    * reconstruction of the last context frame of every window (the first frame when k = 1; shapes the
      encoder);
    * multi-step latent rollout error against the encodings of the R frames reached; both the rollout
      start (the k context encodings) and the targets are detached, so this term trains the dynamics
      only and cannot make the encoder collapse to static (trivially predictable) latents;
    * reconstruction of the last frame from the latent rolled out from the (attached) context
      encodings: a pixel-grounded multi-step term that also makes decoded virtual states accurate.
    Only two frames per window are decoded: decoding dominates the cost on CPU.
    """
    k = model.history
    latents = model.encode_frames(images)  # [B, k+R, L]
    recon_loss = _weighted_mse(model.decode(latents[:, k - 1]), images[:, k - 1], background, foreground_weight)
    targets = latents.detach()
    actions_r = actions.unbind(1)
    pred = _newest(model, _rollout_steps(model, _context(targets, k), actions_r))  # [B, R, L]
    dyn_loss = (pred - targets[:, k:]).pow(2).sum(-1).mean()
    loss = recon_loss + dynamics_weight * dyn_loss
    stats = {"recon": recon_loss.item(), "dynamics": dyn_loss.item()}
    if predicted_recon_weight > 0:
        last = _rollout_steps(model, _context(latents, k), actions_r)[-1]
        pred_recon_loss = _weighted_mse(model.decode(last), images[:, -1], background, foreground_weight)
        loss = loss + predicted_recon_weight * pred_recon_loss
        stats["pred_recon"] = pred_recon_loss.item()
    stats["loss"] = loss.item()
    return loss, stats


def _rollout_steps(model: PixelWorldModel, start: Tensor, actions: tuple[Tensor, ...]) -> list[Tensor]:
    """Predicted (stacked) states after each of ``actions`` (a list of ``[B, A]``), from ``start``."""
    states = []
    current = start
    for action in actions:
        current = model(current, action)
        states.append(current)
    return states


def _context(latents: Tensor, k: int) -> Tensor:
    """The planning state of the first ``k`` per-frame latents of windows ``[B, W, L]`` -> ``[B, k * L]``."""
    return latents[:, 0] if k == 1 else latents[:, :k].flatten(1)


def _newest(model: PixelWorldModel, states: list[Tensor]) -> Tensor:
    """The newest latents ``[B, R, L]`` of a list of R stacked states ``[B, k * L]``."""
    return torch.stack([state[..., -model.latent_dim :] for state in states], dim=1)


@torch.no_grad()
def _encode_frames(model: PixelWorldModel, frames: np.ndarray, device: torch.device | str, chunk: int = 256) -> Tensor:
    """Encode uint8 frames ``[N, H, W, C]`` one by one, in chunks (no gradients) -> ``[N, latent_dim]``."""
    return torch.cat(
        [model.encode_frames(torch.from_numpy(frames[i : i + chunk]).to(device)) for i in range(0, len(frames), chunk)]
    )


def _fit_dynamics(
    model: PixelWorldModel,
    dataset: PixelDataset,
    *,
    iterations: int,
    batch_size: int,
    rollout_steps: int,
    lr: float,
    rng: np.random.Generator,
    seed: int,
    device: torch.device | str,
    progress: bool,
) -> list[dict[str, float]]:
    """Fit the latent dynamics afresh on frozen encodings, with data-derived normalisation.

    Sets ``latent_mean`` / ``latent_std`` / ``delta_std`` from the encodings, re-initialises the
    dynamics MLP (seeded) and minimises the ``rollout_steps``-step latent rollout error on cached
    encodings, each rollout starting from the ``model.history`` encodings before it. Encoding every frame once makes thousands of updates cost seconds, far cheaper than
    training the dynamics only inside the image-batch loop. The loss is reported in units of the
    mean squared one-step change (1.0 = as bad as a model that predicts no motion at all).
    """
    from tqdm.auto import tqdm

    k = model.history
    starts = dataset.window_starts(k - 1 + rollout_steps)
    if len(starts) == 0:
        starts, rollout_steps = dataset.window_starts(k), 1
    latents = _encode_frames(model, dataset.frames, device)
    consecutive = torch.from_numpy(np.flatnonzero(dataset.segment_ids[1:] == dataset.segment_ids[:-1])).to(device)
    deltas = latents[consecutive + 1] - latents[consecutive]
    with torch.no_grad():
        std = latents.std(0)
        model.latent_mean.copy_(latents.mean(0))
        # floor: keypoints parked on static features barely move; dividing by ~0 would blow them up
        model.latent_std.copy_(std.clamp_min(max(1e-3, 0.05 * float(std.max()))))
        delta_rms = deltas.pow(2).mean(0).sqrt()
        model.delta_std.copy_(delta_rms.clamp_min(max(1e-6, 0.05 * float(delta_rms.max()))))
        torch.manual_seed(seed + 1)
        model.dynamics = model.new_dynamics().to(device)
    unit = float(deltas.pow(2).sum(-1).mean().clamp_min(1e-12))
    actions = torch.from_numpy(dataset.actions).to(device)
    optimizer = torch.optim.Adam(model.dynamics.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations, eta_min=lr * 0.05)
    history = []
    for it in tqdm(range(iterations), desc="fit latent dynamics", disable=not progress):
        chosen = rng.choice(starts, size=batch_size, replace=len(starts) < batch_size)
        index = torch.from_numpy(chosen[:, None] + np.arange(k + rollout_steps)).to(device)
        z = latents[index]  # [B, k+R, L]
        pred = _newest(model, _rollout_steps(model, _context(z, k), actions[index[:, k - 1 : -1]].unbind(1)))
        loss = (pred - z[:, k:]).pow(2).sum(-1).mean() / unit
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if it % 100 == 0 or it == iterations - 1:
            history.append({"iteration": float(it), "dynamics": loss.item()})
    return history


@torch.no_grad()
def evaluate_pixel_world_model(
    model: PixelWorldModel,
    dataset: PixelDataset,
    *,
    horizon: int = 10,
    max_windows: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out quality from images and actions only.

    ``recon_mse``: per-pixel MSE (images in [0, 1]) of ``decode(encode(x))``. ``one_step_error`` and
    ``h_step_error``: mean squared latent error of 1-step / ``horizon``-step open-loop predictions
    divided by that of the "nothing moves" prediction ``z_0`` (< 1 means better than standing still).
    A history model (k = ``model.history``) predicts from the k frames up to ``z_0``; the errors are those of
    the newest latent.
    """
    model.eval()
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    k = model.history
    starts = dataset.window_starts(k - 1 + horizon)
    if len(starts) == 0:
        starts = dataset.window_starts(k)
        horizon = 1
    if len(starts) == 0:
        raise ValueError(f"dataset has no window of {k} consecutive frames to evaluate on")
    chosen = rng.choice(starts, size=min(max_windows, len(starts)), replace=False)
    index = chosen[:, None] + np.arange(k + horizon)
    mse = []
    latents = []
    for part in np.array_split(np.arange(len(chosen)), max(1, len(chosen) // 32)):
        images = _batch_images(dataset.frames, index[part])
        z = model.encode_frames(images)
        mse.append(float(nnf.mse_loss(model.decode(z[:, k - 1 : k]), images[:, k - 1 : k], reduction="sum")))
        latents.append(z)
    z = torch.cat(latents)
    actions = torch.from_numpy(dataset.actions[index[:, k - 1 : -1]])
    pred = model.rollout(_context(z, k), actions)[..., -model.latent_dim :]
    still = (z[:, k - 1 : k] - z[:, k:]).pow(2).sum(-1).mean(0)  # [H]
    err = (pred[:, 1:] - z[:, k:]).pow(2).sum(-1).mean(0)
    out["recon_mse"] = float(sum(mse) / (len(chosen) * np.prod(dataset.frames.shape[1:])))
    out["one_step_error"] = float(err[0] / still[0].clamp_min(1e-12))
    out["h_step_error"] = float(err[-1] / still[-1].clamp_min(1e-12))
    out["horizon"] = float(horizon)
    return out


@dataclass(frozen=True)
class PixelTrainingConfig:
    """How :func:`train_pixel_world_model` builds and fits a :class:`PixelWorldModel`.

    The data (and, when it is an env, how much to collect), the device, the progress bar and a model to
    continue training are arguments of ``train_pixel_world_model``, not fields. The architecture fields are
    ignored when a model is given."""

    latent_dim: int = 16
    """Latent size: ``latent_dim / 2`` keypoints (x, y each)."""
    hidden_dim: int = 256
    """Width of the latent dynamics MLP."""
    dynamics_layers: int = 3
    history: int = 1
    """Frames of context k of the dynamics (the planning state stacks k latents); 1 = the last frame only."""
    encoder_width: int = 32
    """Channels of the CNN encoder and sprite decoder."""
    iterations: int = 600
    """Phase 1: AdamW steps on image windows."""
    batch_size: int = 32
    """Phase 1: windows per step."""
    rollout_steps: int = 4
    """Phase 1: actions per window (multi-step latent prediction)."""
    lr: float = 2e-3
    weight_decay: float = 1e-5
    dynamics_weight: float = 1.0
    """Phase 1: weight of the multi-step latent prediction error."""
    predicted_recon_weight: float = 0.5
    """Phase 1: weight of the reconstruction of the last frame from the rolled-out latent."""
    foreground_weight: float = 20.0
    """Extra weight of pixels that differ from the static background (small moving objects)."""
    dynamics_iterations: int = 3000
    """Phase 2: steps of the dynamics MLP alone on cached encodings (0: keep phase 1's dynamics)."""
    dynamics_rollout_steps: int = 4
    """Phase 2: rollout length of its loss."""
    validation_fraction: float = 0.1
    """Fraction of whole segments held out for the reported metrics."""
    seed: int = 0
    """Seeds collection (for an env), the split, the weights and the batches."""

    def __post_init__(self) -> None:
        positive = ("latent_dim", "hidden_dim", "dynamics_layers", "history", "encoder_width", "iterations")
        for name in (*positive, "batch_size", "rollout_steps", "dynamics_rollout_steps"):
            if not is_integer_at_least(getattr(self, name), 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not is_integer_at_least(self.dynamics_iterations, 0):
            raise ValueError(f"dynamics_iterations must be an integer >= 0, got {self.dynamics_iterations!r}")
        if not is_integer_at_least(self.seed, 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("weight_decay", "dynamics_weight", "predicted_recon_weight", "foreground_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")


def train_pixel_world_model(
    data: Any,
    config: PixelTrainingConfig | None = None,
    *,
    n_steps: int = 10000,
    episode_length: int = 50,
    collect_kwargs: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    model: PixelWorldModel | None = None,
    **options: Any,
) -> PixelWorldModel:
    """Train a :class:`PixelWorldModel` from images and actions (never true states); deterministic given
    ``seed`` (on CPU).

    ``config`` (default ``PixelTrainingConfig()``) with any :class:`PixelTrainingConfig` field given as a
    keyword option replaced. ``data``: a :class:`PixelDataset`, a transition dataset of images, a saved
    dataset ``.npz``, a Gymnasium pixel env or an env id such as ``"mpc_grasp/PixelGridWorldWall-v0"``
    (then ``n_steps`` steps are collected with correlated random actions, episodes of ``episode_length``;
    ``collect_kwargs`` go to :func:`collect_pixel_dataset`). ``model`` continues training a model.

    Phase 1 (:func:`_model_loss` on image windows) shapes the encoder and decoder with reconstruction and
    multi-step latent prediction; with ``history = k > 1`` every window holds k context frames before the
    ``rollout_steps`` frames predicted (phase 2 likewise); phase 2 (:func:`_fit_dynamics`) refits the dynamics MLP alone on cached
    encodings with data-derived normalisation. The returned model (eval mode) carries
    ``model.training_info``: data sizes, timings, loss histories and held-out metrics (``validation``:
    reconstruction MSE, 1-step and 10-step latent prediction error relative to predicting no motion, and,
    when the data has true states, correlations of latent with true pairwise distances).
    """
    config = config_from_options(PixelTrainingConfig, config, options)
    total_start = time.perf_counter()
    dataset, source = _as_pixel_dataset(
        data, n_steps, config.seed, episode_length, progress, dict(collect_kwargs or {})
    )
    train_set, val_set = dataset.split(config.validation_fraction, seed=config.seed)
    history = model.history if model is not None else config.history
    starts = _training_windows(train_set, config.rollout_steps, history)
    model = _initial_pixel_model(model, dataset, config).to(device)
    model.train()
    rng = np.random.default_rng(config.seed)
    background = _set_background(model, train_set, rng, device)
    train_start = time.perf_counter()
    loss_history = _train_on_images(model, train_set, starts, background, config, rng, device, progress)
    train_seconds = time.perf_counter() - train_start
    model.eval()
    dynamics_start = time.perf_counter()
    dynamics_history = _refit_dynamics(model, train_set, config, rng, device, progress)
    model.training_info = {
        **source,
        **_data_sizes(dataset, train_set, val_set),
        **{name: getattr(config, name) for name in ("iterations", "batch_size", "rollout_steps", "seed")},
        "train_seconds": train_seconds,
        "dynamics_seconds": time.perf_counter() - dynamics_start,
        "history": loss_history,
        "dynamics_history": dynamics_history,
        "validation": _held_out_metrics(model, train_set, val_set, config.seed),
    }
    model.training_info["total_seconds"] = time.perf_counter() - total_start
    return model


def _training_windows(train_set: PixelDataset, rollout_steps: int, history: int = 1) -> np.ndarray:
    """Start frames of the windows of ``history`` context frames and ``rollout_steps`` actions from the last of
    them, within one segment; raises if there are none."""
    starts = train_set.window_starts(history - 1 + rollout_steps)
    if len(starts) == 0:
        context = f"{history} context frames and " if history > 1 else ""
        raise ValueError(
            f"no training window of {context}{rollout_steps} consecutive transitions in {len(train_set)} frames; "
            "collect longer episodes or lower rollout_steps"
        )
    return starts


def _initial_pixel_model(
    model: PixelWorldModel | None, dataset: PixelDataset, config: PixelTrainingConfig
) -> PixelWorldModel:
    """``model`` checked against the data's image and action shapes, or a fresh one; seeds torch's global
    RNG with ``config.seed`` first (the fresh weights and everything after depend on it)."""
    height, width, channels = dataset.frames.shape[1:]
    if height != width:
        raise ValueError(f"images must be square, got {height}x{width}")
    torch.manual_seed(config.seed)
    if model is None:
        return PixelWorldModel(
            action_dim=dataset.actions.shape[1],
            latent_dim=config.latent_dim,
            image_size=height,
            channels=channels,
            hidden_dim=config.hidden_dim,
            encoder_width=config.encoder_width,
            dynamics_layers=config.dynamics_layers,
            history=config.history,
        )
    if model.image_shape != (height, width, channels) or model.action_dim != dataset.actions.shape[1]:
        raise ValueError(
            f"model expects images {model.image_shape} and {model.action_dim}-dim actions, data has "
            f"{(height, width, channels)} and {dataset.actions.shape[1]}"
        )
    return model


def _set_background(
    model: PixelWorldModel, train_set: PixelDataset, rng: np.random.Generator, device: torch.device | str
) -> Tensor:
    """The static scene of the training frames ``[H, W, C]``; a fresh model takes it as its background
    (a trained model keeps its own)."""
    background = _background_image(train_set.frames, rng).to(device)
    if not bool(model.background_image.any()):
        with torch.no_grad():
            model.background_image.copy_(background.permute(2, 0, 1))
            model.background_logits.copy_(torch.logit(model.background_image.clamp(0.02, 0.98)))
    return background


def _train_on_images(
    model: PixelWorldModel,
    train_set: PixelDataset,
    starts: np.ndarray,
    background: Tensor,
    config: PixelTrainingConfig,
    rng: np.random.Generator,
    device: torch.device | str,
    progress: bool,
) -> list[dict[str, float]]:
    """Phase 1: ``config.iterations`` AdamW steps (cosine decay, gradients clipped at 10) of
    :func:`_model_loss` on windows (``model.history`` context frames, ``config.rollout_steps`` actions) drawn
    from ``starts``; returns the loss history (every 25 steps)."""
    from tqdm.auto import tqdm

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.iterations, eta_min=config.lr * 0.05)
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.iterations), desc="train pixel model", disable=not progress)
    k = model.history
    for it in bar:
        chosen = rng.choice(starts, size=config.batch_size, replace=len(starts) < config.batch_size)
        index = chosen[:, None] + np.arange(k + config.rollout_steps)
        images = _batch_images(train_set.frames, index).to(device)
        actions = torch.from_numpy(train_set.actions[index[:, k - 1 : -1]]).to(device)
        loss, stats = _model_loss(
            model,
            images,
            actions,
            config.dynamics_weight,
            config.predicted_recon_weight,
            background,
            config.foreground_weight,
        )
        if not math.isfinite(stats["loss"]):
            raise FloatingPointError(f"pixel model loss became {stats['loss']} at iteration {it}; lower lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        scheduler.step()
        if it % 25 == 0 or it == config.iterations - 1:
            history.append({"iteration": float(it), **stats})
            bar.set_postfix(recon=f"{stats['recon']:.2e}", dyn=f"{stats['dynamics']:.2e}")
    return history


def _refit_dynamics(
    model: PixelWorldModel,
    train_set: PixelDataset,
    config: PixelTrainingConfig,
    rng: np.random.Generator,
    device: torch.device | str,
    progress: bool,
) -> list[dict[str, float]]:
    """Phase 2 (:func:`_fit_dynamics`, batch 256) when ``config.dynamics_iterations > 0``; its loss history."""
    if config.dynamics_iterations == 0:
        return []
    return _fit_dynamics(
        model,
        train_set,
        iterations=config.dynamics_iterations,
        batch_size=256,
        rollout_steps=config.dynamics_rollout_steps,
        lr=config.lr,
        rng=rng,
        seed=config.seed,
        device=device,
        progress=progress,
    )


def _data_sizes(dataset: PixelDataset, train_set: PixelDataset, val_set: PixelDataset) -> dict[str, Any]:
    """Frame and transition counts of the data and its splits, and the data's memory in MiB."""
    return {
        "frames": len(dataset),
        "transitions": dataset.num_transitions,
        "train_frames": len(train_set),
        "validation_frames": len(val_set),
        "dataset_megabytes": dataset.nbytes / 2**20,
    }


def _held_out_metrics(
    model: PixelWorldModel, train_set: PixelDataset, val_set: PixelDataset, seed: int
) -> dict[str, Any]:
    """:func:`evaluate_pixel_world_model` on the validation split (the training split if it has no
    transition), plus latent/true distance correlations when the data has true states."""
    eval_set = val_set if len(val_set.window_starts(model.history)) else train_set
    metrics: dict[str, Any] = evaluate_pixel_world_model(model, eval_set, seed=seed)
    if eval_set.states is not None:
        take = np.random.default_rng(seed).choice(len(eval_set), size=min(400, len(eval_set)), replace=False)
        corr = latent_distance_correlation(model, eval_set.frames[take], eval_set.states[take], seed=seed)
        metrics.update(
            {
                "latent_spearman": corr["spearman"],
                "latent_pearson": corr["pearson"],
                "latent_monotonic": corr["monotonic"],
            }
        )
    return metrics


def load_or_train_pixel_world_model(
    env_id: str,
    path: str | os.PathLike[str] | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    **train_kwargs: Any,
) -> PixelWorldModel:
    """One call from an env id to a planning-ready pixel model: load ``path`` if it exists, else
    collect data in ``gymnasium.make(env_id, **env_kwargs)``, train, and save to ``path``.

    e.g. ``load_or_train_pixel_world_model("mpc_grasp/PixelGridWorldWall-v0", "results/pixel_wall.pt")``.
    ``train_kwargs`` go to :func:`train_pixel_world_model`. A checkpoint made for another env id /
    kwargs or with other image/action shapes raises ``CheckpointError`` instead of being used.
    """
    import gymnasium

    env_kwargs = dict(env_kwargs or {})
    env = gymnasium.make(env_id, **env_kwargs)
    try:
        obs_space = (
            env.observation_space["observation"]
            if isinstance(env.observation_space, gymnasium.spaces.Dict)
            else env.observation_space
        )
        obs_space = cast(gymnasium.spaces.Box, obs_space)  # a pixel env's image space
        if path is not None and Path(path).exists():
            model = load_pixel_world_model(path)
            made_for = (model.metadata.get("env_id"), model.metadata.get("env_kwargs", {}))
            if made_for != (env_id, json.loads(json.dumps(env_kwargs))):
                raise CheckpointError(
                    f"{path} was trained on {made_for[0]!r} with kwargs {made_for[1]}, not {env_id!r} with {env_kwargs}"
                )
            if tuple(obs_space.shape) != model.image_shape or env.action_space.shape != (model.action_dim,):
                raise CheckpointError(
                    f"{path} holds a model for images {model.image_shape} and {model.action_dim}-dim actions, "
                    f"but {env_id} has {tuple(obs_space.shape)} and {env.action_space.shape}"
                )
            return model
        model = train_pixel_world_model(env, **train_kwargs)
    finally:
        env.close()
    model.training_info["source"] = env_id
    if path is not None:
        model.metadata = {"env_id": env_id, "env_kwargs": json.loads(json.dumps(env_kwargs))}
        save_pixel_world_model(model, path)
    return model
