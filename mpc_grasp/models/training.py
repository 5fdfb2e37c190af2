"""Fit an :class:`MLPWorldModel` to a :class:`TransitionDataset` (Adam, NLL or MSE, early stopping),
and a TD(0) value function ``V(s)``.

``train_world_model(dataset, config)`` takes a frozen :class:`TrainingConfig` (or its fields as keyword
options); the steps of one call are short functions below it: split, build the model, normalise the
targets, run the epochs (:class:`_Epochs`), record the history.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from mpc_grasp.data import TransitionDataset
from mpc_grasp.models.metrics import episode_windows
from mpc_grasp.models.mlp import ACTIVATIONS, MLPWorldModel, ValueFunction
from mpc_grasp.options import config_from_options
from mpc_grasp.validation import is_integer_at_least

__all__ = ["LOSSES", "TrainingConfig", "torch_threads", "train_value_function", "train_world_model"]

LOSSES = ("mse", "nll")

MIN_TRANSITIONS = 200
"""Below this many transitions ``train_world_model`` warns: too few for a train/validation split."""
MIN_VALIDATION_TRANSITIONS = 20
"""A validation split smaller than this is too noisy to select a model on (warned)."""
MAX_TERMINATION_POS_WEIGHT = 100.0
"""Cap on the termination head's positive-class weight (non-terminal / terminal rows of the training split),
so a handful of terminations in a long dataset cannot dominate the gradient."""


def _sizes(value: Any) -> tuple[int, ...] | None:
    """``value`` as a non-empty tuple of positive integers, or None if it is not one."""
    try:
        sizes = tuple(value)
    except TypeError:
        return None
    return sizes if sizes and all(is_integer_at_least(size, 1) for size in sizes) else None


@dataclass(frozen=True)
class TrainingConfig:
    """How :func:`train_world_model` builds and fits a model: architecture, optimiser, stopping, seed.

    The data (``val_dataset``, ``init_model``) and choices that do not change what is learned (device,
    progress bar, CPU threads) are arguments of ``train_world_model``, not fields. On a warm start
    (``init_model``) the architecture fields are ignored: the model keeps its own.
    """

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the dynamics MLP (any sequence; stored as a tuple)."""
    ensemble_size: int = 1
    activation: str = "silu"
    """One of ``mpc_grasp.models.mlp.ACTIVATIONS``."""
    fourier_features: int = 0
    """Fourier features of the state input (see :class:`MLPWorldModel`; 0 = off): they sharpen
    discontinuities such as walls, see docs/decisions.md#train_world_modelfourier_features."""
    fourier_scale: float = 1.0
    reward: bool | None = None
    """Also train the reward head on the dataset's rewards; None = whether ``init_model`` has one."""
    reward_hidden_sizes: tuple[int, ...] | None = None
    """Hidden layers of the reward head; None = ``hidden_sizes``."""
    termination: bool | None = None
    """Also train the termination head on the dataset's ``terminated`` flags (binary cross-entropy, the rare
    terminal rows weighted up to balance the classes, capped at :data:`MAX_TERMINATION_POS_WEIGHT`);
    None = whether ``init_model`` has one."""
    termination_hidden_sizes: tuple[int, ...] | None = None
    """Hidden layers of the termination head; None = ``hidden_sizes``."""
    rollout_steps: int = 1
    """Also train on the model's own open-loop rollouts of this many steps along the stored episodes (1 = one-step
    loss only): each batch adds the mean squared error of steps 2..K, each predicted from the model's previous
    prediction, so errors that compound over a plan's horizon are trained away (docs/decisions.md#rollout_steps)."""
    epochs: int = 100
    min_steps: int = 0
    """At least this many gradient steps: ``epochs`` is raised to reach them on the training split (a few hundred
    transitions are one batch per epoch, and 100 such steps leave a model under-fitted); 0 = ``epochs`` as given."""
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    """AdamW weight decay."""
    lr_decay: bool = True
    """Cosine learning-rate decay over ``epochs`` (to 5% of ``lr``)."""
    loss: str = "mse"
    """``"mse"``: the mean by squared error, the std by NLL with the mean detached; ``"nll"``: the joint
    Gaussian NLL, which on near-deterministic data with walls lets the std absorb the hard transitions."""
    val_fraction: float = 0.1
    """Fraction of whole episodes held out for model selection (0: none, no early stopping)."""
    patience: int | None = 25
    """Epochs without validation improvement before stopping; None = all ``epochs`` (best kept)."""
    max_time_s: float | None = None
    """Wall-time cap in seconds (None = none)."""
    seed: int = 0
    """Seeds the split, the initial weights, the Fourier features and the batch order."""

    def __post_init__(self) -> None:
        hidden = _sizes(self.hidden_sizes)
        if hidden is None:
            raise ValueError(f"hidden_sizes must be non-empty positive integers, got {self.hidden_sizes!r}")
        object.__setattr__(self, "hidden_sizes", hidden)
        for name in ("reward_hidden_sizes", "termination_hidden_sizes"):
            value = getattr(self, name)
            if value is not None and _sizes(value) is None:
                raise ValueError(f"{name} must be non-empty positive integers or None, got {value!r}")
            object.__setattr__(self, name, None if value is None else _sizes(value))
        for name in ("ensemble_size", "epochs", "batch_size", "rollout_steps"):
            if not is_integer_at_least(getattr(self, name), 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not is_integer_at_least(self.min_steps, 0):
            raise ValueError(f"min_steps must be an integer >= 0, got {self.min_steps!r}")
        if not is_integer_at_least(self.fourier_features, 0):
            raise ValueError(f"fourier_features must be an integer >= 0, got {self.fourier_features!r}")
        if not is_integer_at_least(self.seed, 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {sorted(ACTIVATIONS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid: {list(LOSSES)}")
        for name in ("reward", "termination"):
            if getattr(self, name) not in (None, True, False):
                raise ValueError(f"{name} must be True, False or None, got {getattr(self, name)!r}")
        if not self.fourier_scale > 0:
            raise ValueError(f"fourier_scale must be > 0, got {self.fourier_scale!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.patience is not None and not is_integer_at_least(self.patience, 1):
            raise ValueError(f"patience must be a positive integer or None, got {self.patience!r}")
        if self.max_time_s is not None and not self.max_time_s > 0:
            raise ValueError(f"max_time_s must be > 0 or None, got {self.max_time_s!r}")


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op threads set to ``num_threads`` (None: unchanged), then restore them."""
    if num_threads is None:
        yield
        return
    if int(num_threads) < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_world_model(
    dataset: TransitionDataset,
    config: TrainingConfig | None = None,
    *,
    val_dataset: TransitionDataset | None = None,
    init_model: MLPWorldModel | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    num_threads: int | None = None,
    **options: Any,
) -> MLPWorldModel:
    """Train a delta-predicting Gaussian MLP (ensemble) on ``dataset``; returns the best model.

    ``config`` (default ``TrainingConfig()``) with any :class:`TrainingConfig` field given as a keyword
    option replaced, e.g. ``train_world_model(data, epochs=50, hidden_sizes=(64, 64))``; an unknown
    option raises ``TypeError``. Normalisers are fitted on the training split. Validation uses
    ``val_dataset`` or a split of whole episodes (``val_fraction``). Model selection and early stopping
    use the validation MSE of the normalised delta mean, the quantity planners consume (plus the reward
    head's normalised validation MSE and the termination head's weighted cross-entropy when they are
    trained; without validation, the training loss). Ensemble members see independently shuffled batches.
    ``model.training_history`` records per-epoch losses, the best epoch, why training stopped, the wall
    time and the config (and ``termination_pos_weight`` with a termination head).

    ``init_model`` warm-starts from a trained model (the model-based RL loop retrains on the grown
    dataset): a copy of it is trained further, keeping its architecture and its normalisers (so its
    weights keep their meaning); ``reward`` / ``termination`` default to whether it has that head, and must
    match it.
    ``num_threads`` sets torch's intra-op threads for the call (1 is often fastest for small MLPs).
    """
    config = config_from_options(TrainingConfig, config, options)
    if not isinstance(dataset, TransitionDataset):
        raise TypeError(f"dataset must be a TransitionDataset, got {type(dataset).__name__}")
    config = _resolve_heads(config, init_model)
    device = torch.device(device)
    with torch_threads(num_threads):
        start_time = time.perf_counter()
        train_set, val_set = _train_val_split(dataset, val_dataset, config)
        batches = _steps_per_epoch(len(train_set), config.batch_size)
        config = replace(config, epochs=max(config.epochs, math.ceil(config.min_steps / batches)))
        train_tensors = _tensors(train_set, device)
        obs_key = dataset.metadata.get("obs_key") or "observation"
        model = _initial_model(train_set, train_tensors, config, init_model, obs_key, device)
        with torch.no_grad():
            train = _targets(model, train_set, train_tensors, config)
            val = None if val_set is None else _targets(model, val_set, _tensors(val_set, device), config)
        epochs = _Epochs(model, train, val, config, start_time, _rollouts(train_set, train_tensors, config))
        fit = _fit(epochs, config, progress)
        if fit.best_state is None:
            raise RuntimeError(
                f"training diverged (loss {fit.history['train_loss'][-1]}); try a lower lr or loss='mse'"
            )
        model.load_state_dict(fit.best_state)
        model.eval()
    model.training_history = _training_history(fit, model, config, train_set, val_set, init_model, start_time)
    if epochs.pos_weight is not None:
        model.training_history["termination_pos_weight"] = float(epochs.pos_weight)
    model.metadata = _model_metadata(dataset)
    return model


# --------------------------------------------------------------------------- the steps of train_world_model


def _resolve_heads(config: TrainingConfig, init_model: MLPWorldModel | None) -> TrainingConfig:
    """``config`` with ``reward`` and ``termination`` decided (None: whether ``init_model`` has that head),
    checked against ``init_model``."""
    if init_model is not None and not isinstance(init_model, MLPWorldModel):
        raise TypeError(f"init_model must be an MLPWorldModel, got {type(init_model).__name__}")
    decided: dict[str, bool] = {}
    for name, has_head in (
        ("reward", init_model is not None and init_model.has_reward_head),
        ("termination", init_model is not None and init_model.has_termination_head),
    ):
        wanted = getattr(config, name)
        decided[name] = bool(has_head) if wanted is None else bool(wanted)
        if init_model is not None and decided[name] != has_head:
            raise ValueError(
                f"{name}={decided[name]} but init_model {'has' if has_head else 'has no'} {name} head: "
                "a warm start keeps the architecture (train from scratch to add or drop the head)"
            )
    return replace(config, reward=decided["reward"], termination=decided["termination"])


def _train_val_split(
    dataset: TransitionDataset, val_dataset: TransitionDataset | None, config: TrainingConfig
) -> tuple[TransitionDataset, TransitionDataset | None]:
    """Training and validation sets; warns (at ``train_world_model``'s caller) when they are too small."""
    if val_dataset is not None:
        train_set, val_set = dataset, val_dataset
    elif config.val_fraction > 0:
        train_set, val_set = dataset.split(config.val_fraction, seed=config.seed)
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
            stacklevel=3,
        )
    return train_set, val_set


def _tensors(dataset: TransitionDataset, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Finite float tensors ``(observations [N, S], actions [N, A], next_observations [N, S])`` of ``dataset``."""
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


def _initial_model(
    train_set: TransitionDataset,
    tensors: tuple[Tensor, Tensor, Tensor],
    config: TrainingConfig,
    init_model: MLPWorldModel | None,
    obs_key: str,
    device: torch.device,
) -> MLPWorldModel:
    """A copy of ``init_model`` (its normalisers stay: the weights keep their meaning), or a fresh model
    seeded with ``config.seed`` (without touching the global RNG) with normalisers fitted on ``tensors``."""
    s, a, n = tensors
    if init_model is not None:
        if (init_model.state_dim, init_model.action_dim) != (s.shape[1], a.shape[1]):
            raise ValueError(
                f"init_model has state_dim {init_model.state_dim} / action_dim {init_model.action_dim}, "
                f"the dataset {s.shape[1]} / {a.shape[1]}"
            )
        return copy.deepcopy(init_model).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = MLPWorldModel(
            s.shape[1],
            a.shape[1],
            hidden_sizes=config.hidden_sizes,
            ensemble_size=config.ensemble_size,
            activation=config.activation,
            obs_key=obs_key,
            fourier_features=config.fourier_features,
            fourier_scale=config.fourier_scale,
            fourier_seed=config.seed,
            reward_hidden_sizes=(config.reward_hidden_sizes or config.hidden_sizes) if config.reward else None,
            termination_hidden_sizes=(
                (config.termination_hidden_sizes or config.hidden_sizes) if config.termination else None
            ),
        ).to(device)
    model.fit_normalizers(s, a, n)
    if config.reward:
        model.fit_reward_normalizer(torch.as_tensor(train_set.rewards))
    return model


@dataclass(frozen=True)
class _Targets:
    """One split in the model's normalised units: inputs ``x`` [N, S + A (+ 2F)], delta targets ``y`` [N, S],
    the heads' inputs ``head_x`` [N, 2S + A] (None without a head), the reward head's targets [N] (normalised)
    and the termination head's [N] (1.0 for a terminal row, else 0.0), each None without its head."""

    x: Tensor
    y: Tensor
    head_x: Tensor | None = None
    reward_y: Tensor | None = None
    termination_y: Tensor | None = None


def _targets(
    model: MLPWorldModel, dataset: TransitionDataset, tensors: tuple[Tensor, Tensor, Tensor], config: TrainingConfig
) -> _Targets:
    """``dataset`` (as ``tensors``) normalised by ``model``'s normalisers, with the heads ``config`` trains."""
    s, a, n = tensors
    x, y = model.normalize_inputs(s, a), (n - s - model.delta_mean) / model.delta_std
    if not (config.reward or config.termination):
        return _Targets(x, y)
    reward_y = termination_y = None
    if config.reward:
        rewards = torch.as_tensor(dataset.rewards, dtype=torch.float32, device=s.device)
        if not bool(torch.isfinite(rewards).all()):
            raise ValueError("dataset rewards contain NaN or inf values")
        reward_y = (rewards - model.reward_mean) / model.reward_std
    if config.termination:
        termination_y = torch.as_tensor(dataset.terminated, dtype=torch.float32, device=s.device)
    return _Targets(x, y, model.reward_inputs(s, a, n), reward_y, termination_y)


def _rollouts(
    dataset: TransitionDataset, tensors: tuple[Tensor, Tensor, Tensor], config: TrainingConfig
) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """``(states, actions, next_states, windows)`` for the rollout loss: ``windows`` [W, K] holds the rows of every
    run of K = ``rollout_steps`` consecutive transitions of one episode; None for K = 1 or without such a run."""
    if config.rollout_steps == 1:
        return None
    _, rows, valid = episode_windows(dataset, config.rollout_steps)
    rows = rows[valid.all(axis=1)]
    if len(rows) == 0:
        return None
    return (*tensors, torch.as_tensor(rows, device=tensors[0].device))


def _steps_per_epoch(rows: int, batch_size: int) -> int:
    """Gradient steps in one pass over ``rows`` training rows in batches of at most ``batch_size``."""
    return max(1, math.ceil(rows / max(1, min(batch_size, rows))))


def _termination_pos_weight(terminated: Tensor | None) -> Tensor | None:
    """The positive-class weight of the termination loss: non-terminal / terminal rows, in
    ``[1, MAX_TERMINATION_POS_WEIGHT]`` (1 without terminal rows); None without a termination head."""
    if terminated is None:
        return None
    positives = float(terminated.sum())
    ratio = (len(terminated) - positives) / positives if positives > 0 else 1.0
    return torch.tensor(min(max(ratio, 1.0), MAX_TERMINATION_POS_WEIGHT), device=terminated.device)


def _loss(mean: Tensor, log_std: Tensor, target: Tensor, kind: str) -> Tensor:
    """Mean loss over all elements. ``mse`` trains the mean by squared error and the std by NLL
    with the mean detached, so ``predict_distribution`` stays calibrated either way."""
    if kind == "nll":
        return (0.5 * ((target - mean) * torch.exp(-log_std)).square() + log_std).mean()
    nll_std = (0.5 * ((target - mean.detach()) * torch.exp(-log_std)).square() + log_std).mean()
    return (target - mean).square().mean() + nll_std


class _Epochs:
    """The optimiser, learning-rate schedule and batch order of one ``train_world_model`` call:
    :meth:`train_epoch` runs one shuffled pass over the training split, :meth:`validate` scores the model."""

    def __init__(
        self,
        model: MLPWorldModel,
        train: _Targets,
        val: _Targets | None,
        config: TrainingConfig,
        start_time: float,
        rollouts: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
    ) -> None:
        self.model, self.train, self.val, self.config, self.start_time = model, train, val, config, start_time
        self.rollouts = rollouts
        self.pos_weight = _termination_pos_weight(train.termination_y)
        """The termination loss's positive-class weight (from the training split; None without the head)."""
        self.head_names = [
            name
            for name, target in (("reward_mse", train.reward_y), ("termination_bce", train.termination_y))
            if target is not None
        ]
        """The heads' metrics, in history order: ``reward_mse``, ``termination_bce`` (each only with its head)."""
        self.batch = min(config.batch_size, len(train.x))
        self.steps_per_epoch = _steps_per_epoch(len(train.x), config.batch_size)
        self.generator = torch.Generator(device="cpu").manual_seed(config.seed)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        total_steps = config.epochs * self.steps_per_epoch
        self.scheduler = (
            torch.optim.lr_scheduler.LambdaLR(
                self.optimizer,
                lambda k: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(k, total_steps) / total_steps)),
            )
            if config.lr_decay
            else None
        )

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def head_losses(self, targets: _Targets, rows: Tensor | slice) -> dict[str, Tensor]:
        """The heads' losses on ``rows`` of ``targets``, keyed as :attr:`head_names`: the reward head's MSE
        (normalised units) and the termination head's binary cross-entropy (terminal rows weighted by
        :attr:`pos_weight`); empty without heads."""
        losses: dict[str, Tensor] = {}
        if targets.head_x is None:
            return losses
        inputs = targets.head_x[rows]
        if targets.reward_y is not None:
            losses["reward_mse"] = (self.model.normalized_reward(inputs) - targets.reward_y[rows]).square().mean()
        if targets.termination_y is not None:
            losses["termination_bce"] = F.binary_cross_entropy_with_logits(
                self.model.termination_logit(inputs), targets.termination_y[rows], pos_weight=self.pos_weight
            )
        return losses

    def train_epoch(self) -> tuple[float, dict[str, float], bool]:
        """Mean training loss and head losses (:meth:`head_losses`) over the epoch's steps, and whether
        ``max_time_s`` ran out. The heads train on the first member's batch (one head each, not an ensemble)."""
        model, train, device = self.model, self.train, self.train.x.device
        model.train()
        order = torch.argsort(torch.rand(model.ensemble_size, len(train.x), generator=self.generator), dim=1)
        order = order.to(device)
        total = torch.zeros((), device=device)
        head_totals = {name: torch.zeros((), device=device) for name in self.head_names}
        timed_out = False
        for k in range(self.steps_per_epoch):
            idx = order[:, k * self.batch : (k + 1) * self.batch]  # [E, B]
            mean, log_std = model.normalized_outputs(train.x[idx])
            objective = _loss(mean, log_std, train.y[idx], self.config.loss)
            if self.rollouts is not None:
                objective = objective + self.rollout_loss(idx.shape)
            for name, head_loss in self.head_losses(train, idx[0]).items():
                objective = objective + head_loss
                head_totals[name] += head_loss.detach()
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            total += objective.detach()
            max_time_s = self.config.max_time_s
            if max_time_s is not None and time.perf_counter() - self.start_time > max_time_s:
                timed_out = True
                break
        return float(total) / (k + 1), {name: float(v) / (k + 1) for name, v in head_totals.items()}, timed_out

    def rollout_loss(self, shape: torch.Size) -> Tensor:
        """Mean squared error (normalised deltas) of steps 2..K of open-loop rollouts from ``shape`` = [E, B] random
        windows, each step predicted from the previous predicted state (gradients through the whole rollout)."""
        model, (states, actions, next_states, windows) = self.model, self.rollouts  # type: ignore[misc]
        rows = windows[torch.randint(len(windows), tuple(shape), generator=self.generator).to(windows.device)]
        state, errors = states[rows[..., 0]], []
        for k in range(rows.shape[-1]):
            mean, _ = model.normalized_outputs(model.normalize_inputs(state, actions[rows[..., k]]))
            state = state + mean * model.delta_std + model.delta_mean
            errors.append(((state - next_states[rows[..., k]]) / model.delta_std).square().mean())
        return torch.stack(errors[1:]).mean()

    @torch.no_grad()
    def validate(self) -> tuple[float, float, dict[str, float]]:
        """Validation loss and delta-mean MSE (normalised) and the head losses (:meth:`head_losses`);
        NaN without validation."""
        self.model.eval()
        val = self.val
        if val is None:
            return math.nan, math.nan, {name: math.nan for name in self.head_names}
        vm, vl = self.model.normalized_outputs(val.x)
        val_loss = float(_loss(vm, vl, val.y.expand_as(vm), self.config.loss))
        val_mse = float((vm.mean(0) - val.y).square().mean())
        return val_loss, val_mse, {name: float(v) for name, v in self.head_losses(val, slice(None)).items()}


@dataclass
class _Fit:
    """What the epoch loop found: per-epoch history, the best epoch and its weights, why it stopped."""

    history: dict[str, Any]
    best_metric: float = math.inf
    best_epoch: int = -1
    best_state: dict[str, Any] | None = field(default=None, repr=False)
    stopped: str = "epochs"


def _fit(epochs: _Epochs, config: TrainingConfig, progress: bool) -> _Fit:
    """Run up to ``config.epochs`` epochs; keep the best weights by the selection metric; stop early on
    no improvement for ``patience`` epochs (with validation), a non-finite loss, or ``max_time_s``."""
    has_val = epochs.val is not None
    history: dict[str, Any] = {"epoch": [], "train_loss": [], "val_loss": [], "val_mse": [], "lr": []}
    for name in epochs.head_names:
        history.update({f"train_{name}": [], f"val_{name}": []})
    fit = _Fit(history)
    bar = tqdm(range(1, config.epochs + 1), desc="train world model", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        train_loss, train_heads, timed_out = epochs.train_epoch()
        val_loss, val_mse, val_heads = epochs.validate()
        metric = (val_mse + sum(val_heads.values())) if has_val else train_loss
        for name in epochs.head_names:
            history[f"train_{name}"].append(train_heads[name])
            history[f"val_{name}"].append(val_heads[name])
        for name, value in zip(
            ("epoch", "train_loss", "val_loss", "val_mse", "lr"), (epoch, train_loss, val_loss, val_mse, epochs.lr)
        ):
            history[name].append(value)
        if not math.isfinite(train_loss):
            fit.stopped = "non-finite loss"
            break
        if metric < fit.best_metric:
            fit.best_metric, fit.best_epoch = metric, epoch
            fit.best_state = copy.deepcopy(epochs.model.state_dict())
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", val_mse=f"{val_mse:.2e}", refresh=False)
        if timed_out:
            fit.stopped = "max_time_s"
            break
        if has_val and config.patience is not None and epoch - fit.best_epoch >= config.patience:
            fit.stopped = "early stopping"
            break
    bar.close()
    return fit


def _training_history(
    fit: _Fit,
    model: MLPWorldModel,
    config: TrainingConfig,
    train_set: TransitionDataset,
    val_set: TransitionDataset | None,
    init_model: MLPWorldModel | None,
    start_time: float,
) -> dict[str, Any]:
    """``model.training_history``: the per-epoch history, the selection, the sizes and the config used."""
    return {
        **fit.history,
        "best_epoch": fit.best_epoch,
        "best_val_mse": fit.best_metric if val_set is not None else None,
        "stopped": fit.stopped,
        "wall_time_s": time.perf_counter() - start_time,
        "n_train": len(train_set),
        "n_val": len(val_set) if val_set is not None else 0,
        "config": {
            **{name: list(v) if isinstance(v, tuple) else v for name, v in asdict(config).items()},
            "reward": bool(config.reward),
            "reward_hidden_sizes": None if model.reward_hidden_sizes is None else list(model.reward_hidden_sizes),
            "termination": bool(config.termination),
            "termination_hidden_sizes": (
                None if model.termination_hidden_sizes is None else list(model.termination_hidden_sizes)
            ),
            "warm_start": init_model is not None,
        },
    }


def _model_metadata(dataset: TransitionDataset) -> dict[str, Any]:
    """``model.metadata``: what the model was trained on (env, spaces, dataset size, seed, exploration)."""
    described = ("env_id", "env_kwargs", "obs_key", "observation_space", "action_space")
    return {
        **{key: dataset.metadata.get(key) for key in described},
        "dataset_n_steps": len(dataset),
        "dataset_seed": dataset.metadata.get("seed"),
        "dataset_exploration": dataset.metadata.get("exploration"),
    }


# --------------------------------------------------------------------------- value function


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
    _check_td_options(discount, epochs, batch_size, lr, target_update, len(dataset))
    states, _, next_states = _tensors(dataset, torch.device("cpu"))
    rewards = torch.as_tensor(dataset.rewards, dtype=torch.float32)
    continues = torch.as_tensor(~dataset.terminated, dtype=torch.float32)
    if model is not None and int(model.state_dim) != states.shape[1]:
        raise ValueError(f"model has state_dim {model.state_dim}, the dataset {states.shape[1]}")
    value = _initial_value(dataset, states, rewards, model, init_value, discount, hidden_sizes, seed)
    started = time.perf_counter()
    td = _TDFit(value, discount, lr, target_update, min(int(batch_size), len(states)), seed)
    history: dict[str, Any] = {"epoch": [], "td_loss": []}
    for epoch in tqdm(range(1, int(epochs) + 1), desc="train value", unit="epoch", disable=not progress, leave=False):
        history["epoch"].append(epoch)
        history["td_loss"].append(td.epoch(states, rewards, continues, next_states))
    value.eval()
    value.training_history = {
        **history,
        "wall_time_s": time.perf_counter() - started,
        "n_train": len(states),
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
    value.metadata = {"env_id": dataset.metadata.get("env_id"), "dataset_n_steps": len(states)}
    return value


def _check_td_options(
    discount: float, epochs: int, batch_size: int, lr: float, target_update: float, rows: int
) -> None:
    """Raise ``ValueError`` for options :func:`train_value_function` cannot train with."""
    if not 0.0 < discount < 1.0:
        raise ValueError(f"discount must be in (0, 1), got {discount}")
    if int(epochs) < 1 or int(batch_size) < 1 or lr <= 0 or not 0.0 < target_update <= 1.0:
        raise ValueError(
            f"need epochs, batch_size >= 1, lr > 0, target_update in (0, 1]; got {epochs}, {batch_size}, {lr}, {target_update}"
        )
    if rows < 2:
        raise ValueError(f"need at least 2 transitions, got {rows}")


def _initial_value(
    dataset: TransitionDataset,
    states: Tensor,
    rewards: Tensor,
    model: MLPWorldModel | None,
    init_value: ValueFunction | None,
    discount: float,
    hidden_sizes: Sequence[int],
    seed: int,
) -> ValueFunction:
    """A copy of ``init_value`` (checked against ``discount`` and the states), or a fresh ``ValueFunction``
    seeded with ``seed`` (global RNG untouched): states normalised as ``model`` does (else by the data),
    outputs scaled by the reward's mean and std over ``1 − discount``."""
    if init_value is not None:
        if abs(init_value.discount - discount) > 1e-12 or init_value.state_dim != states.shape[1]:
            raise ValueError(
                f"init_value has discount {init_value.discount} / state_dim {init_value.state_dim}, asked {discount} / {states.shape[1]}"
            )
        return copy.deepcopy(init_value)
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
    return value


class _TDFit:
    """Adam on ``value`` against a Polyak-averaged target copy (rate ``target_update`` per step)."""

    def __init__(
        self, value: ValueFunction, discount: float, lr: float, target_update: float, batch: int, seed: int
    ) -> None:
        self.value, self.discount, self.target_update, self.batch = value, discount, target_update, batch
        self.target = copy.deepcopy(value).requires_grad_(False)
        self.optimizer = torch.optim.Adam(value.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self, states: Tensor, rewards: Tensor, continues: Tensor, next_states: Tensor) -> float:
        """One shuffled pass over the transitions; returns the mean TD loss (in units of the value scale)."""
        rows = len(states)
        order = torch.randperm(rows, generator=self.generator)
        total, steps = 0.0, 0
        for first in range(0, rows, self.batch):
            index = order[first : first + self.batch]
            with torch.no_grad():
                bootstrap = self.target(next_states[index])
                td_target = rewards[index] + self.discount * continues[index] * bootstrap
            error = (self.value(states[index]) - td_target) / self.value.value_scale
            loss = error.square().mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                for target_param, param in zip(self.target.parameters(), self.value.parameters()):
                    target_param.lerp_(param, self.target_update)
            total, steps = total + float(loss.detach()), steps + 1
        return total / steps
