"""MLP dynamics model: predicts the normalised state delta with a Gaussian head, optional ensemble.

Normalisers (state, action, delta mean/std) are buffers, so a checkpoint restores them with the
weights. Ensemble members are evaluated together with batched matmuls, one op per layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpc_grasp.validation import as_float_tensor

__all__ = ["ACTIVATIONS", "MLPWorldModel"]

ACTIVATIONS = {"silu": F.silu, "relu": F.relu, "tanh": torch.tanh, "elu": F.elu, "gelu": F.gelu}


class MLPWorldModel(nn.Module):
    """``next_state = state + delta``, ``delta ~ N(mu(s, a), sigma(s, a)^2)``, from an MLP on normalised inputs.

    ``forward(state, action)`` returns the mean next state (for an ensemble, the mean over members)
    for any leading batch shape; ``predict_distribution`` also returns the predictive std (for an
    ensemble, of the mixture). The log-std is soft-bounded to ``[min_log_std, max_log_std]``
    (in normalised delta units) so the NLL stays well-behaved on near-deterministic data.

    ``fourier_features=F > 0`` appends ``sin/cos(2π · s_norm · W)`` of the normalised state to the
    input (``W`` [S, F] fixed Gaussian, std ``fourier_scale``; Tancik et al., 2020): a plain MLP on
    raw coordinates blurs sharp contacts such as walls, which planners then slip through.
    """

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
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden_sizes]
        if int(state_dim) < 1 or int(action_dim) < 1:
            raise ValueError(f"state_dim and action_dim must be >= 1, got {state_dim}, {action_dim}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden_sizes must be positive integers, got {list(hidden_sizes)}")
        if int(ensemble_size) < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {ensemble_size}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {sorted(ACTIVATIONS)}")
        if not min_log_std < max_log_std:
            raise ValueError(f"need min_log_std < max_log_std, got {min_log_std}, {max_log_std}")
        if int(fourier_features) < 0 or not float(fourier_scale) > 0:
            raise ValueError(f"need fourier_features >= 0 and fourier_scale > 0, got {fourier_features}, {fourier_scale}")
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.hidden_sizes = tuple(hidden)
        self.ensemble_size = int(ensemble_size)
        self.activation = activation
        self.min_log_std, self.max_log_std = float(min_log_std), float(max_log_std)
        self.obs_key = obs_key
        self._act = ACTIVATIONS[activation]
        self.fourier_features, self.fourier_scale, self.fourier_seed = int(fourier_features), float(fourier_scale), int(fourier_seed)
        if self.fourier_features:  # no buffer otherwise: checkpoints without features load unchanged
            generator = torch.Generator().manual_seed(self.fourier_seed)
            frequencies = torch.randn(self.state_dim, self.fourier_features, generator=generator) * self.fourier_scale
            self.register_buffer("fourier_frequencies", frequencies)

        sizes = [self.state_dim + self.action_dim + 2 * self.fourier_features, *self.hidden_sizes, 2 * self.state_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)  # torch.nn.Linear's default init, per member
            self.weights.append(nn.Parameter(torch.empty(self.ensemble_size, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(self.ensemble_size, 1, fan_out).uniform_(-bound, bound)))

        for name, dim in (("state", self.state_dim), ("action", self.action_dim), ("delta", self.state_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        self.training_history: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}

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
        }

    def extra_repr(self) -> str:
        return (
            f"state_dim={self.state_dim}, action_dim={self.action_dim}, hidden={list(self.hidden_sizes)}, "
            f"ensemble={self.ensemble_size}, activation={self.activation}"
            + (f", fourier_features={self.fourier_features}" if self.fourier_features else "")
        )

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
        """Set the input / output normalisation (std floored so constant dims stay finite)."""
        values = {
            "state_mean": state_mean, "state_std": state_std, "action_mean": action_mean,
            "action_std": action_std, "delta_mean": delta_mean, "delta_std": delta_std,
        }
        for name, value in values.items():
            buffer: Tensor = getattr(self, name)
            tensor = as_float_tensor(value, name, trailing_shape=tuple(buffer.shape), allowed_ndims=(1,))
            if name.endswith("_std"):
                tensor = tensor.clamp_min(1e-6 if name == "delta_std" else 1e-4)
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
        state_norm = (state - self.state_mean) / self.state_std
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
            raise ValueError(f"state must have last dimension state_dim={self.state_dim}, got shape {tuple(state.shape)}")
        if action.ndim == 0 or action.shape[-1] != self.action_dim:
            raise ValueError(f"action must have last dimension action_dim={self.action_dim}, got shape {tuple(action.shape)}")
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
        if self.ensemble_size > 1:
            mean = mean.mean(0)
        else:
            mean = mean[0]
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

    def encode(self, obs: Any) -> Tensor:
        """Observation -> state: the identity as a float tensor (``obs[obs_key]`` for dict observations)."""
        if isinstance(obs, Mapping):
            if self.obs_key is None or self.obs_key not in obs:
                raise ValueError(f"dict observation has keys {list(obs)}, model expects key {self.obs_key!r}")
            obs = obs[self.obs_key]
        device, dtype = self.state_mean.device, self.state_mean.dtype
        return as_float_tensor(obs, "obs", device=device, dtype=dtype, trailing_shape=(self.state_dim,))
