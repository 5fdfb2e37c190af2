"""The planner interface's data types and config machinery: the option dataclass every planner config
extends, the warm-start and result types, one batch of problems, the candidates an algorithm hands back,
and the objective callables' signatures."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Self

import torch
from torch import Tensor

from mpc_grasp.validation import check_positive

RunningCost = Callable[[Tensor, Tensor], Tensor]
"""Differentiable per-step cost ``(next_state [..., S], action [..., A]) -> [...]``, summed over time."""

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""Differentiable per-step reward ``(state [..., S], action [..., A], next_state [..., S]) -> [...]``
(one value per step, any leading shape); the planner maximises its discounted sum."""

TerminalValue = Callable[[Tensor], Tensor]
"""Differentiable value of the last planned state ``(state [..., S]) -> [...]``, added to the return."""

TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""Differentiable probability in [0, 1] that the episode ends after a step ``(state [..., S], action [..., A],
next_state [..., S]) -> [...]``; each later reward (and the terminal value) counts only while the episode lives."""


IterationCallback = Callable[[int, "Tensor | None", Tensor], None]
"""Called after every iteration as ``callback(iteration, virtual_states or None, actions)`` (detached)."""


class PlanningError(RuntimeError):
    """Planning produced no usable plan (e.g. the world model returned NaN/inf)."""


@dataclass(frozen=True)
class PlannerConfig:
    """Options every planner understands."""

    iterations: int = 100
    """Optimisation iterations of a cold plan (upper bound when early stopping)."""
    warm_iterations: int | None = None
    """Iterations of a warm-started plan (receding-horizon MPC: the shifted previous plan is nearly
    optimal already, so a few iterations keep it so); None = ``iterations``."""
    first_plan_iterations: int | None = None
    """Iterations of the cold plan that opens an MPC episode (``GraspMPC`` replanning every step with warm
    starts: it gives one action, then warm plans refine it, so it need not be a finished open-loop plan); at
    most ``iterations``. None = ``iterations``."""
    goal_tolerance: float | None = None
    """Stop early once the best rollout ends within this (unweighted) distance of the goal."""
    check_every: int = 25
    """Iterations between early-stop checks (each costs one model rollout and a host sync)."""
    keep_solved_warm_start: bool = True
    """With a warm start and ``goal_tolerance``: a problem whose warm-start rollout already reaches
    the goal is returned as is, without optimising (receding-horizon MPC then re-optimises only
    when reality has left the plan, and a good detour is not pulled back toward the greedy path)."""
    seed: int = 0
    """Seed of the planner's random draws; a plan is deterministic given seed and inputs. In
    ``plan_batch`` problem i uses its own generator seeded ``seed + i`` (or ``seeds[i]``), so a
    problem's plan does not depend on the batch it is planned in."""

    def resolve(self, *, latent_model: bool, maximises_return: bool) -> Self:
        """This config with every run-dependent default filled in (pure; the planner stores and logs the result):
        ``warm_iterations`` and ``first_plan_iterations`` None become ``iterations``, and both are capped by it
        (the cold budget bounds every plan). ``latent_model``: the model plans in a learned latent space;
        ``maximises_return``: the objective has a reward or terminal value. Subclasses resolve their own fields."""
        del latent_model, maximises_return  # the shared fields depend on neither
        cap = self.iterations
        return dataclasses.replace(
            self,
            warm_iterations=min(self.warm_iterations or cap, cap),
            first_plan_iterations=min(self.first_plan_iterations or cap, cap),
        )

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.warm_iterations is not None and self.warm_iterations < 1:
            raise ValueError(f"warm_iterations must be >= 1 or None, got {self.warm_iterations}")
        if self.first_plan_iterations is not None and self.first_plan_iterations < 1:
            raise ValueError(f"first_plan_iterations must be >= 1 or None, got {self.first_plan_iterations}")
        if self.check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {self.check_every}")
        if self.goal_tolerance is not None:
            check_positive(self.goal_tolerance, "goal_tolerance")


@dataclass(frozen=True)
class PlanInit:
    """A starting point for the optimiser (warm start): actions and, for GRASP, virtual states."""

    actions: Tensor
    """[T, A] (or [N, T, A] for ``plan_batch``)."""
    virtual_states: Tensor | None = None
    """[T-1, S] intermediate states s_1..s_{T-1} (or [N, T-1, S]); planners without them ignore it."""
    state_scale: Tensor | None = None
    """[S] (or [N, S]) the natural state scale the previous plan used; the warm plan keeps it, so an MPC
    episode optimises one objective. None: the planner's own."""


@dataclass(frozen=True)
class PlanResult:
    """The chosen plan. Leading dim N only for ``plan_batch``; tensors are detached, on CPU."""

    actions: Tensor
    """[T, A] actions of the best candidate."""
    states: Tensor
    """[T+1, S] model rollout of ``actions`` from the start state (index 0 is the start)."""
    cost: Tensor
    """Rollout cost of the best candidate (scalar, or [N])."""
    virtual_states: Tensor | None = None
    """[T-1, S] GRASP's lifted states of the best candidate (None for shooting planners)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Diagnostics: loss history, gradient norms, iterations, wall time, model calls, ..."""

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[-2])

    def shifted(self, steps: int = 1, fill: str = "repeat") -> PlanInit:
        """The warm start for the next control step: drop the first ``steps`` actions, pad the end.

        ``fill`` is ``"repeat"`` (repeat the last action / state) or ``"zero"`` (zero actions).
        """
        if fill not in ("repeat", "zero"):
            raise ValueError(f"fill must be 'repeat' or 'zero', got {fill!r}")
        if not 0 <= steps < self.horizon:
            raise ValueError(f"steps must be in [0, {self.horizon}), got {steps}")
        actions = _shift_with_fill(self.actions, steps, zero=fill == "zero")
        virtual = None
        if self.virtual_states is not None and self.virtual_states.shape[-2] > 0:
            virtual = _shift_with_fill(self.virtual_states, steps, zero=False)
        return PlanInit(actions=actions, virtual_states=virtual, state_scale=self.info.get("state_scale"))


def path_integral_weights(costs: Tensor, temperature: float, normalize: bool = True) -> Tensor:
    """MPPI's sample weights along the last dim: softmax(−(cost − min) / temperature), with the
    shifted costs divided by their spread when ``normalize`` (scale-free); inf/NaN costs get 0."""
    costs = torch.nan_to_num(costs, nan=float("inf"), posinf=float("inf"))
    shifted = costs - costs.min(dim=-1, keepdim=True).values
    if normalize:
        finite = torch.where(torch.isfinite(shifted), shifted, torch.zeros_like(shifted))
        shifted = shifted / finite.std(dim=-1, keepdim=True).clamp_min(1e-8)
    return torch.softmax(-shifted / temperature, dim=-1)


def _shift_with_fill(sequence: Tensor, steps: int, zero: bool) -> Tensor:
    """Shift ``sequence`` left along dim -2 by ``steps``; pad with the last entry (or zeros)."""
    if steps == 0:
        return sequence.clone()
    tail = sequence[..., -1:, :].expand(*sequence.shape[:-2], steps, sequence.shape[-1])
    pad = torch.zeros_like(tail) if zero else tail
    return torch.cat([sequence[..., steps:, :], pad], dim=-2)


@dataclass
class Problem:
    """One batch of N planning problems, validated and on the planner's device."""

    start: Tensor  # [N, S]
    goal: Tensor | None  # [N, S]
    init: PlanInit | None  # batched: [N, T, A], [N, T-1, S]
    seeds: tuple[int, ...] = ()  # one seed per problem (its own random generator); () = config.seed + i
    iterations: int | None = None  # this call's iteration budget; None = the config's (cold or warm)
    scale: Tensor = field(default_factory=lambda: torch.ones(1, 1))  # [N, S] natural state scale, set per plan

    @property
    def size(self) -> int:
        return int(self.start.shape[0])


@dataclass
class Candidates:
    """What ``_optimize`` hands back: B candidate plans for each of the N problems."""

    actions: Tensor  # [N, B, T, A]
    virtual_states: Tensor | None = None  # [N, B, T-1, S]
    history: dict[str, Tensor] = field(default_factory=dict)  # per-iteration diagnostics
    iterations: int = 0
    early_stopped: bool = False
    states: Tensor | None = None  # [N, B, T+1, S] model rollout of ``actions`` if already computed (saves one)


def config_from_kwargs(config_class: type[PlannerConfig], options: dict[str, Any]) -> PlannerConfig:
    """Build a config dataclass, rejecting unknown option names with the list of valid ones."""
    valid = {item.name for item in fields(config_class)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {config_class.__name__}; valid: {sorted(valid)}")
    return config_class(**options)
