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
from mpc_grasp.models.mlp import MLPWorldModel, ValueFunction

__all__ = ["LOSSES", "train_value_function", "train_world_model"]

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


def _reward_tensors(
    model: MLPWorldModel, dataset: TransitionDataset, s: Tensor, a: Tensor, n: Tensor, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The reward head's normalised inputs [N, 2S + A] and targets [N] for ``dataset``'s rewards."""
    rewards = torch.as_tensor(dataset.rewards, dtype=torch.float32, device=device)
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("dataset rewards contain NaN or inf values")
    return model.reward_inputs(s, a, n), (rewards - model.reward_mean) / model.reward_std


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
    reward: bool | None = None,
    reward_hidden_sizes: Sequence[int] | None = None,
    init_model: MLPWorldModel | None = None,
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
    :class:`MLPWorldModel`; off by default); they sharpen discontinuities such as walls, see
    docs/decisions.md#train_world_modelfourier_features.
    ``num_threads`` temporarily sets torch's intra-op threads (1 is often fastest for small MLPs,
    and much faster on an oversubscribed CPU).

    ``reward=True`` also trains the model's reward head (``model.reward(s, a, s')``, see
    :class:`MLPWorldModel`; ``reward_hidden_sizes`` defaults to ``hidden_sizes``) on the dataset's
    rewards, by squared error of the normalised reward on the same batches; model selection then uses
    the sum of the dynamics' and the reward's validation MSE (both normalised).

    ``init_model`` warm-starts from a trained model (the model-based RL loop retrains on the grown
    dataset): a copy of it is trained further, keeping its architecture (``hidden_sizes``,
    ``ensemble_size``, ``activation``, Fourier features are then ignored) and its normalisers (so its
    weights keep their meaning); ``reward`` defaults to whether it has a reward head, and must match it.
    """
    if num_threads is not None:
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        previous = torch.get_num_threads()
        torch.set_num_threads(int(num_threads))
        try:
            return train_world_model(
                dataset,
                hidden_sizes=hidden_sizes,
                ensemble_size=ensemble_size,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                weight_decay=weight_decay,
                val_fraction=val_fraction,
                val_dataset=val_dataset,
                patience=patience,
                max_time_s=max_time_s,
                seed=seed,
                device=device,
                progress=progress,
                loss=loss,
                activation=activation,
                lr_decay=lr_decay,
                fourier_features=fourier_features,
                fourier_scale=fourier_scale,
                reward=reward,
                reward_hidden_sizes=reward_hidden_sizes,
                init_model=init_model,
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
    if init_model is not None and not isinstance(init_model, MLPWorldModel):
        raise TypeError(f"init_model must be an MLPWorldModel, got {type(init_model).__name__}")
    if reward is None:
        reward = bool(init_model is not None and init_model.has_reward_head)
    if init_model is not None and bool(reward) != init_model.has_reward_head:
        raise ValueError(
            f"reward={reward} but init_model {'has' if init_model.has_reward_head else 'has no'} reward head: "
            "a warm start keeps the architecture (train from scratch to add or drop the head)"
        )
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
    if len(dataset) < MIN_TRANSITIONS or (
        val_set is not None and val_dataset is None and len(val_set) < MIN_VALIDATION_TRANSITIONS
    ):
        warnings.warn(
            f"training on {len(train_set)} transitions with {0 if val_set is None else len(val_set)} for validation: too few "
            f"to split into train and validation reliably (the model is selected on a noisy validation loss); "
            f"collect at least {MIN_TRANSITIONS} transitions (e.g. `mpc-grasp collect ENV --steps 20000`)",
            UserWarning,
            stacklevel=2,
        )
    s, a, n = _tensors(train_set, device)

    if init_model is not None:
        if (init_model.state_dim, init_model.action_dim) != (s.shape[1], a.shape[1]):
            raise ValueError(
                f"init_model has state_dim {init_model.state_dim} / action_dim {init_model.action_dim}, "
                f"the dataset {s.shape[1]} / {a.shape[1]}"
            )
        model = copy.deepcopy(init_model).to(device)  # its normalisers stay: the weights keep their meaning
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MLPWorldModel(
                s.shape[1],
                a.shape[1],
                hidden_sizes=hidden_sizes,
                ensemble_size=ensemble_size,
                activation=activation,
                obs_key=dataset.metadata.get("obs_key") or "observation",
                fourier_features=fourier_features,
                fourier_scale=fourier_scale,
                fourier_seed=seed,
                reward_hidden_sizes=(reward_hidden_sizes or hidden_sizes) if reward else None,
            ).to(device)
        model.fit_normalizers(s, a, n)
        if reward:
            model.fit_reward_normalizer(torch.as_tensor(train_set.rewards))
    generator = torch.Generator(device="cpu").manual_seed(seed)

    with torch.no_grad():
        x_train = model.normalize_inputs(s, a)
        y_train = (n - s - model.delta_mean) / model.delta_std
        if reward:
            xr_train, yr_train = _reward_tensors(model, train_set, s, a, n, device)
        if val_set is not None:
            vs, va, vn = _tensors(val_set, device)
            x_val = model.normalize_inputs(vs, va)
            y_val = (vn - vs - model.delta_mean) / model.delta_std
            if reward:
                xr_val, yr_val = _reward_tensors(model, val_set, vs, va, vn, device)

    n_train, ens = len(x_train), model.ensemble_size
    batch = min(int(batch_size), n_train)
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total_steps = int(epochs) * steps_per_epoch
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(k, total_steps) / total_steps))
        )
        if lr_decay
        else None
    )

    history: dict[str, Any] = {"epoch": [], "train_loss": [], "val_loss": [], "val_mse": [], "lr": []}
    if reward:
        history.update(train_reward_mse=[], val_reward_mse=[])
    best_metric, best_epoch, best_state = math.inf, -1, None
    stopped = "epochs"
    bar = tqdm(range(1, int(epochs) + 1), desc="train world model", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.argsort(torch.rand(ens, n_train, generator=generator), dim=1).to(device)
        total, timed_out = torch.zeros((), device=device), False
        reward_total = torch.zeros((), device=device)
        for k in range(steps_per_epoch):
            idx = order[:, k * batch : (k + 1) * batch]  # [E, B]
            mean, log_std = model.normalized_outputs(x_train[idx])
            objective = _loss(mean, log_std, y_train[idx], loss)
            if reward:  # the reward head on the first member's batch (one head, not an ensemble)
                reward_error = (model.normalized_reward(xr_train[idx[0]]) - yr_train[idx[0]]).square().mean()
                objective = objective + reward_error
                reward_total += reward_error.detach()
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
        val_reward_mse = float("nan")
        if val_set is not None:
            with torch.no_grad():
                vm, vl = model.normalized_outputs(x_val)
                val_loss = float(_loss(vm, vl, y_val.expand_as(vm), loss))
                val_mse = float((vm.mean(0) - y_val).square().mean())
                if reward:
                    val_reward_mse = float((model.normalized_reward(xr_val) - yr_val).square().mean())
        metric = (val_mse + (val_reward_mse if reward else 0.0)) if val_set is not None else train_loss
        if reward:
            history["train_reward_mse"].append(float(reward_total) / (k + 1))
            history["val_reward_mse"].append(val_reward_mse)
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
            "hidden_sizes": list(hidden_sizes),
            "ensemble_size": ensemble_size,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "val_fraction": val_fraction,
            "patience": patience,
            "max_time_s": max_time_s,
            "seed": seed,
            "loss": loss,
            "activation": activation,
            "lr_decay": lr_decay,
            "reward": bool(reward),
            "reward_hidden_sizes": None if model.reward_hidden_sizes is None else list(model.reward_hidden_sizes),
            "warm_start": init_model is not None,
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


def train_value_function(
    dataset: TransitionDataset,
    model: MLPWorldModel | None = None,
    *,
    discount: float = 0.99,
    hidden_sizes: Sequence[int] = (128, 128),
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    target_update: float = 0.01,
    seed: int = 0,
    init_value: ValueFunction | None = None,
    progress: bool = False,
) -> ValueFunction:
    """Fit a state value ``V(s)`` to ``dataset`` by TD(0) fitted evaluation; usable as a planner's
    ``terminal_value`` (plan with the same ``discount``).

    Minimises ``(V(s) − [r + discount · (1 − terminated) · V_target(s')])²`` over the dataset's
    transitions (truncated episodes bootstrap; terminated ones do not), with ``V_target`` a Polyak
    copy (rate ``target_update`` per step), as TD-MPC2 trains its Q. It evaluates the policy that
    collected the data (random exploration and the agent's own episodes), not the planner's. ``model``
    (optional) supplies the state normaliser, so V sees states scaled as the dynamics model does; the
    output is scaled by ``reward std / (1 − discount)``. ``init_value`` warm-starts (keeps its normalisers).
    """
    if not 0.0 < discount < 1.0:
        raise ValueError(f"discount must be in (0, 1), got {discount}")
    if int(epochs) < 1 or int(batch_size) < 1 or lr <= 0 or not 0.0 < target_update <= 1.0:
        raise ValueError(
            f"need epochs, batch_size >= 1, lr > 0, target_update in (0, 1]; got {epochs}, {batch_size}, {lr}, {target_update}"
        )
    if len(dataset) < 2:
        raise ValueError(f"need at least 2 transitions, got {len(dataset)}")
    states, _, next_states = _tensors(dataset, torch.device("cpu"))
    rewards = torch.as_tensor(dataset.rewards, dtype=torch.float32)
    continues = torch.as_tensor(~dataset.terminated, dtype=torch.float32)
    if model is not None and int(model.state_dim) != states.shape[1]:
        raise ValueError(f"model has state_dim {model.state_dim}, the dataset {states.shape[1]}")
    if init_value is not None:
        if abs(init_value.discount - discount) > 1e-12 or init_value.state_dim != states.shape[1]:
            raise ValueError(
                f"init_value has discount {init_value.discount} / state_dim {init_value.state_dim}, asked {discount} / {states.shape[1]}"
            )
        value = copy.deepcopy(init_value)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            value = ValueFunction(
                states.shape[1],
                hidden_sizes=hidden_sizes,
                discount=discount,
                obs_key=dataset.metadata.get("obs_key") or "observation",
            )
        state_mean, state_std = (
            (model.state_mean, model.state_std) if model is not None else (states.mean(0), states.std(0))
        )
        value.set_normalizers(
            state_mean.detach().cpu(),
            state_std.detach().cpu(),
            float(rewards.mean()) / (1 - discount),
            float(rewards.std()) / (1 - discount),
        )
    target = copy.deepcopy(value).requires_grad_(False)
    optimizer = torch.optim.Adam(value.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    rows, batch = len(states), min(int(batch_size), len(states))
    history: dict[str, Any] = {"epoch": [], "td_loss": []}
    started = time.perf_counter()
    for epoch in tqdm(range(1, int(epochs) + 1), desc="train value", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(rows, generator=generator)
        total, steps = 0.0, 0
        for first in range(0, rows, batch):
            index = order[first : first + batch]
            with torch.no_grad():
                bootstrap = target(next_states[index])
                td_target = rewards[index] + discount * continues[index] * bootstrap
            error = (value(states[index]) - td_target) / value.value_scale
            loss = error.square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for target_param, param in zip(target.parameters(), value.parameters()):
                    target_param.lerp_(param, target_update)
            total, steps = total + float(loss.detach()), steps + 1
        history["epoch"].append(epoch)
        history["td_loss"].append(total / steps)
    value.eval()
    value.training_history = {
        **history,
        "wall_time_s": time.perf_counter() - started,
        "n_train": rows,
        "config": {
            "discount": discount,
            "hidden_sizes": list(value.hidden_sizes),
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "target_update": target_update,
            "seed": seed,
            "warm_start": init_value is not None,
        },
    }
    value.metadata = {"env_id": dataset.metadata.get("env_id"), "dataset_n_steps": rows}
    return value
