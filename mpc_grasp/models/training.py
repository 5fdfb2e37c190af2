"""Fit an :class:`MLPWorldModel` to a :class:`TransitionDataset` (Adam, NLL or MSE, early stopping)."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mpc_grasp.data import TransitionDataset
from mpc_grasp.models.mlp import MLPWorldModel

__all__ = ["LOSSES", "train_world_model"]

LOSSES = ("mse", "nll")


def _tensors(dataset: TransitionDataset, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    if len(dataset.state_shape) != 1:
        raise ValueError(
            f"MLPWorldModel needs vector observations [N, S]; the dataset holds shape {dataset.state_shape} "
            "(train an encoder-based model for pixel observations)"
        )
    s = torch.as_tensor(dataset.observations, dtype=torch.float32, device=device)
    a = torch.as_tensor(dataset.actions, dtype=torch.float32, device=device)
    n = torch.as_tensor(dataset.next_observations, dtype=torch.float32, device=device)
    for name, t in (("observations", s), ("actions", a), ("next_observations", n)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"dataset {name} contain NaN or inf values")
    return s, a, n


def _loss(mean: Tensor, log_std: Tensor, target: Tensor, kind: str) -> Tensor:
    """Mean loss over all elements. ``mse`` trains the mean by squared error and the std by NLL
    with the mean detached, so ``predict_distribution`` stays calibrated either way."""
    if kind == "nll":
        return (0.5 * ((target - mean) * torch.exp(-log_std)).square() + log_std).mean()
    nll_std = (0.5 * ((target - mean.detach()) * torch.exp(-log_std)).square() + log_std).mean()
    return (target - mean).square().mean() + nll_std


MIN_TRANSITIONS = 200
"""Below this many transitions ``train_world_model`` warns: too few for a train/validation split."""
MIN_VALIDATION_TRANSITIONS = 20
"""A validation split smaller than this is too noisy to select a model on (warned)."""


def train_world_model(
    dataset: TransitionDataset,
    *,
    hidden_sizes: Sequence[int] = (256, 256),
    ensemble_size: int = 1,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    val_fraction: float = 0.1,
    val_dataset: TransitionDataset | None = None,
    patience: int | None = 25,
    max_time_s: float | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    loss: str = "mse",
    activation: str = "silu",
    lr_decay: bool = True,
    num_threads: int | None = None,
    fourier_features: int = 0,
    fourier_scale: float = 1.0,
) -> MLPWorldModel:
    """Train a delta-predicting Gaussian MLP (ensemble) on ``dataset``; returns the best model.

    Normalisers are fitted on the training split. Validation uses ``val_dataset`` or a split of
    whole episodes (``val_fraction``; 0 disables validation and early stopping). Model selection
    and early stopping (after ``patience`` epochs without improvement; ``None`` trains all
    ``epochs`` and keeps the best) use the validation MSE of the normalised delta mean,
    the quantity planners consume. Adam(W) with cosine learning-rate decay over ``epochs`` when
    ``lr_decay``; ``max_time_s`` caps wall time. Ensemble members see independently shuffled
    batches. ``model.training_history`` records per-epoch losses, best epoch and wall time.

    ``loss="mse"`` (default) fits the mean by squared error and the std by NLL with the mean
    detached; ``"nll"`` is the joint Gaussian NLL, which on near-deterministic data with
    discontinuities (walls) lets the std absorb the hard transitions and fits the mean far worse.
    ``fourier_features``/``fourier_scale``: Fourier features of the state input (see
    :class:`MLPWorldModel`); 64 at scale 1 sharpens the grid world's walls (README, measured).
    ``num_threads`` temporarily sets torch's intra-op threads (1 is often fastest for small MLPs,
    and much faster on an oversubscribed CPU).
    """
    if num_threads is not None:
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        previous = torch.get_num_threads()
        torch.set_num_threads(int(num_threads))
        try:
            return train_world_model(
                dataset, hidden_sizes=hidden_sizes, ensemble_size=ensemble_size, epochs=epochs,
                batch_size=batch_size, lr=lr, weight_decay=weight_decay, val_fraction=val_fraction,
                val_dataset=val_dataset, patience=patience, max_time_s=max_time_s, seed=seed,
                device=device, progress=progress, loss=loss, activation=activation, lr_decay=lr_decay,
                fourier_features=fourier_features, fourier_scale=fourier_scale,
            )
        finally:
            torch.set_num_threads(previous)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid: {list(LOSSES)}")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    if lr <= 0 or weight_decay < 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {lr}, {weight_decay}")
    if max_time_s is not None and max_time_s <= 0:
        raise ValueError(f"max_time_s must be > 0, got {max_time_s}")
    if not isinstance(dataset, TransitionDataset):
        raise TypeError(f"dataset must be a TransitionDataset, got {type(dataset).__name__}")
    device = torch.device(device)
    start_time = time.perf_counter()

    if val_dataset is not None:
        train_set, val_set = dataset, val_dataset
    elif val_fraction and val_fraction > 0:
        train_set, val_set = dataset.split(val_fraction, seed=seed)
    else:
        train_set, val_set = dataset, None
    if len(train_set) < 2:
        raise ValueError(f"need at least 2 training transitions, got {len(train_set)}")
    if len(dataset) < MIN_TRANSITIONS or (val_set is not None and val_dataset is None and len(val_set) < MIN_VALIDATION_TRANSITIONS):
        warnings.warn(
            f"training on {len(train_set)} transitions with {0 if val_set is None else len(val_set)} for validation: too few "
            f"to split into train and validation reliably (the model is selected on a noisy validation loss); "
            f"collect at least {MIN_TRANSITIONS} transitions (e.g. `mpc-grasp collect ENV --steps 20000`)",
            UserWarning,
            stacklevel=2,
        )
    s, a, n = _tensors(train_set, device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLPWorldModel(
            s.shape[1], a.shape[1], hidden_sizes=hidden_sizes, ensemble_size=ensemble_size,
            activation=activation, obs_key=dataset.metadata.get("obs_key") or "observation",
            fourier_features=fourier_features, fourier_scale=fourier_scale, fourier_seed=seed,
        ).to(device)
    model.fit_normalizers(s, a, n)
    generator = torch.Generator(device="cpu").manual_seed(seed)

    with torch.no_grad():
        x_train = model.normalize_inputs(s, a)
        y_train = (n - s - model.delta_mean) / model.delta_std
        if val_set is not None:
            vs, va, vn = _tensors(val_set, device)
            x_val = model.normalize_inputs(vs, va)
            y_val = (vn - vs - model.delta_mean) / model.delta_std

    n_train, ens = len(x_train), model.ensemble_size
    batch = min(int(batch_size), n_train)
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total_steps = int(epochs) * steps_per_epoch
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(k, total_steps) / total_steps)))
        if lr_decay
        else None
    )

    history: dict[str, Any] = {"epoch": [], "train_loss": [], "val_loss": [], "val_mse": [], "lr": []}
    best_metric, best_epoch, best_state = math.inf, -1, None
    stopped = "epochs"
    bar = tqdm(range(1, int(epochs) + 1), desc="train world model", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.argsort(torch.rand(ens, n_train, generator=generator), dim=1).to(device)
        total, timed_out = torch.zeros((), device=device), False
        for k in range(steps_per_epoch):
            idx = order[:, k * batch : (k + 1) * batch]  # [E, B]
            mean, log_std = model.normalized_outputs(x_train[idx])
            objective = _loss(mean, log_std, y_train[idx], loss)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += objective.detach()
            if max_time_s is not None and time.perf_counter() - start_time > max_time_s:
                timed_out = True
                break
        train_loss = float(total) / (k + 1)
        model.eval()
        val_loss = val_mse = float("nan")
        if val_set is not None:
            with torch.no_grad():
                vm, vl = model.normalized_outputs(x_val)
                val_loss = float(_loss(vm, vl, y_val.expand_as(vm), loss))
                val_mse = float((vm.mean(0) - y_val).square().mean())
        metric = val_mse if val_set is not None else train_loss
        history["epoch"].append(epoch)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        history["val_mse"].append(val_mse)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        if not math.isfinite(train_loss):
            stopped = "non-finite loss"
            break
        if metric < best_metric:
            best_metric, best_epoch = metric, epoch
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", val_mse=f"{val_mse:.2e}", refresh=False)
        if timed_out:
            stopped = "max_time_s"
            break
        if val_set is not None and patience is not None and epoch - best_epoch >= patience:
            stopped = "early stopping"
            break
    bar.close()
    if best_state is None:
        raise RuntimeError(f"training diverged (loss {history['train_loss'][-1]}); try a lower lr or loss='mse'")
    model.load_state_dict(best_state)
    model.eval()
    model.training_history = {
        **history,
        "best_epoch": best_epoch,
        "best_val_mse": best_metric if val_set is not None else None,
        "stopped": stopped,
        "wall_time_s": time.perf_counter() - start_time,
        "n_train": len(train_set),
        "n_val": len(val_set) if val_set is not None else 0,
        "config": {
            "hidden_sizes": list(hidden_sizes), "ensemble_size": ensemble_size, "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "val_fraction": val_fraction,
            "patience": patience, "max_time_s": max_time_s, "seed": seed, "loss": loss,
            "activation": activation, "lr_decay": lr_decay,
        },
    }
    model.metadata = {
        "env_id": dataset.metadata.get("env_id"),
        "env_kwargs": dataset.metadata.get("env_kwargs"),
        "obs_key": dataset.metadata.get("obs_key"),
        "observation_space": dataset.metadata.get("observation_space"),
        "action_space": dataset.metadata.get("action_space"),
        "dataset_n_steps": len(dataset),
        "dataset_seed": dataset.metadata.get("seed"),
        "dataset_exploration": dataset.metadata.get("exploration"),
    }
    return model

