"""The world-model contract every planner relies on.

Any ``torch.nn.Module`` with ``state_dim``, ``action_dim``, ``forward(state, action) -> next_state``
on any leading batch shape (and optionally ``encode`` / ``predict_distribution`` / ``history``) plugs in.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from mpc_grasp.validation import as_float_tensor, is_integer_at_least


@runtime_checkable
class WorldModel(Protocol):
    """Deterministic (mean) dynamics ``F(state, action) -> next_state`` in the planning space.

    Required: ``state_dim``, ``action_dim`` and ``model(state, action)`` on any leading batch shape. Optional:
    ``encode(observation) -> state`` (else observations are the states), ``state_scale``,
    ``plans_in_latent_space``, ``predict_distribution``.

    History (optional, :func:`history_length`): a model may declare ``history: int`` (1 when absent), the
    number k of past observations its dynamics condition on (visual world models such as DINO-WM condition on
    up to 3 frames). With k > 1 the planning state is the concatenation of the latents of the last k
    observations, oldest first, so ``state_dim = k * latent_dim``:

    * ``forward(state, action)`` returns the next stacked state: the k - 1 newest latents shifted down (to
      the front) followed by the predicted new latent;
    * ``encode(observations)`` takes a stack of the last k observations ``[..., k, *obs_shape]`` (oldest
      first) and returns ``[..., k * latent_dim]``;
    * ``observation_shape`` (optional, one observation's shape) lets :class:`~mpc_grasp.control.GraspMPC`
      tell a batch of observations (vector envs) from a single one; without it every observation is one env's.

    Planners need nothing more: they plan over the stacked state vector. :class:`~mpc_grasp.control.GraspMPC`
    keeps the last k observations of each env itself (the first one of an episode repeated k times) and
    repeats a goal observation k times before encoding it. With k = 1 (the default) nothing changes.
    """

    state_dim: int
    action_dim: int

    def __call__(self, state: Tensor, action: Tensor) -> Tensor: ...


def check_world_model(model: Any) -> None:
    """Raise a clear ``TypeError`` when ``model`` lacks the attributes planners need."""
    missing = [name for name in ("state_dim", "action_dim") if not hasattr(model, name)]
    if missing or not callable(model):
        raise TypeError(
            f"world model {type(model).__name__} must be callable as model(state, action) and define "
            f"integer attributes state_dim and action_dim (missing: {', '.join(missing) or 'callable'})"
        )
    for name in ("state_dim", "action_dim"):
        value = getattr(model, name)
        if not is_integer_at_least(value, 1):
            raise ValueError(f"world model {type(model).__name__}.{name} must be a positive integer, got {value!r}")
    history = history_length(model)
    if int(model.state_dim) % history:
        raise ValueError(
            f"world model {type(model).__name__} has history={history} but state_dim={int(model.state_dim)} is "
            f"not a multiple of it (the state stacks {history} per-observation latents)"
        )


def history_length(model: Any) -> int:
    """The number k of past observations ``model`` conditions on (``model.history``; 1 when absent).

    With k > 1 its planning state stacks the latents of the last k observations, oldest first (see
    :class:`WorldModel`). Raises ``ValueError`` for a ``history`` that is not a positive integer."""
    history = getattr(model, "history", None)
    if history is None:
        return 1
    if not is_integer_at_least(history, 1):
        raise ValueError(f"world model {type(model).__name__}.history must be a positive integer, got {history!r}")
    return int(history)


def check_action_space(action_space: Any, model: Any) -> None:
    """Raise ``ValueError`` unless ``action_space`` is a 1-D Box with ``model.action_dim`` entries."""
    shape = tuple(getattr(action_space, "shape", None) or ())
    if len(shape) != 1 or shape[0] != int(model.action_dim):
        raise ValueError(
            f"action_space has shape {shape} but the world model's action_dim is {int(model.action_dim)}: "
            f"expected a Box of shape ({int(model.action_dim)},) (was the model trained on another env?)"
        )


def declared_state_scale(model: Any) -> Tensor | None:
    """The model's natural per-dimension state scale [S] (``model.state_scale``: the spread of its states in
    their own units, e.g. a data normaliser's std), or None when the model declares none.

    Planners express state-side step sizes, noise and the default goal weighting in units of this scale, so
    their defaults hold in any units. A bring-your-own model sets ``state_scale`` (a tensor or a sequence of S
    positive numbers); without one the planner estimates it from random-action rollouts.
    """
    scale = getattr(model, "state_scale", None)
    if scale is None:
        return None
    state_dim = int(model.state_dim)
    tensor = torch.as_tensor(scale, dtype=torch.float32).detach().reshape(-1)
    if tensor.numel() == 1:
        tensor = tensor.expand(state_dim)
    if tensor.numel() != state_dim or not bool(torch.isfinite(tensor).all()) or not bool((tensor > 0).all()):
        raise ValueError(
            f"{type(model).__name__}.state_scale must hold {state_dim} positive finite numbers, got {scale!r}"
        )
    return tensor.clone()


def plans_in_latent_space(model: Any) -> bool:
    """True for models whose planning state is a learned latent (``model.plans_in_latent_space``).

    GRASP keeps its stop-gradient on such models by default; state-space models (analytic or MLP on
    the observation) get full state gradients. A user's encoder model sets the attribute to True.
    """
    return bool(getattr(model, "plans_in_latent_space", False))


def model_device(model: Any, default: str | torch.device = "cpu") -> torch.device:
    """The device of the model's first parameter or buffer (``default`` for parameter-free models)."""
    if isinstance(model, torch.nn.Module):
        for tensor in model.parameters():
            return tensor.device
        for buffer in model.buffers():
            return buffer.device
    return torch.device(default)


def encode_observation(model: Any, obs: Any, device: torch.device | str = "cpu") -> Tensor:
    """Map an environment observation to the model's state space.

    Uses ``model.encode`` when it exists (pixel models), the identity otherwise (vector observations).
    """
    encode = getattr(model, "encode", None)
    if encode is not None:
        if isinstance(obs, np.ndarray):
            obs = torch.as_tensor(obs, device=device)
        return encode(obs)
    return as_float_tensor(obs, "obs", device=device)


class CompiledWorldModel(torch.nn.Module):
    """A world model whose ``forward`` runs through ``torch.compile`` (opt-in speed path).

    Planners call the model on a few fixed row counts ([N·B·T] for GRASP's lifted step, [N·B] per
    rollout step), so ``dynamic=True`` compiles once for all of them. The first calls pay the
    compile (tens of seconds on CPU with inductor, see docs/decisions.md#compile_world_model): use it
    for long runs, never in unit tests' hot path.
    Everything else (``state_dim``, ``encode``, ``plans_in_latent_space``, ...) is the wrapped model's.
    """

    def __init__(
        self, model: torch.nn.Module, backend: str = "inductor", dynamic: bool = True, mode: str | None = None
    ) -> None:
        super().__init__()
        check_world_model(model)
        self.model = model
        self._compiled = torch.compile(model, backend=backend, dynamic=dynamic, mode=mode)

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        return self._compiled(state, action)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # parameters, buffers, submodules (incl. self.model)
        except AttributeError:
            return getattr(self.__dict__["_modules"]["model"], name)


def compile_world_model(
    model: Any, backend: str = "inductor", dynamic: bool = True, mode: str | None = None
) -> CompiledWorldModel:
    """``model`` with ``forward`` compiled by ``torch.compile``; plug it into ``make_planner``/``GraspMPC``
    as usual. ``mode="reduce-overhead"`` adds CUDA graphs on a GPU."""
    return CompiledWorldModel(model, backend=backend, dynamic=dynamic, mode=mode)
