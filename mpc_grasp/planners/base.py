"""The one planner interface: ``Planner.plan(state, goal, init) -> PlanResult``.

Everything planners share lives here: input validation, the objective (goal distance plus an
optional differentiable running cost or reward), batched model rollouts, early stopping and candidate
selection by true model rollout. Each algorithm only implements ``_optimize``; the data types are in
:mod:`mpc_grasp.planners.types` (re-exported here).

Why one ~640-line file: the contract every planner relies on (validation -> objective -> early stop ->
selection) reads top to bottom in one place, like ``grasp.py``; splitting it would scatter one flow.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from mpc_grasp.models.base import (
    check_world_model,
    declared_state_scale,
    history_length,
    model_device,
    plans_in_latent_space,
)
from mpc_grasp.planners.types import (
    Candidates,
    IterationCallback,
    PlanInit,
    PlannerConfig,
    PlanningError,
    PlanResult,
    Problem,
    RewardFn,
    RunningCost,
    TerminalValue,
    TerminationFn,
    config_from_kwargs,
    path_integral_weights,
)
from mpc_grasp.validation import as_float_tensor, check_positive, is_integer_at_least

__all__ = [
    "Candidates",
    "IterationCallback",
    "PlanInit",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "PlanningError",
    "Problem",
    "RewardFn",
    "RunningCost",
    "TerminalValue",
    "TerminationFn",
    "config_from_kwargs",
    "path_integral_weights",
]


@dataclass
class _EarlyStop:
    """Per-problem early stopping inside one batched optimisation.

    A problem whose rollout reaches the goal keeps the candidates it had at that check (frozen);
    the batch goes on until every problem is done. So problem i's result is the one a plan of
    problem i alone would return, whatever else is in the batch.
    """

    done: Tensor  # [N] bool
    stop_iteration: Tensor  # [N] long: iterations run when the problem was frozen (0 = not yet)
    actions: Tensor | None = None  # [N, B, T, A] frozen candidates
    virtual_states: Tensor | None = None  # [N, B, T-1, S]

    def freeze(self, newly: Tensor, iteration: int, actions: Tensor, virtual_states: Tensor | None) -> None:
        """Keep the current candidates of the problems in ``newly`` [N] bool."""
        self.stop_iteration = torch.where(
            newly, torch.full_like(self.stop_iteration, iteration + 1), self.stop_iteration
        )
        if self.actions is None:
            self.actions = actions.detach().clone()
            self.virtual_states = None if virtual_states is None else virtual_states.detach().clone()
        else:
            if self.actions.shape != actions.shape:  # frozen warm starts are stored as one candidate
                self.actions = self.actions.expand_as(actions).clone()
                if self.virtual_states is not None and virtual_states is not None:
                    self.virtual_states = self.virtual_states.expand_as(virtual_states).clone()
            if self.virtual_states is None and virtual_states is not None:  # warm starts frozen without states
                self.virtual_states = virtual_states.detach().clone()
            self.actions[newly] = actions.detach()[newly]
            if self.virtual_states is not None and virtual_states is not None:
                self.virtual_states[newly] = virtual_states.detach()[newly]
        self.done = self.done | newly


class Planner(ABC):
    """Base class: a world model, a horizon, action bounds and an objective.

    The objective (a cost, minimised) of a plan with rollout s_0..s_T is
    ``‖s_T − g‖²_w + dense_goal_weight · mean_t ‖s_t − g‖²_w + Σ_t running_cost(s_{t+1}, a_t)
    − Σ_t discount^t alive_t reward_fn(s_t, a_t, s_{t+1}) − discount^T alive_T terminal_value(s_T)``,
    with ``w`` the per-dimension ``state_weights`` (default ``1 / state_scale²``: every dimension in its natural
    scale, so the default objective is the same in any units; for a model with a history of k frames only the
    newest frame's dimensions, since a goal observation is one frame and the older ones are context, not part of
    the goal); the goal terms only with a goal, the others only
    when given. Every planner's result is scored by it. With a ``running_cost``, ``reward_fn`` or
    ``terminal_value`` the goal is optional (the task objective alone is then maximised/minimised).

    ``termination_fn`` (optional, only beside ``reward_fn`` or ``terminal_value``) makes the return that of an
    episode that may end: ``alive_0 = 1``, ``alive_{t+1} = alive_t · (1 − termination_fn(s_t, a_t, s_{t+1}))``,
    the predicted probability that the episode still runs. Without it every ``alive_t`` is 1 (the terms are
    computed exactly as without the factor).

    ``discount`` (default 1.0) weighs the rewards only: the undiscounted sum over the finite horizon
    is what the env's episode return counts and keeps the objective's scale independent of the
    horizon's position in the episode; give the discount the ``terminal_value`` was trained with
    (e.g. 0.99) when using one, so the bootstrap ``discount^T V(s_T)`` estimates the same return.
    """

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[PlannerConfig]] = PlannerConfig

    def __init__(
        self,
        model: Any,
        horizon: int,
        config: PlannerConfig | None = None,
        *,
        action_low: Any = -1.0,
        action_high: Any = 1.0,
        state_weights: Any = None,
        state_scale: Any = None,
        dense_goal_weight: float = 0.0,
        running_cost: RunningCost | None = None,
        reward_fn: RewardFn | None = None,
        terminal_value: TerminalValue | None = None,
        discount: float = 1.0,
        device: str | torch.device | None = None,
        callback: IterationCallback | None = None,
        termination_fn: TerminationFn | None = None,
    ) -> None:
        check_world_model(model)
        if not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.model = model
        self.horizon = int(horizon)
        self.state_dim = int(model.state_dim)
        self.action_dim = int(model.action_dim)
        self.device = torch.device(device) if device is not None else model_device(model)
        self.action_low, self.action_high = self._bounds(action_low, action_high)
        self._set_units(model, state_weights, state_scale)
        self._set_objective(dense_goal_weight, running_cost, reward_fn, terminal_value, discount, termination_fn)
        self.config = config.resolve(
            latent_model=plans_in_latent_space(model),
            maximises_return=reward_fn is not None or terminal_value is not None,
        )
        """The config as it runs: every default that depends on the model or the objective resolved."""
        self._non_finite_outputs: dict[str, Tensor] = {}
        """Per objective callable: a device flag, set when it returned NaN/inf on finite inputs during the
        current plan (accumulated without host syncs, checked once in ``_select``)."""
        self.callback = callback
        self.generator = torch.Generator(device=self.device)
        """Problem 0's generator (kept for callers that draw their own noise)."""
        self.generators: list[torch.Generator] = [self.generator]
        self._early_stop: _EarlyStop | None = None
        self._model_calls = 0
        self._model_transitions = 0
        self._probe_model()
        self._probe_objective()

    def _set_units(self, model: Any, state_weights: Any, state_scale: Any) -> None:
        """The goal weights and the state scale, each [S] or None (see the attributes)."""
        self.state_weights = None if state_weights is None else self._per_dimension(state_weights, "state_weights")
        """The user's goal weights [S], or None: weights ``1 / scale²`` from each problem's state scale."""
        if self.state_weights is not None and bool((self.state_weights < 0).any()):
            raise ValueError("state_weights must be non-negative")
        declared = (
            declared_state_scale(model) if state_scale is None else self._per_dimension(state_scale, "state_scale")
        )
        if declared is not None and not bool((declared > 0).all()):
            raise ValueError("state_scale must be positive in every dimension")
        self.state_scale = None if declared is None else declared.to(self.device)
        """The natural state scale [S] (the ``state_scale`` argument, else the model's), or None: estimated per
        problem by :meth:`estimate_state_scale`. State-side options and the default goal weights use it."""
        self._goal_weights = torch.ones(1, self.state_dim, device=self.device)  # [N, S], set per plan
        self.history = history_length(model)
        """Frames of context k of the model (1: an ordinary state)."""
        context = self.state_dim - self.state_dim // self.history  # older frames of a history state
        self.goal_mask = torch.ones(self.state_dim, device=self.device)
        """[S] the dimensions the default goal weights count: all but a history model's older frames."""
        self.goal_mask[:context] = 0.0

    def _set_objective(
        self,
        dense_goal_weight: float,
        running_cost: RunningCost | None,
        reward_fn: RewardFn | None,
        terminal_value: TerminalValue | None,
        discount: float,
        termination_fn: TerminationFn | None = None,
    ) -> None:
        """The objective's task terms, each checked (callables, weights, discount in (0, 1], a
        ``termination_fn`` only beside a return to weigh)."""
        check_positive(dense_goal_weight, "dense_goal_weight", allow_zero=True)
        for value, name in (
            (running_cost, "running_cost"),
            (reward_fn, "reward_fn"),
            (terminal_value, "terminal_value"),
            (termination_fn, "termination_fn"),
        ):
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable, got {type(value).__name__}")
        if termination_fn is not None and reward_fn is None and terminal_value is None:
            raise ValueError(
                "termination_fn weighs the predicted return by the probability of still being alive: "
                "give reward_fn and/or terminal_value with it"
            )
        number = isinstance(discount, (int, float, np.floating, np.integer)) and not isinstance(discount, bool)
        if not number or not 0.0 < float(discount) <= 1.0:
            raise ValueError(f"discount must be a number in (0, 1], got {discount!r}")
        self.dense_goal_weight = float(dense_goal_weight)
        self.running_cost = running_cost
        self.reward_fn = reward_fn
        self.terminal_value = terminal_value
        self.termination_fn = termination_fn
        self.discount = float(discount)

    def _per_dimension(self, value: Any, name: str) -> Tensor:
        """[S] from S numbers, or from one number for every dimension."""
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            value = [float(value)] * self.state_dim
        return as_float_tensor(value, name, device=self.device, trailing_shape=(self.state_dim,), allowed_ndims=(1,))

    def _probe_model(self) -> None:
        """One model call on a zero (state, action) row: a model whose output is not [rows, state_dim]
        is rejected when the planner is built, not deep inside the first plan."""
        with torch.no_grad():
            self.predict(
                torch.zeros(1, self.state_dim, device=self.device), torch.zeros(1, self.action_dim, device=self.device)
            )

    def _probe_objective(self) -> None:
        """Call ``reward_fn`` / ``terminal_value`` / ``termination_fn`` once on zero inputs with leading shape
        [2, 3]: one returning another shape (a [..., 1] column, a mean over the batch), NaN/inf, or (termination)
        values outside [0, 1] is rejected when the planner is built, with what it must return."""
        if self.reward_fn is None and self.terminal_value is None:
            return
        states = torch.zeros(2, 3, self.state_dim, device=self.device)
        actions = torch.zeros(2, 3, self.action_dim, device=self.device)
        with torch.no_grad():
            rewards, values = self.reward_terms(states, actions, states, states[:, 0])
            probabilities = None
            if self.termination_fn is not None:
                probabilities = self.termination_fn(states, actions, states)
                _check_objective_output(
                    probabilities, (2, 3), "termination_fn", _call("termination_fn", states, actions, states)
                )
        for output, name in ((rewards, "reward_fn"), (values, "terminal_value"), (probabilities, "termination_fn")):
            if output is not None and not bool(torch.isfinite(output).all()):
                raise ValueError(
                    f"{name} returned NaN or inf on zero inputs (shape {tuple(output.shape)}); it must return finite values"
                )
        if probabilities is not None and not bool(((probabilities >= 0) & (probabilities <= 1)).all()):
            raise ValueError(_OUT_OF_RANGE_MESSAGE + f" (on zero inputs: {probabilities.flatten()[:3].tolist()} ...)")

    @property
    def goal_optional(self) -> bool:
        """True when the objective has a task term besides the goal (``running_cost``, ``reward_fn``
        or ``terminal_value``), so plans without a goal are well defined."""
        return self.running_cost is not None or self.reward_fn is not None or self.terminal_value is not None

    # ------------------------------------------------------------------ public API
    def plan(
        self,
        state: Any,
        goal: Any = None,
        init: PlanInit | PlanResult | Tensor | None = None,
        *,
        iterations: int | None = None,
    ) -> PlanResult:
        """Plan from one ``state`` [S] toward ``goal`` [S]; returns a single (unbatched) result.
        ``iterations`` overrides this call's budget (default: the config's, cold or warm)."""
        state_t = as_float_tensor(
            state, "state", device=self.device, trailing_shape=(self.state_dim,), allowed_ndims=(1,)
        )
        goal_t = (
            None
            if goal is None
            else as_float_tensor(goal, "goal", device=self.device, trailing_shape=(self.state_dim,), allowed_ndims=(1,))
        )
        batched_init = None if init is None else self._validate_init(init, batched=False)
        problem = Problem(
            start=state_t[None],
            goal=None if goal_t is None else goal_t[None],
            init=batched_init,
            seeds=(self.config.seed,),
            iterations=_check_iterations(iterations),
        )
        result = self._run(problem)
        return PlanResult(
            actions=result.actions[0],
            states=result.states[0],
            cost=result.cost[0],
            virtual_states=None if result.virtual_states is None else result.virtual_states[0],
            info={
                key: (value[0] if key in _PER_PROBLEM_INFO and value is not None else value)
                for key, value in result.info.items()
            },
        )

    def plan_batch(
        self,
        states: Any,
        goals: Any = None,
        init: PlanInit | PlanResult | Tensor | None = None,
        seeds: Sequence[int] | None = None,
        *,
        iterations: int | None = None,
    ) -> PlanResult:
        """Plan N problems at once (states [N, S], goals [N, S]) in one batched optimisation.
        ``iterations`` overrides this call's budget (default: the config's, cold or warm).

        Problem i draws its random numbers from its own generator seeded ``seeds[i]`` (default
        ``config.seed + i``) and stops early on its own, so its plan equals
        ``plan(states[i], goals[i])`` of a planner with ``seed=seeds[i]`` (up to float round-off of
        batched kernels): batching is a speed-up, never a change of result.
        """
        start = as_float_tensor(
            states, "states", device=self.device, trailing_shape=(self.state_dim,), allowed_ndims=(2,)
        )
        goal = None
        if goals is not None:
            goal = as_float_tensor(
                goals, "goals", device=self.device, trailing_shape=(self.state_dim,), allowed_ndims=(2,)
            )
            if goal.shape[0] != start.shape[0]:
                raise ValueError(f"goals has {goal.shape[0]} rows but states has {start.shape[0]}")
        problem = Problem(
            start=start,
            goal=goal,
            init=None,
            seeds=self._problem_seeds(seeds, start.shape[0]),
            iterations=_check_iterations(iterations),
        )
        if init is not None:
            problem.init = self._expand_init(self._validate_init(init, batched=True), problem.size)
        return self._run(problem)

    def _run(self, problem: Problem) -> PlanResult:
        """Seed, optimise, select; time the whole plan."""
        if problem.goal is None and not self.goal_optional:
            raise ValueError(
                "goal is required unless the planner was given a running_cost, reward_fn or terminal_value"
            )
        seeds = problem.seeds or tuple(self.config.seed + index for index in range(problem.size))
        self.generators = [torch.Generator(device=self.device).manual_seed(seed) for seed in seeds]
        self.generator = self.generators[0]
        self._early_stop = _EarlyStop(
            done=torch.zeros(problem.size, dtype=torch.bool, device=self.device),
            stop_iteration=torch.zeros(problem.size, dtype=torch.long, device=self.device),
        )
        self._model_calls = 0
        self._model_transitions = 0
        self._non_finite_outputs = {}
        started = time.perf_counter()
        problem.scale = self._problem_scale(problem)
        self._goal_weights = (
            problem.scale.pow(-2) * self.goal_mask
            if self.state_weights is None
            else self.state_weights.expand(problem.size, -1)
        )
        if self._freeze_solved_warm_starts(problem):
            init = problem.init
            assert init is not None  # only warm starts are frozen
            candidates = Candidates(
                actions=init.actions[:, None],
                virtual_states=None if init.virtual_states is None else init.virtual_states[:, None],
                iterations=0,
                early_stopped=True,
            )
        else:
            candidates = self._with_frozen(self._optimize(problem))
        # "early" means before the budget: a goal first reached at the last check is a full run
        candidates.early_stopped = candidates.early_stopped and candidates.iterations < self.iteration_budget(problem)
        result = self._select(problem, candidates)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        result.info["wall_time"] = time.perf_counter() - started
        result.info["state_scale"] = problem.scale.detach().cpu()  # [N, S]: a warm start carries it on
        return result

    def reset(self) -> None:  # noqa: B027 (a hook: planners with state override it)
        """Drop any internal state (the base planner keeps none between calls)."""

    # ------------------------------------------------------------------ shared machinery
    def predict(self, states: Tensor, actions: Tensor) -> Tensor:
        """One batched model call on any leading shape, counted for the diagnostics."""
        leading = states.shape[:-1]
        rows = states.reshape(-1, self.state_dim)
        next_states = self.model(rows, actions.reshape(-1, self.action_dim))
        if next_states.shape != rows.shape:
            raise ValueError(
                f"world model {type(self.model).__name__} returned shape {tuple(next_states.shape)} for "
                f"{rows.shape[0]} (state, action) rows; expected {tuple(rows.shape)} = [rows, state_dim]"
            )
        self._model_calls += 1
        self._model_transitions += int(np.prod(leading)) if leading else 1
        return next_states.reshape(*leading, self.state_dim)

    def rollout(self, start: Tensor, actions: Tensor) -> Tensor:
        """Sequential model rollout: start [N, S], actions [N, B, T, A] -> states [N, B, T+1, S]."""
        state = start[:, None, :].expand(actions.shape[0], actions.shape[1], self.state_dim)
        states = [state]
        for step in range(actions.shape[2]):
            state = self.predict(state, actions[:, :, step])
            states.append(state)
        return torch.stack(states, dim=2)

    def resting_goal(self, goal: Tensor) -> Tensor:
        """A goal [N, S] as a history state at rest: every frame a copy of its newest (unchanged for k = 1)."""
        if self.history == 1:
            return goal
        newest = goal[:, -(self.state_dim // self.history) :]
        return newest.repeat(1, self.history)

    def goal_distance(self, states: Tensor, goal: Tensor) -> Tensor:
        """Weighted squared distance ``‖s − g‖²_w`` for states [N, B, ..., S] and goal [N, S] (``w``: the
        ``state_weights``, else ``1 / scale²`` of each problem)."""
        lead = (*([1] * (states.ndim - 2)), self.state_dim)
        weights = self._goal_weights.reshape(self._goal_weights.shape[0], *lead)  # one row outside a plan
        return ((states - goal.reshape(goal.shape[0], *lead)) ** 2 * weights).sum(-1)

    def estimate_state_scale(self, start: Tensor) -> Tensor:
        """Each problem's natural state scale [N, S] for start states [N, S]: the std of the states visited by
        32 random action sequences (uniform in the bounds, drawn from a fixed seed, the same for every problem)
        over the horizon, floored at 10% of the largest dimension's (a dimension no action moves must not
        dominate). A function of the start alone: batching and call order never change it."""
        generator = torch.Generator(device=self.device).manual_seed(0)
        shape = (1, 32, self.horizon, self.action_dim)
        uniform = torch.rand(shape, generator=generator, device=self.device)
        actions = (self.action_low + (self.action_high - self.action_low) * uniform).expand(start.shape[0], -1, -1, -1)
        with torch.no_grad():
            spread = self.rollout(start, actions).flatten(1, 2).std(dim=1)  # [N, S]
        spread = torch.nan_to_num(spread, nan=0.0, posinf=0.0)
        return spread.clamp_min(0.1 * spread.amax(-1, keepdim=True)).clamp_min(1e-6)

    def _problem_scale(self, problem: Problem) -> Tensor:
        """[N, S]: a warm start's scale (an episode keeps one objective), else the declared one, else estimated."""
        if problem.init is not None and problem.init.state_scale is not None:
            return problem.init.state_scale
        if self.state_scale is not None:
            return self.state_scale.expand(problem.size, -1)
        return self.estimate_state_scale(problem.start)

    def trajectory_cost(self, states: Tensor, actions: Tensor, goal: Tensor | None) -> Tensor:
        """The shared objective for rollouts states [N, B, T+1, S], actions [N, B, T, A] -> [N, B]."""
        cost = torch.zeros(states.shape[:2], device=states.device, dtype=states.dtype)
        if goal is not None:
            cost = cost + self.goal_distance(states[:, :, -1], goal)
            if self.dense_goal_weight > 0:
                cost = cost + self.dense_goal_weight * self.goal_distance(states[:, :, 1:], goal).mean(-1)
        if self.running_cost is not None:
            cost = cost + self.running_cost(states[:, :, 1:], actions).sum(-1)
        if self.reward_fn is not None or self.terminal_value is not None:
            cost = cost - self.predicted_return(states[:, :, :-1], actions, states[:, :, 1:], states[:, :, -1])
        return cost

    def reward_terms(
        self, states: Tensor, actions: Tensor, next_states: Tensor, final_states: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:
        """(rewards [..., T] or None, terminal values [...] or None), shapes checked.

        ``states`` / ``next_states`` [..., T, S] are s_t and s_{t+1} of each step, ``actions`` [..., T, A],
        ``final_states`` [..., S] the state the terminal value is taken at. A ``reward_fn`` or
        ``terminal_value`` returning another shape raises a ``ValueError`` naming it and the shape
        it must return (a check on shapes only: no host sync inside the optimisation loop).
        """
        rewards = values = None
        if self.reward_fn is not None:
            rewards = self.reward_fn(states, actions, next_states)
            _check_objective_output(
                rewards, tuple(actions.shape[:-1]), "reward_fn", _call("reward_fn", states, actions, next_states)
            )
            finite_inputs = _finite_rows(states) & _finite_rows(actions) & _finite_rows(next_states)
            self._flag_non_finite("reward_fn", rewards, finite_inputs)
        if self.terminal_value is not None:
            values = self.terminal_value(final_states)
            _check_objective_output(
                values,
                tuple(final_states.shape[:-1]),
                "terminal_value",
                f"terminal_value(state {tuple(final_states.shape)})",
            )
            self._flag_non_finite("terminal_value", values, _finite_rows(final_states))
        return rewards, values

    def survival(self, states: Tensor, actions: Tensor, next_states: Tensor) -> Tensor | None:
        """``alive_0..alive_T`` [..., T+1], the predicted probability that the episode still runs before step t:
        ``alive_0 = 1``, ``alive_{t+1} = alive_t · (1 − p_t)`` with ``p_t = termination_fn(s_t, a_t, s_{t+1})``;
        None without a ``termination_fn``. Inputs as in :meth:`reward_terms`; a wrong shape raises a
        ``ValueError`` naming ``termination_fn``, NaN/inf or values outside [0, 1] are flagged (no host sync)
        and raised once the plan is scored."""
        if self.termination_fn is None:
            return None
        probabilities = self.termination_fn(states, actions, next_states)
        _check_objective_output(
            probabilities,
            tuple(actions.shape[:-1]),
            "termination_fn",
            _call("termination_fn", states, actions, next_states),
        )
        finite_inputs = _finite_rows(states) & _finite_rows(actions) & _finite_rows(next_states)
        self._flag_non_finite("termination_fn", probabilities, finite_inputs)
        detached = probabilities.detach()
        self._flag(_OUT_OF_RANGE, ((detached < 0) | (detached > 1)).any())
        alive = torch.cumprod(1 - probabilities, dim=-1)
        return torch.cat([torch.ones_like(alive[..., :1]), alive], dim=-1)

    def _flag_non_finite(self, name: str, output: Tensor, finite_inputs: Tensor) -> None:
        """Remember (on the device, no host sync) whether ``name`` returned NaN/inf on finite inputs."""
        self._flag(name, (finite_inputs & ~torch.isfinite(output.detach())).any())

    def _flag(self, key: str, bad: Tensor) -> None:
        """Accumulate the device flag ``bad`` (a bool scalar) under ``key`` (checked in ``_select``)."""
        previous = self._non_finite_outputs.get(key)
        self._non_finite_outputs[key] = bad if previous is None else previous | bad

    def predicted_return(self, states: Tensor, actions: Tensor, next_states: Tensor, final_states: Tensor) -> Tensor:
        """``Σ_t discount^t alive_t reward_fn(s_t, a_t, s_{t+1}) + discount^T alive_T terminal_value(s_T)``
        -> [...] (inputs as in :meth:`reward_terms`; ``alive`` from :meth:`survival`, all 1 without a
        ``termination_fn``; 0 without a reward or value)."""
        rewards, values = self.reward_terms(states, actions, next_states, final_states)
        alive = self.survival(states, actions, next_states)
        if alive is not None:
            rewards = None if rewards is None else rewards * alive[..., :-1]
            values = None if values is None else values * alive[..., -1]
        total = torch.zeros(actions.shape[:-2], device=actions.device, dtype=actions.dtype)
        horizon = int(actions.shape[-2])
        if rewards is not None:
            if self.discount == 1.0:
                total = total + rewards.sum(-1)
            else:
                weights = self.discount ** torch.arange(horizon, device=rewards.device, dtype=rewards.dtype)
                total = total + (rewards * weights).sum(-1)
        if values is not None:
            total = total + self.discount**horizon * values
        return total

    def clamp_actions(self, actions: Tensor) -> Tensor:
        """Clip actions to the bounds (out of place)."""
        return torch.maximum(torch.minimum(actions, self.action_high), self.action_low)

    def goal_reached(self, states: Tensor, goal: Tensor | None) -> Tensor:
        """Per problem: does any candidate's rollout end within ``goal_tolerance``? -> [N] bool."""
        if goal is None or self.config.goal_tolerance is None:
            return torch.zeros(states.shape[0], dtype=torch.bool, device=states.device)
        distance = (states[:, :, -1] - goal[:, None]).norm(dim=-1)
        return (distance <= self.config.goal_tolerance).any(dim=1)

    def should_stop(
        self,
        iteration: int,
        problem: Problem,
        actions: Tensor,
        candidates: Callable[[], tuple[Tensor, Tensor | None]] | None = None,
    ) -> bool:
        """Early-stop check every ``check_every`` iterations (one rollout, one host sync).

        A problem whose rollout of ``actions`` [N, B, T, A] reaches the goal is frozen: its
        candidates as ``_optimize`` would return them now (``candidates()`` -> (actions,
        virtual states or None); default ``actions``) replace the final ones. True once every
        problem is frozen.
        """
        if problem.goal is None or self.config.goal_tolerance is None:
            return False
        if (iteration + 1) % self.config.check_every != 0:
            return False
        with torch.no_grad():
            states = self.rollout(problem.start, actions)
            reached = self.goal_reached(states, problem.goal)
        tracker = self._early_stop
        if tracker is None:  # called outside _run (a subclass driving _optimize itself)
            return bool(reached.all())
        newly = reached & ~tracker.done
        if bool(newly.any()):
            frozen_actions, frozen_virtual = candidates() if candidates is not None else (actions, None)
            tracker.freeze(newly, iteration, frozen_actions, frozen_virtual)
        return bool(tracker.done.all())

    def randn(self, shape: Sequence[int]) -> Tensor:
        """[N, *shape] standard normal noise, row i from problem i's generator.

        One draw per problem (not per time step or candidate), so a problem's noise does not
        depend on the other problems in the batch; for N = 1 this is exactly one ``torch.randn``.
        """
        shape = tuple(int(size) for size in shape)
        out = torch.empty((len(self.generators), *shape), device=self.device)
        for row, generator in zip(out, self.generators):
            torch.randn(shape, generator=generator, device=self.device, out=row)
        return out

    def initial_actions(
        self, problem: Problem, num_candidates: int, action_noise: float = 0.0, warm_candidates: int | None = None
    ) -> Tensor:
        """[N, B, T, A]: the warm start for the first ``warm_candidates`` (default all), zeros for the
        rest (fresh starts keep the search from locking onto an old plan); Gaussian noise of std
        ``action_noise`` half action ranges on every candidate after the first."""
        shape = (problem.size, num_candidates, self.horizon, self.action_dim)
        actions = torch.zeros(shape, device=self.device)
        if problem.init is not None:
            warm = num_candidates if warm_candidates is None else max(1, min(num_candidates, warm_candidates))
            actions[:, :warm] = problem.init.actions[:, None]
        if action_noise > 0 and num_candidates > 1:
            noise = self.randn(shape[1:]) * (action_noise * (self.action_high - self.action_low) / 2)
            noise[:, 0] = 0.0
            actions = actions + noise
        return self.clamp_actions(actions)

    def iteration_budget(self, problem: Problem) -> int:
        """Iterations for this problem batch: the call's own budget if it gave one, else ``warm_iterations``
        with a warm start, else ``iterations``."""
        if problem.iterations is not None:
            return problem.iterations
        if problem.init is not None and self.config.warm_iterations is not None:  # resolved: set
            return self.config.warm_iterations
        return self.config.iterations

    @abstractmethod
    def _optimize(self, problem: Problem) -> Candidates:
        """Run the algorithm; return B candidates per problem (selection happens in the base)."""

    # ------------------------------------------------------------------ helpers
    def _with_frozen(self, candidates: Candidates) -> Candidates:
        """Swap in the candidates of problems that stopped early (see ``should_stop``)."""
        tracker = self._early_stop
        if tracker is None or tracker.actions is None or not bool(tracker.done.any()):
            return candidates
        done = tracker.done
        candidates.states = None  # the frozen candidates' rollouts are not at hand
        if bool(done.all()):
            candidates.early_stopped = True
        candidates.actions = torch.where(done[:, None, None, None], tracker.actions, candidates.actions.detach())
        if candidates.virtual_states is not None and tracker.virtual_states is not None:
            candidates.virtual_states = torch.where(
                done[:, None, None, None], tracker.virtual_states, candidates.virtual_states.detach()
            )
        return candidates

    def _freeze_solved_warm_starts(self, problem: Problem) -> bool:
        """Freeze (at iteration 0) the problems whose warm start already reaches the goal under the
        model; True if that is every problem, so there is nothing left to optimise."""
        tracker, init = self._early_stop, problem.init
        if not self.config.keep_solved_warm_start or init is None or tracker is None:
            return False
        if problem.goal is None or self.config.goal_tolerance is None:
            return False
        actions = self.clamp_actions(init.actions)[:, None]  # [N, 1, T, A]
        with torch.no_grad():
            reached = self.goal_reached(self.rollout(problem.start, actions), problem.goal)
        if bool(reached.any()):
            virtual = None if init.virtual_states is None else init.virtual_states[:, None]
            tracker.freeze(reached, -1, actions, virtual)
        return bool(reached.all())

    def _problem_seeds(self, seeds: Sequence[int] | None, size: int) -> tuple[int, ...]:
        """Validated per-problem seeds (default ``config.seed + i``)."""
        if seeds is None:
            return tuple(self.config.seed + index for index in range(size))
        if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
            raise ValueError(f"seeds must be a sequence of {size} integers, got {seeds!r}")
        if len(seeds) != size:
            raise ValueError(f"seeds has {len(seeds)} entries for {size} problems")
        if not all(is_integer_at_least(seed, 0) for seed in seeds):
            raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
        return tuple(int(seed) for seed in seeds)

    def _select(self, problem: Problem, candidates: Candidates) -> PlanResult:
        """Roll every candidate out through the model and keep the cheapest per problem."""
        with torch.no_grad():
            actions = self.clamp_actions(candidates.actions.detach())
            states = candidates.states if candidates.states is not None else self.rollout(problem.start, actions)
            costs = self.trajectory_cost(states, actions, problem.goal)
            self._raise_on_non_finite_objective()
            finite = (
                torch.isfinite(costs)
                & torch.isfinite(states).flatten(2).all(-1)
                & torch.isfinite(actions).flatten(2).all(-1)
            )
            if not bool(finite.any(dim=1).all()):
                culprit = (
                    "the world model"
                    if self.reward_fn is None and self.terminal_value is None
                    else (
                        "the world model, or reward_fn / terminal_value / termination_fn (whose NaN/inf gradients "
                        "make the actions non-finite),"
                    )
                )
                raise PlanningError(
                    f"{self.name} planner: every candidate of some problem has a non-finite rollout cost or "
                    f"action; {culprit} returned NaN/inf (check the model and its inputs)"
                )
            costs_for_choice = torch.where(finite, costs, torch.full_like(costs, float("inf")))
            best = costs_for_choice.argmin(dim=1)
            rows = torch.arange(problem.size, device=self.device)
            virtual = None
            if candidates.virtual_states is not None:
                virtual = candidates.virtual_states.detach()[rows, best].cpu()
            reached = self.goal_reached(states[rows, best][:, None], problem.goal) if problem.goal is not None else None
            final_distance = (
                (states[rows, best, -1] - problem.goal).norm(dim=-1).cpu() if problem.goal is not None else None
            )
        info: dict[str, Any] = {
            "planner": self.name,
            "iterations": candidates.iterations,
            "early_stopped": candidates.early_stopped,
            "model_calls": self._model_calls,
            "model_transitions": self._model_transitions,
            "candidate_costs": costs.cpu(),
            "best_candidate": best.cpu(),
            "problem_iterations": self._problem_iterations(candidates.iterations, problem.size),
            "final_distance": final_distance,
            "reached_under_model": None if reached is None or self.config.goal_tolerance is None else reached.cpu(),
        }
        if self.reward_fn is not None or self.terminal_value is not None:
            with torch.no_grad():
                best_states, best_actions = states[rows, best], actions[rows, best]
                info["predicted_return"] = self.predicted_return(
                    best_states[:, :-1], best_actions, best_states[:, 1:], best_states[:, -1]
                ).cpu()
                alive = self.survival(best_states[:, :-1], best_actions, best_states[:, 1:])
                if alive is not None:
                    info["predicted_survival"] = alive[:, -1].cpu()  # [N]: alive_T of the chosen plan
        info.update({key: value.detach().cpu().numpy() for key, value in candidates.history.items()})
        return PlanResult(
            actions=actions[rows, best].cpu(),
            states=states[rows, best].cpu(),
            cost=costs[rows, best].cpu(),
            virtual_states=virtual,
            info=info,
        )

    def _raise_on_non_finite_objective(self) -> None:
        """A ``ValueError`` naming ``reward_fn`` / ``terminal_value`` / ``termination_fn`` if it returned NaN/inf on
        finite inputs (or ``termination_fn`` values outside [0, 1]) at any point of this plan (a sampling planner
        would otherwise quietly avoid those regions, and a gradient planner would turn its actions into NaN and
        blame the model)."""
        for name, flag in self._non_finite_outputs.items():
            if bool(flag) and name == _OUT_OF_RANGE:
                raise ValueError(_OUT_OF_RANGE_MESSAGE + " (for finite states and actions during planning)")
            if bool(flag):
                raise ValueError(
                    f"{name} returned NaN or inf for finite states and actions during planning; it must return finite "
                    "values (e.g. clamp its inputs or its output)"
                )

    def _problem_iterations(self, iterations: int, size: int) -> Tensor:
        """[N] iterations each problem ran before it was frozen by early stopping."""
        tracker = self._early_stop
        if tracker is None:
            return torch.full((size,), iterations, dtype=torch.long)
        return torch.where(
            tracker.done, tracker.stop_iteration, torch.full_like(tracker.stop_iteration, iterations)
        ).cpu()

    def _bounds(self, low: Any, high: Any) -> tuple[Tensor, Tensor]:
        """Action bounds as [A] tensors: a scalar broadcasts, a vector must have A = model.action_dim entries."""
        bounds = []
        for value, name in ((low, "action_low"), (high, "action_high")):
            tensor = as_float_tensor(value, name, device=self.device)
            if tensor.ndim > 1 or (tensor.ndim == 1 and tensor.shape[0] not in (1, self.action_dim)):
                raise ValueError(
                    f"{name} has shape {tuple(tensor.shape)} but the world model's action_dim is {self.action_dim}: "
                    f"expected a scalar or shape ({self.action_dim},) (is the action space the model's env's?)"
                )
            bounds.append(tensor.expand(self.action_dim).clone())
        low_t, high_t = bounds
        if bool((low_t >= high_t).any()):
            raise ValueError(
                f"action_low must be < action_high elementwise, got {low_t.tolist()} and {high_t.tolist()}"
            )
        return low_t, high_t

    def _validate_init(self, init: PlanInit | PlanResult | Tensor, batched: bool) -> PlanInit:
        """Check a warm start's shapes; accept a PlanInit, a previous PlanResult or bare actions."""
        if isinstance(init, PlanResult):
            init = PlanInit(init.actions, init.virtual_states, init.info.get("state_scale"))
        elif not isinstance(init, PlanInit):
            init = PlanInit(actions=init)
        lead = (None,) if batched else ()
        actions = as_float_tensor(
            init.actions,
            "init.actions",
            device=self.device,
            allowed_ndims=(len(lead) + 2,),
            trailing_shape=(self.horizon, self.action_dim),
        )
        virtual = None
        if init.virtual_states is not None:
            virtual = as_float_tensor(
                init.virtual_states,
                "init.virtual_states",
                device=self.device,
                allowed_ndims=(len(lead) + 2,),
                trailing_shape=(self.num_virtual_states, self.state_dim),
            )
        scale = None
        if init.state_scale is not None:
            scale = as_float_tensor(
                init.state_scale,
                "init.state_scale",
                device=self.device,
                allowed_ndims=(len(lead) + 1,),
                trailing_shape=(self.state_dim,),
            )
            if not bool((scale > 0).all()):
                raise ValueError("init.state_scale must be positive")
        if not batched:
            actions = actions[None]
            virtual = None if virtual is None else virtual[None]
            scale = None if scale is None else scale[None]
        return PlanInit(actions=self.clamp_actions(actions), virtual_states=virtual, state_scale=scale)

    def _expand_init(self, init: PlanInit, size: int) -> PlanInit:
        if init.actions.shape[0] not in (1, size):
            raise ValueError(f"init.actions has {init.actions.shape[0]} rows for {size} problems")
        actions = init.actions.to(self.device).expand(size, -1, -1)
        virtual = None if init.virtual_states is None else init.virtual_states.to(self.device).expand(size, -1, -1)
        scale = None if init.state_scale is None else init.state_scale.to(self.device).expand(size, -1)
        return PlanInit(actions=actions, virtual_states=virtual, state_scale=scale)

    @property
    def num_virtual_states(self) -> int:
        """Intermediate states s_1..s_{T-1} (s_T is the goal)."""
        return self.horizon - 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(horizon={self.horizon}, config={self.config})"


_PER_PROBLEM_INFO = {
    "candidate_costs",
    "best_candidate",
    "final_distance",
    "reached_under_model",
    "problem_iterations",
    "predicted_return",
    "predicted_survival",
    "state_scale",
}

_OUT_OF_RANGE = "termination_fn outside [0, 1]"
"""The flag key (in ``Planner._non_finite_outputs``) of termination probabilities outside [0, 1]."""
_OUT_OF_RANGE_MESSAGE = (
    "termination_fn returned values outside [0, 1]; it must return probabilities (e.g. torch.sigmoid of a logit)"
)


def _call(name: str, states: Tensor, actions: Tensor, next_states: Tensor) -> str:
    """How a step callable was called, for error messages: ``name(state (..), action (..), next_state (..))``."""
    return f"{name}(state {tuple(states.shape)}, action {tuple(actions.shape)}, next_state {tuple(next_states.shape)})"


def _finite_rows(values: Tensor) -> Tensor:
    """[...] bool: whether every entry along the last dim of ``values`` [..., D] is finite."""
    return torch.isfinite(values.detach()).all(-1)


def _check_objective_output(value: Any, expected: tuple[int, ...], name: str, call: str) -> None:
    """A ``ValueError`` naming ``name`` unless ``value`` is a float tensor of shape ``expected``."""
    if not isinstance(value, Tensor):
        raise ValueError(
            f"{name} must return a torch.Tensor of shape {expected} (one value per step), got {type(value).__name__} from {call}"
        )
    if tuple(value.shape) != expected:
        hint = " (drop the trailing 1: .squeeze(-1))" if tuple(value.shape) == (*expected, 1) else ""
        raise ValueError(
            f"{name} must return one value per step, shape {expected} (the leading shape of its inputs), "
            f"got shape {tuple(value.shape)} from {call}{hint}"
        )
    if not value.is_floating_point():
        raise ValueError(f"{name} must return floating-point values, got dtype {value.dtype} from {call}")


def _check_iterations(iterations: Any) -> int | None:
    """A call's iteration budget: None or an integer >= 1."""
    if iterations is None:
        return None
    if not is_integer_at_least(iterations, 1):
        raise ValueError(f"iterations must be an integer >= 1 or None, got {iterations!r}")
    return int(iterations)
