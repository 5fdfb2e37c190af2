"""MLP dynamics model: predicts the normalised state delta with a Gaussian head, optional ensemble.

Normalisers (state, action, delta mean/std) are buffers, so a checkpoint restores them with the
weights. Ensemble members are evaluated together with batched matmuls, one op per layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpc_grasp.validation import as_float_tensor

INPUT_CLIP = 10.0
"""Normalised inputs (states, and the reward heads' state deltas) are clipped to this many training stds. An MLP
extrapolates linearly, so a rollout that feeds its own far-out predictions back grows geometrically to inf; with
clipped inputs each step's delta stays bounded (docs/decisions.md#input_clip)."""

__all__ = ["ACTIVATIONS", "MLPWorldModel", "ValueFunction"]


def _input_std(std: Tensor) -> Tensor:
    """An input normaliser's std: 1 for a dim constant in the data (std ~0), as scikit-learn's ``StandardScaler``
    does, so a small drift of a predicted state in it stays small; other stds floored at 1e-4."""
    return torch.where(std > 1e-6, std.clamp_min(1e-4), torch.ones_like(std))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "silu": F.silu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "gelu": F.gelu,
}


def _check_architecture(
    state_dim: int,
    action_dim: int,
    hidden_sizes: Sequence[int],
    ensemble_size: int,
    activation: str,
    log_std_bounds: tuple[float, float],
    fourier_features: int,
) -> None:
    """Raise ``ValueError`` for an :class:`MLPWorldModel` architecture that cannot be built."""
    if int(state_dim) < 1 or int(action_dim) < 1:
        raise ValueError(f"state_dim and action_dim must be >= 1, got {state_dim}, {action_dim}")
    if any(int(h) < 1 for h in hidden_sizes):
        raise ValueError(f"hidden_sizes must be positive integers, got {list(hidden_sizes)}")
    if int(ensemble_size) < 1:
        raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {sorted(ACTIVATIONS)}")
    if not log_std_bounds[0] < log_std_bounds[1]:
        raise ValueError(f"need min_log_std < max_log_std, got {log_std_bounds[0]}, {log_std_bounds[1]}")
    if int(fourier_features) < 0:
        raise ValueError(f"need fourier_features >= 0, got {fourier_features}")


class MLPWorldModel(nn.Module):
    """``next_state = state + delta``, ``delta ~ N(mu(s, a), sigma(s, a)^2)``, from an MLP on normalised inputs.

    ``forward(state, action)`` returns the mean next state (for an ensemble, the mean over members)
    for any leading batch shape; ``predict_distribution`` also returns the predictive std (for an
    ensemble, of the mixture). The log-std is soft-bounded to ``[min_log_std, max_log_std]``
    (in normalised delta units) so the NLL stays well-behaved on near-deterministic data.

    ``fourier_features=F > 0`` appends ``sin/cos(2π · s_norm · W)`` of the normalised state to the
    input (``W`` [S, F] fixed Gaussian, std ``fourier_scale``; Tancik et al., 2020): a plain MLP on
    raw coordinates blurs sharp contacts such as walls, which planners then slip through.

    ``reward_hidden_sizes`` (default None: no head) adds a reward head, a separate MLP on the
    normalised ``(state, action, next_state − state)`` predicting the env's reward, exposed as
    :meth:`reward` in the env's units (a planner's ``reward_fn=model.reward``). It is a separate network,
    not extra outputs of the dynamics one, so the dynamics (and checkpoints without a head) are unchanged.

    ``termination_hidden_sizes`` (default None: no head) adds a termination head the same way: a separate
    MLP on the same normalised ``(state, action, next_state − state)`` predicting the logit of the probability
    that the episode ends after the step, exposed as :meth:`termination_probability` (a planner's
    ``termination_fn=model.termination_probability``).
    """

    # buffers (register_buffer): declared so type checkers see Tensors, not ``Tensor | Module``
    state_mean: Tensor
    state_std: Tensor
    action_mean: Tensor
    action_std: Tensor
    delta_mean: Tensor
    delta_std: Tensor
    fourier_frequencies: Tensor  # only when fourier_features > 0
    reward_mean: Tensor  # only with a reward head
    reward_std: Tensor

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        ensemble_size: int = 1,
        activation: str = "silu",
        min_log_std: float = -6.0,
        max_log_std: float = 1.0,
        obs_key: str | None = "observation",
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        fourier_seed: int = 0,
        reward_hidden_sizes: Sequence[int] | None = None,
        termination_hidden_sizes: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        _check_architecture(
            state_dim, action_dim, hidden_sizes, ensemble_size, activation, (min_log_std, max_log_std), fourier_features
        )
        if not float(fourier_scale) > 0:
            raise ValueError(
                f"need fourier_features >= 0 and fourier_scale > 0, got {fourier_features}, {fourier_scale}"
            )
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.ensemble_size = int(ensemble_size)
        self.activation = activation
        self.min_log_std, self.max_log_std = float(min_log_std), float(max_log_std)
        self.obs_key = obs_key
        self._act = ACTIVATIONS[activation]
        self.fourier_features, self.fourier_scale, self.fourier_seed = (
            int(fourier_features),
            float(fourier_scale),
            int(fourier_seed),
        )
        if self.fourier_features:  # no buffer otherwise: checkpoints without features load unchanged
            generator = torch.Generator().manual_seed(self.fourier_seed)
            frequencies = torch.randn(self.state_dim, self.fourier_features, generator=generator) * self.fourier_scale
            self.register_buffer("fourier_frequencies", frequencies)
        self._init_layers()
        for name, dim in (("state", self.state_dim), ("action", self.action_dim), ("delta", self.state_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        self.reward_hidden_sizes = None if reward_hidden_sizes is None else tuple(int(h) for h in reward_hidden_sizes)
        self.reward_net: nn.Sequential | None = None
        if self.reward_hidden_sizes is not None:  # no module or buffers otherwise: old checkpoints load unchanged
            self._init_reward_head(self.reward_hidden_sizes)
        self.termination_hidden_sizes = (
            None if termination_hidden_sizes is None else tuple(int(h) for h in termination_hidden_sizes)
        )
        self.termination_net: nn.Sequential | None = None
        if self.termination_hidden_sizes is not None:  # no module otherwise: old checkpoints load unchanged
            self.termination_net = _head_mlp(self, self.termination_hidden_sizes, "termination_hidden_sizes")
        self.training_history: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}

    def _init_layers(self) -> None:
        """The ensemble's layer weights ``[E, fan_in, fan_out]`` and biases, torch.nn.Linear's default init per member."""
        sizes = [self.state_dim + self.action_dim + 2 * self.fourier_features, *self.hidden_sizes, 2 * self.state_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(self.ensemble_size, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(self.ensemble_size, 1, fan_out).uniform_(-bound, bound)))

    def _init_reward_head(self, hidden_sizes: tuple[int, ...]) -> None:
        """The reward MLP on ``(state, action, delta)`` and its output normaliser buffers."""
        self.reward_net = _head_mlp(self, hidden_sizes, "reward_hidden_sizes")
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_std", torch.ones(()))

    # ------------------------------------------------------------------ configuration
    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``MLPWorldModel(**model.config)`` rebuilds the architecture."""
        return {
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "hidden_sizes": list(self.hidden_sizes),
            "ensemble_size": self.ensemble_size,
            "activation": self.activation,
            "min_log_std": self.min_log_std,
            "max_log_std": self.max_log_std,
            "obs_key": self.obs_key,
            "fourier_features": self.fourier_features,
            "fourier_scale": self.fourier_scale,
            "fourier_seed": self.fourier_seed,
            "reward_hidden_sizes": None if self.reward_hidden_sizes is None else list(self.reward_hidden_sizes),
            "termination_hidden_sizes": (
                None if self.termination_hidden_sizes is None else list(self.termination_hidden_sizes)
            ),
        }

    def extra_repr(self) -> str:
        return (
            f"state_dim={self.state_dim}, action_dim={self.action_dim}, hidden={list(self.hidden_sizes)}, "
            f"ensemble={self.ensemble_size}, activation={self.activation}"
            + (f", fourier_features={self.fourier_features}" if self.fourier_features else "")
            + (f", reward_head={list(self.reward_hidden_sizes)}" if self.reward_hidden_sizes is not None else "")
            + (
                f", termination_head={list(self.termination_hidden_sizes)}"
                if self.termination_hidden_sizes is not None
                else ""
            )
        )

    @property
    def state_scale(self) -> Tensor:
        """[S] the natural scale planners work in: the std of the training states (the input normaliser)."""
        return self.state_std

    @property
    def has_reward_head(self) -> bool:
        """Whether the model predicts rewards (:meth:`reward`)."""
        return self.reward_net is not None

    @property
    def has_termination_head(self) -> bool:
        """Whether the model predicts terminations (:meth:`termination_probability`)."""
        return self.termination_net is not None

    @torch.no_grad()
    def set_normalizers(
        self,
        state_mean: Any,
        state_std: Any,
        action_mean: Any,
        action_std: Any,
        delta_mean: Any,
        delta_std: Any,
    ) -> None:
        """Set the input / output normalisation. A constant input dim (std ~0, e.g. a contact force never seen
        nonzero) gets std 1 (:func:`_input_std`): the model's own small drift in it must not read as thousands of
        stds. Delta stds are floored at 1e-6."""
        values = {
            "state_mean": state_mean,
            "state_std": state_std,
            "action_mean": action_mean,
            "action_std": action_std,
            "delta_mean": delta_mean,
            "delta_std": delta_std,
        }
        for name, value in values.items():
            buffer: Tensor = getattr(self, name)
            tensor = as_float_tensor(value, name, trailing_shape=tuple(buffer.shape), allowed_ndims=(1,))
            if name == "delta_std":
                tensor = tensor.clamp_min(1e-6)
            elif name.endswith("_std"):
                tensor = _input_std(tensor)
            buffer.copy_(tensor.to(buffer.device, buffer.dtype))

    def fit_normalizers(self, states: Any, actions: Any, next_states: Any) -> None:
        """Set the normalisers from data arrays ``[N, S]``, ``[N, A]``, ``[N, S]`` (e.g. the training split)."""
        s = as_float_tensor(states, "states", trailing_shape=(self.state_dim,), allowed_ndims=(2,))
        a = as_float_tensor(actions, "actions", trailing_shape=(self.action_dim,), allowed_ndims=(2,))
        n = as_float_tensor(next_states, "next_states", trailing_shape=(self.state_dim,), allowed_ndims=(2,))
        if len(s) < 2 or len(a) != len(s) or len(n) != len(s):
            raise ValueError(f"need >= 2 matching rows to fit normalisers, got {len(s)}, {len(a)}, {len(n)}")
        d = n - s
        self.set_normalizers(s.mean(0), s.std(0), a.mean(0), a.std(0), d.mean(0), d.std(0))

    @torch.no_grad()
    def fit_reward_normalizer(self, rewards: Any) -> None:
        """Set the reward head's output scale from the rewards ``[N]`` (mean, std floored at 1e-4)."""
        self._require_reward_head()
        r = as_float_tensor(rewards, "rewards", allowed_ndims=(1,))
        if len(r) < 2:
            raise ValueError(f"need >= 2 rewards to fit the reward normaliser, got {len(r)}")
        self.reward_mean.copy_(r.mean())
        self.reward_std.copy_(r.std().clamp_min(1e-4))

    def reward_inputs(self, state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
        """``[N, S]``, ``[N, A]``, ``[N, S]`` -> the reward and termination heads' normalised input ``[N, 2S + A]``."""
        delta = ((next_state - state - self.delta_mean) / self.delta_std).clamp(-INPUT_CLIP, INPUT_CLIP)
        return torch.cat([self._normalize_state(state), (action - self.action_mean) / self.action_std, delta], dim=-1)

    def _normalize_state(self, state: Tensor) -> Tensor:
        """Normalised state, clipped to ``INPUT_CLIP`` stds of the training states."""
        return ((state - self.state_mean) / self.state_std).clamp(-INPUT_CLIP, INPUT_CLIP)

    def normalized_reward(self, inputs: Tensor) -> Tensor:
        """The reward head's output ``[N]`` (normalised reward) for inputs from :meth:`reward_inputs`."""
        self._require_reward_head()
        assert self.reward_net is not None
        return self.reward_net(inputs)[..., 0]

    def _require_reward_head(self) -> None:
        if self.reward_net is None:
            raise ValueError(
                "this MLPWorldModel has no reward head: train it with train_world_model(dataset, reward=True) "
                "(or build it with reward_hidden_sizes=...)"
            )

    def termination_logit(self, inputs: Tensor) -> Tensor:
        """The termination head's output ``[N]`` (log-odds that the episode ends) for inputs from :meth:`reward_inputs`."""
        self._require_termination_head()
        assert self.termination_net is not None
        return self.termination_net(inputs)[..., 0]

    def _require_termination_head(self) -> None:
        if self.termination_net is None:
            raise ValueError(
                "this MLPWorldModel has no termination head: train it with train_world_model(dataset, termination=True) "
                "(or build it with termination_hidden_sizes=...)"
            )

    # ------------------------------------------------------------------ core network
    def _mlp(self, x: Tensor, out_slice: slice | None = None) -> Tensor:
        """Raw network output ``[E, N, out]`` for normalised inputs ``[N, in]`` (shared) or ``[E, N, in]``."""
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if i == last and out_slice is not None:
                weight, bias = weight[..., out_slice], bias[..., out_slice]
            if x.ndim == 2 and self.ensemble_size == 1:
                x = torch.addmm(bias[0], x, weight[0])  # fast path: a single member
            elif x.ndim == 2:
                x = torch.matmul(x, weight) + bias  # [N, in] @ [E, in, out] -> [E, N, out]
            else:
                x = torch.baddbmm(bias, x, weight)
            if i != last:
                x = self._act(x)
        return x if x.ndim == 3 else x.unsqueeze(0)

    def _bound_log_std(self, raw: Tensor) -> Tensor:
        log_std = self.max_log_std - F.softplus(self.max_log_std - raw)
        return self.min_log_std + F.softplus(log_std - self.min_log_std)

    def normalized_outputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of the *normalised* delta, each ``[E, N, S]``, for normalised inputs.

        ``x`` is ``[N, S + A]`` (shared by all members) or ``[E, N, S + A]`` (per member, training).
        """
        out = self._mlp(x)
        return out[..., : self.state_dim], self._bound_log_std(out[..., self.state_dim :])

    def normalize_inputs(self, state: Tensor, action: Tensor) -> Tensor:
        """``[N, S]``, ``[N, A]`` -> normalised network input ``[N, S + A (+ 2F Fourier features)]``."""
        state_norm = self._normalize_state(state)
        parts = [state_norm, (action - self.action_mean) / self.action_std]
        if self.fourier_features:
            phase = (2 * math.pi) * (state_norm @ self.fourier_frequencies)
            parts += [phase.sin(), phase.cos()]
        return torch.cat(parts, dim=-1)

    def _flatten(self, state: Any, action: Any) -> tuple[Tensor, Tensor, torch.Size]:
        """Check shapes (cheap, no host sync) and flatten leading dims to ``[N, .]``."""
        dtype = self.state_mean.dtype
        if not isinstance(state, Tensor):
            state = torch.as_tensor(np.asarray(state), device=self.state_mean.device)
        if not isinstance(action, Tensor):
            action = torch.as_tensor(np.asarray(action), device=self.state_mean.device)
        if state.ndim == 0 or state.shape[-1] != self.state_dim:
            raise ValueError(
                f"state must have last dimension state_dim={self.state_dim}, got shape {tuple(state.shape)}"
            )
        if action.ndim == 0 or action.shape[-1] != self.action_dim:
            raise ValueError(
                f"action must have last dimension action_dim={self.action_dim}, got shape {tuple(action.shape)}"
            )
        lead = state.shape[:-1]
        if action.shape[:-1] != lead:
            raise ValueError(
                f"state and action must have the same leading (batch) shape, got {tuple(state.shape)} and {tuple(action.shape)}"
            )
        if state.dtype != dtype:
            state = state.to(dtype)
        if action.dtype != dtype:
            action = action.to(dtype)
        return state.reshape(-1, self.state_dim), action.reshape(-1, self.action_dim), lead

    # ------------------------------------------------------------------ public API
    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        """Mean next state ``[..., S]`` for ``state [..., S]`` and ``action [..., A]`` (same leading shape)."""
        s, a, lead = self._flatten(state, action)
        mean = self._mlp(self.normalize_inputs(s, a), slice(0, self.state_dim))  # [E, N, S]
        mean = mean.mean(0) if self.ensemble_size > 1 else mean[0]
        return (s + mean * self.delta_std + self.delta_mean).reshape(*lead, self.state_dim)

    def member_predictions(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Per-member ``(mean next state, std)``, each ``[E, ..., S]``."""
        s, a, lead = self._flatten(state, action)
        mean, log_std = self.normalized_outputs(self.normalize_inputs(s, a))
        next_mean = s + mean * self.delta_std + self.delta_mean
        std = log_std.exp() * self.delta_std
        shape = (self.ensemble_size, *lead, self.state_dim)
        return next_mean.reshape(shape), std.reshape(shape)

    def predict_distribution(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the next state, ``[..., S]`` each (ensemble: moments of the mixture)."""
        means, stds = self.member_predictions(state, action)
        if self.ensemble_size == 1:
            return means[0], stds[0]
        mean = means.mean(0)
        variance = stds.square().mean(0) + means.var(0, unbiased=False)
        return mean, variance.sqrt()

    def reward(self, state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
        """Predicted reward ``[...]`` (env units) of the step ``state [..., S]``, ``action [..., A]`` ->
        ``next_state [..., S]``; differentiable, any leading shape: a planner's ``reward_fn``."""
        self._require_reward_head()
        inputs, lead = self._transition_inputs(state, action, next_state)
        value = self.normalized_reward(inputs) * self.reward_std + self.reward_mean
        return value.reshape(lead)

    def termination_probability(self, state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
        """Predicted probability ``[...]`` in [0, 1] that the episode ends (``terminated``) after the step
        ``state [..., S]``, ``action [..., A]`` -> ``next_state [..., S]``; differentiable, any leading shape:
        a planner's ``termination_fn``."""
        self._require_termination_head()
        inputs, lead = self._transition_inputs(state, action, next_state)
        return torch.sigmoid(self.termination_logit(inputs)).reshape(lead)

    def _transition_inputs(self, state: Any, action: Any, next_state: Any) -> tuple[Tensor, torch.Size]:
        """The heads' normalised input ``[N, 2S + A]`` of steps with any leading shape, and that shape."""
        s, a, lead = self._flatten(state, action)
        if tuple(np.shape(next_state)) != (*lead, self.state_dim):
            raise ValueError(
                f"next_state must have the shape of state, got {tuple(np.shape(next_state))} and {tuple(np.shape(state))}"
            )
        n, _, _ = self._flatten(next_state, action)
        return self.reward_inputs(s, a, n), lead

    def encode(self, obs: Any) -> Tensor:
        """Observation -> state: the identity as a float tensor (``obs[obs_key]`` for dict observations)."""
        if isinstance(obs, Mapping):
            if self.obs_key is None or self.obs_key not in obs:
                raise ValueError(f"dict observation has keys {list(obs)}, model expects key {self.obs_key!r}")
            obs = obs[self.obs_key]
        device, dtype = self.state_mean.device, self.state_mean.dtype
        return as_float_tensor(obs, "obs", device=device, dtype=dtype, trailing_shape=(self.state_dim,))


class ValueFunction(nn.Module):
    """State value ``V(s)`` in the env's return units: an MLP on the normalised state, for a planner's
    ``terminal_value`` (the return beyond the horizon; :func:`mpc_grasp.models.train_value_function`).

    The network predicts ``(V − value_mean) / value_scale``; ``discount`` is the one it was trained
    with (plan with the same discount so ``discount^T V(s_T)`` continues the same return).
    """

    # buffers (register_buffer)
    state_mean: Tensor
    state_std: Tensor
    value_mean: Tensor
    value_scale: Tensor

    def __init__(
        self,
        state_dim: int,
        hidden_sizes: Sequence[int] = (128, 128),
        activation: str = "silu",
        discount: float = 0.99,
        obs_key: str | None = "observation",
    ) -> None:
        super().__init__()
        if int(state_dim) < 1:
            raise ValueError(f"state_dim must be >= 1, got {state_dim}")
        if not hidden_sizes or any(int(h) < 1 for h in hidden_sizes):
            raise ValueError(f"hidden_sizes must be non-empty positive integers, got {list(hidden_sizes)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {sorted(ACTIVATIONS)}")
        if not 0.0 < float(discount) < 1.0:
            raise ValueError(f"discount must be in (0, 1), got {discount}")
        self.state_dim = int(state_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation = activation
        self.discount = float(discount)
        self.obs_key = obs_key
        self.net = _plain_mlp(self.state_dim, self.hidden_sizes, 1, activation)
        self.register_buffer("state_mean", torch.zeros(self.state_dim))
        self.register_buffer("state_std", torch.ones(self.state_dim))
        self.register_buffer("value_mean", torch.zeros(()))
        self.register_buffer("value_scale", torch.ones(()))
        self.training_history: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``ValueFunction(**value.config)`` rebuilds the architecture."""
        return {
            "state_dim": self.state_dim,
            "hidden_sizes": list(self.hidden_sizes),
            "activation": self.activation,
            "discount": self.discount,
            "obs_key": self.obs_key,
        }

    @torch.no_grad()
    def set_normalizers(self, state_mean: Any, state_std: Any, value_mean: float, value_scale: float) -> None:
        """Input normalisation (a constant dim gets std 1, as in the world model) and output scale (floored at 1e-4)."""
        self.state_mean.copy_(
            as_float_tensor(state_mean, "state_mean", trailing_shape=(self.state_dim,), allowed_ndims=(1,))
        )
        self.state_std.copy_(
            _input_std(as_float_tensor(state_std, "state_std", trailing_shape=(self.state_dim,), allowed_ndims=(1,)))
        )
        self.value_mean.fill_(float(value_mean))
        self.value_scale.fill_(max(float(value_scale), 1e-4))

    def normalized(self, state: Tensor) -> Tensor:
        """The network output ``[N]`` (normalised value) for states ``[N, S]``."""
        return self.net((state - self.state_mean) / self.state_std)[..., 0]

    def forward(self, state: Tensor) -> Tensor:
        """``V(state)`` ``[...]`` for ``state [..., S]`` (any leading shape, differentiable)."""
        if not isinstance(state, Tensor):
            state = torch.as_tensor(np.asarray(state), dtype=self.state_mean.dtype, device=self.state_mean.device)
        if state.ndim == 0 or state.shape[-1] != self.state_dim:
            raise ValueError(
                f"state must have last dimension state_dim={self.state_dim}, got shape {tuple(state.shape)}"
            )
        lead = state.shape[:-1]
        rows = state.reshape(-1, self.state_dim).to(self.state_mean.dtype)
        return (self.normalized(rows) * self.value_scale + self.value_mean).reshape(lead)


def _head_mlp(model: MLPWorldModel, hidden_sizes: tuple[int, ...], name: str) -> nn.Sequential:
    """A one-output head of ``model`` on its ``(state, action, delta)`` input ``[N, 2S + A]`` (reward, termination)."""
    if not hidden_sizes or any(h < 1 for h in hidden_sizes):
        raise ValueError(f"{name} must be non-empty positive integers or None, got {hidden_sizes!r}")
    return _plain_mlp(2 * model.state_dim + model.action_dim, hidden_sizes, 1, model.activation)


def _plain_mlp(inputs: int, hidden_sizes: Sequence[int], outputs: int, activation: str) -> nn.Sequential:
    """``Linear -> activation -> ... -> Linear`` (one member; the reward/termination heads and value networks)."""
    modules: list[nn.Module] = []
    sizes = [inputs, *hidden_sizes]
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        modules += [nn.Linear(fan_in, fan_out), _Activation(activation)]
    modules.append(nn.Linear(sizes[-1], outputs))
    return nn.Sequential(*modules)


class _Activation(nn.Module):
    """One of :data:`ACTIVATIONS` as a module (no parameters: state dicts hold only the Linear layers)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return ACTIVATIONS[self.name](x)

    def extra_repr(self) -> str:
        return self.name
