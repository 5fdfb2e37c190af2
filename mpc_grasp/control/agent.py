"""``GraspMPC``: a receding-horizon agent around any planner, usable like a stable-baselines3 policy.

Each control step: encode the observation with the world model, plan toward the goal (warm-started
from the previous plan shifted by the steps already executed), return the first action clipped to
the action space. Observations may be single or batched (a Gymnasium/SB3 vector env): all envs are
planned in ONE batched planner call. A world model with a history of k > 1 observations
(:func:`~mpc_grasp.models.base.history_length`) gets the stack of each env's last k observations.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mpc_grasp.models.base import (
    check_action_space,
    check_world_model,
    encode_observation,
    history_length,
    model_device,
)
from mpc_grasp.planners import Planner, PlannerConfig, PlanningError, PlanResult, make_planner
from mpc_grasp.validation import as_float_tensor, is_integer_at_least

DEFAULT_DENSE_GOAL_WEIGHT = 0.1
"""The agent's default ``dense_goal_weight``: weight of the mean distance to the goal along the plan. A
terminal-only cost lets receding-horizon MPC dawdle (every replan can still arrive at step T). See
docs/decisions.md#default_dense_goal_weight."""


@dataclass(frozen=True)
class StepDiagnostics:
    """What one control step's planning did (kept in ``GraspMPC.diagnostics``)."""

    step: int
    replanned: bool
    wall_time: float
    iterations: int
    cost: float
    final_distance: float | None
    warm_started: bool


@dataclass(frozen=True)
class MPCSchedule:
    """When :class:`GraspMPC` replans and how many iterations each plan runs: the one place that decides a
    control step's planning budget.

    ``replan_every`` k executes k planned steps between plans; ``replan_threshold`` (state units) replans early
    once the observed state is farther than this from the planned one; ``warm_start`` starts a replan from the
    previous plan shifted by the steps executed. ``cold_iterations`` / ``warm_iterations``: the iterations of a
    plan without / with a warm start.
    """

    replan_every: int = 1
    replan_threshold: float | None = None
    warm_start: bool = True
    cold_iterations: int = 100
    warm_iterations: int = 100

    def __post_init__(self) -> None:
        if not is_integer_at_least(self.replan_every, 1):
            raise ValueError(f"replan_every must be an integer >= 1, got {self.replan_every!r}")
        if self.replan_threshold is not None and not self.replan_threshold > 0:
            raise ValueError(f"replan_threshold must be > 0 or None, got {self.replan_threshold}")
        for name in ("cold_iterations", "warm_iterations"):
            if not is_integer_at_least(getattr(self, name), 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")

    @classmethod
    def for_planner(
        cls,
        config: PlannerConfig,
        *,
        replan_every: int = 1,
        replan_threshold: float | None = None,
        warm_start: bool = True,
        amortise_warm: bool = True,
    ) -> MPCSchedule:
        """The schedule of a planner with this (resolved) config. Replanning every step with warm starts, a cold
        plan opens an episode and runs ``first_plan_iterations`` (it gives one action; warm plans refine it from
        the next step on); otherwise a cold plan runs ``iterations``. With ``replan_every > 1`` and
        ``amortise_warm`` a warm plan serves several steps and runs twice ``warm_iterations`` (at most
        ``iterations``). See docs/decisions.md#mpcschedule."""
        cold, warm = config.iterations, config.warm_iterations or config.iterations
        if replan_every == 1 and warm_start:
            cold = config.first_plan_iterations or cold
        if replan_every > 1 and amortise_warm:
            warm = min(config.iterations, 2 * warm)
        return cls(replan_every, replan_threshold, warm_start, cold, warm)

    def iterations(self, warm_started: bool) -> int:
        """The budget of the next plan."""
        return self.warm_iterations if warm_started else self.cold_iterations


class GraspMPC:
    """Model-predictive control with a gradient-based (or sampling) planner.

    ``replan_every=1`` is classic MPC. With a goal-only cost the plan has slack (it may wait, e.g.
    pressed against a wall, and still arrive by step T), and replanning every step keeps
    re-deferring the detour; ``replan_every=k`` executes k planned steps, and ``replan_threshold``
    replans early as soon as the observed state leaves the planned one by more than that distance.

    Everything in ``planner_options`` goes to ``make_planner`` unchanged: any field of the planner's
    config in the shared vocabulary (``iterations``, ``warm_iterations``, ``num_candidates``,
    ``action_noise``, ``lr_actions``, ``goal_tolerance``, ``seed``, and the planner's own, e.g.
    GRASP's ``noise_scale``) or a planner argument (``state_weights``,
    ``running_cost``, ``dense_goal_weight``, ``reward_fn``, ``terminal_value``, ``termination_fn``, ``discount``:
    with ``reward_fn=model.reward`` the agent maximises the predicted return and needs no goal, and with
    ``termination_fn=model.termination_probability`` that of an episode that may end). The agent adds
    ``action_space`` (bounds), ``device``, ``seed`` when an int is given, and ``dense_goal_weight`` =
    :data:`DEFAULT_DENSE_GOAL_WEIGHT` unless set. Each plan's iteration budget comes from ``agent.schedule``
    (:class:`MPCSchedule`: the opening plan of an every-step episode, warm replans, plans serving several steps).

    Goals, in order of precedence: ``goal`` (a state vector) or ``goal_observation`` (encoded by
    the model) given here or via ``set_goal``; else the env's own goal read from dict observations
    under ``goal_key`` (encoded like observations). ``predict`` follows stable-baselines3, so
    ``evaluate_policy(agent, env)`` works unchanged.

    History models (``history_length(model) = k > 1``, e.g. ``PixelWorldModel(history=k)``): the agent keeps the
    last k observations of each env (``reset`` clears them, and so does ``episode_start`` for the envs it flags);
    the first observation of an episode is repeated k times. Observations and goal observations stay single
    frames: the agent stacks them (a goal observation repeated k times) before ``model.encode``. Batches (vector
    envs) are told from single observations by the model's ``observation_shape`` (or ``image_shape``). A vector
    env that resets an env by itself without ``episode_start`` mixes two episodes in that env's history for k - 1
    steps.
    """

    def __init__(
        self,
        model: Any,
        planner: str | Planner = "grasp",
        horizon: int = 50,
        action_space: Any = None,
        goal: Any = None,
        *,
        goal_observation: Any = None,
        replan_every: int = 1,
        replan_threshold: float | None = None,
        warm_start: bool = True,
        warm_start_fill: str = "repeat",
        obs_key: str = "observation",
        goal_key: str = "desired_goal",
        device: str | torch.device | None = None,
        seed: int | Sequence[int] | None = None,
        **planner_options: Any,
    ) -> None:
        check_world_model(model)
        self.history = history_length(model)
        """Observations per encoded state (the model's history k; 1 for most models)."""
        self._frame_shape = _observation_shape(model)
        self._frames: list[deque[Any]] = []
        self._seeds = _check_seed(seed)
        MPCSchedule(replan_every, replan_threshold, warm_start)  # bad replan settings fail before any compute
        if warm_start_fill not in ("repeat", "zero"):
            raise ValueError(f"warm_start_fill must be 'repeat' or 'zero', got {warm_start_fill!r}")
        if action_space is None:
            raise ValueError("action_space is required (a bounded gymnasium.spaces.Box): actions are clipped to it")
        check_action_space(action_space, model)
        self.model = model
        self.device = torch.device(device) if device is not None else model_device(model)
        if isinstance(planner, Planner):
            if planner_options:
                raise TypeError(f"planner options {sorted(planner_options)} given with a ready-made planner")
            self.planner = planner
        else:
            if isinstance(self._seeds, int):
                planner_options["seed"] = self._seeds
            planner_options.setdefault("dense_goal_weight", DEFAULT_DENSE_GOAL_WEIGHT)
            self.planner = make_planner(
                planner, model, horizon, action_space=action_space, device=self.device, **planner_options
            )
        self.horizon = self.planner.horizon
        self.action_space = action_space
        self._low = np.asarray(action_space.low, dtype=np.float32)
        self._high = np.asarray(action_space.high, dtype=np.float32)
        own_warm_budget = isinstance(planner, Planner) or {"warm_iterations", "config"} & set(planner_options)
        self.schedule = MPCSchedule.for_planner(
            self.planner.config,
            replan_every=int(replan_every),
            replan_threshold=replan_threshold,
            warm_start=warm_start,
            amortise_warm=not own_warm_budget,
        )
        """When the agent replans and each plan's iterations (from the planner's resolved config)."""
        self.warm_start_fill = warm_start_fill
        self.obs_key = obs_key
        self.goal_key = goal_key
        self._goal: Tensor | None = None
        self.set_goal(goal, goal_observation)
        self.diagnostics: list[StepDiagnostics] = []
        self.last_plan: PlanResult | None = None
        self.reset()

    # ------------------------------------------------------------------ public API
    def set_goal(self, goal: Any = None, goal_observation: Any = None) -> None:
        """Fix the goal as a state vector, or as an observation to encode; both None = use the env's goal."""
        if goal is not None and goal_observation is not None:
            raise ValueError("give goal or goal_observation, not both")
        if goal is not None:
            self._goal = as_float_tensor(
                goal, "goal", device=self.device, trailing_shape=(self.planner.state_dim,), allowed_ndims=(1, 2)
            )
        elif goal_observation is not None:
            self._goal = self._encode_goal(goal_observation, "goal_observation")
        else:
            self._goal = None

    def reset(self) -> None:
        """Start a new episode: drop the warm start, the step counter and the observation history."""
        self._plan: PlanResult | None = None
        self._steps_since_plan = 0
        self._step = 0
        self._frames = []

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Return ``(action, None)`` for one observation or a batch of them (SB3 policy protocol)."""
        if episode_start is not None and bool(np.any(episode_start)):
            kept = self._frames
            self.reset()
            self._frames = _surviving_histories(kept, episode_start, self.history)
        current, env_goal = self._split_observation(observation)
        if self.history > 1:
            current = self._stack_history(current)
        latent = self._encode(current, "observation")
        batched = latent.ndim == 2
        latent = latent if batched else latent[None]
        goal = self._resolve_goal(env_goal, latent.shape[0])

        if self._needs_replan(latent):
            self._replan(latent, goal)
        assert self._plan is not None
        actions = self._plan.actions[:, self._steps_since_plan].numpy()
        self._steps_since_plan += 1
        self._step += 1
        if not np.isfinite(actions).all():
            raise PlanningError(f"planner returned non-finite actions at step {self._step}: {actions}")
        actions = np.clip(actions, self._low, self._high).astype(self.action_space.dtype)
        return (actions if batched else actions[0]), None

    __call__ = predict

    # ------------------------------------------------------------------ internals
    def _needs_replan(self, latent: Tensor) -> bool:
        """Replan with no plan, every ``replan_every`` steps, or when reality left the plan."""
        if self._plan is None or self._plan.actions.shape[0] != latent.shape[0]:
            return True
        if self._steps_since_plan >= min(self.schedule.replan_every, self.horizon):
            return True
        threshold = self.schedule.replan_threshold
        if threshold is not None:
            expected = self._plan.states[:, self._steps_since_plan].to(latent.device)
            return bool(((latent - expected).norm(dim=-1) > threshold).any())
        return False

    def _replan(self, latent: Tensor, goal: Tensor | None) -> None:
        init = None
        if self.schedule.warm_start and self._plan is not None and self._steps_since_plan < self.horizon:
            init = self._plan.shifted(self._steps_since_plan, fill=self.warm_start_fill)
        iterations = self.schedule.iterations(warm_started=init is not None)
        result = self.planner.plan_batch(
            latent, goal, init=init, seeds=self._env_seeds(latent.shape[0]), iterations=iterations
        )
        self._plan = result
        self._steps_since_plan = 0
        self.last_plan = result
        final = result.info.get("final_distance")
        self.diagnostics.append(
            StepDiagnostics(
                step=self._step,
                replanned=True,
                wall_time=float(result.info["wall_time"]),
                iterations=int(result.info["iterations"]),
                cost=float(result.cost.mean()),
                final_distance=None if final is None else float(final.mean()),
                warm_started=init is not None,
            )
        )

    def _env_seeds(self, count: int) -> list[int] | None:
        """Per-env planner seeds: ``seed + i`` for an int seed, the given list, or the planner default."""
        if self._seeds is None:
            return None
        if isinstance(self._seeds, int):
            return [self._seeds + index for index in range(count)]
        if len(self._seeds) != count:
            raise ValueError(f"seed lists {len(self._seeds)} per-env seeds but the observation batch has {count} envs")
        return list(self._seeds)

    def _split_observation(self, observation: Any) -> tuple[Any, Any]:
        """(current observation, env goal or None) from a plain or GoalEnv-style dict observation."""
        if isinstance(observation, dict):
            if self.obs_key not in observation:
                raise ValueError(
                    f"dict observation has no key {self.obs_key!r} (keys: {sorted(observation)}); set obs_key"
                )
            return observation[self.obs_key], observation.get(self.goal_key)
        return observation, None

    def _is_batch(self, frames: Any, name: str) -> bool:
        """Whether ``frames`` is a batch of observations ``[n_envs, *observation_shape]`` (history models)."""
        if self._frame_shape is None:
            return False
        shape = tuple(frames.shape)
        if shape == self._frame_shape:
            return False
        if len(shape) == len(self._frame_shape) + 1 and shape[1:] == self._frame_shape:
            return True
        raise ValueError(
            f"{name} has shape {shape}; the model (history {self.history}) expects one observation "
            f"{self._frame_shape} or a batch [n_envs, *{self._frame_shape}]"
        )

    def _stack_history(self, observation: Any) -> Any:
        """Record ``observation`` (one or a batch) in each env's history and return the stacks of the last
        k observations, oldest first: ``[k, *obs]`` or ``[n_envs, k, *obs]``."""
        frames = _as_frames(observation, self.obs_key)
        batched = self._is_batch(frames, "observation")
        per_env = list(frames) if batched else [frames]
        if len(per_env) != len(self._frames):  # first step, or the number of envs changed: start afresh
            self._frames = [deque(maxlen=self.history) for _ in per_env]
        for history, frame in zip(self._frames, per_env):
            history.extend([frame] * (self.history if not history else 1))
        stacks = [_stack(list(history)) for history in self._frames]
        return _stack(stacks) if batched else stacks[0]

    def _encode_goal(self, observation: Any, name: str) -> Tensor:
        """Encode a goal observation (one or a batch); a history model gets it repeated k times."""
        if self.history > 1:
            frames = _as_frames(observation, self.obs_key)
            axis = 1 if self._is_batch(frames, name) else 0
            repeated = [frames] * self.history
            observation = torch.stack(repeated, axis) if isinstance(frames, Tensor) else np.stack(repeated, axis)
        return self._encode(observation, name)

    def _encode(self, observation: Any, name: str) -> Tensor:
        is_float = isinstance(observation, np.ndarray) and observation.dtype != np.uint8
        if is_float and not np.isfinite(observation).all():
            raise ValueError(f"{name} contains NaN or inf values")
        with torch.no_grad():
            latent = encode_observation(self.model, observation, device=self.device)
        if latent.ndim not in (1, 2) or latent.shape[-1] != self.planner.state_dim:
            raise ValueError(
                f"{name} encodes to shape {tuple(latent.shape)}; expected [{self.planner.state_dim}] or "
                f"[n_envs, {self.planner.state_dim}] (state_dim of the model)"
            )
        if not bool(torch.isfinite(latent).all()):
            raise ValueError(f"{name} encodes to non-finite values (the model's encoder returned NaN/inf)")
        return latent.float()

    def _resolve_goal(self, env_goal: Any, count: int) -> Tensor | None:
        goal = self._goal
        if goal is None and env_goal is not None:
            goal = self._encode_goal(env_goal, "goal (from the observation)")
        if goal is None:
            if not self.planner.goal_optional:
                raise ValueError(
                    "no goal: pass goal=/goal_observation= (or set_goal), use a goal-conditioned env with "
                    f"dict observations carrying {self.goal_key!r}, or give the planner a running_cost, "
                    "reward_fn or terminal_value"
                )
            return None
        goal = goal if goal.ndim == 2 else goal[None]
        if goal.shape[0] == 1 and count > 1:
            goal = goal.expand(count, -1)
        if goal.shape[0] != count:
            raise ValueError(f"goal has {goal.shape[0]} rows for {count} observations")
        return goal


def _observation_shape(model: Any) -> tuple[int, ...] | None:
    """One observation's shape as the model declares it (``observation_shape``, else ``image_shape``), or None."""
    shape = getattr(model, "observation_shape", None)
    if shape is None:
        shape = getattr(model, "image_shape", None)
    return None if shape is None else tuple(int(size) for size in shape)


def _as_frames(observation: Any, obs_key: str) -> Any:
    """A private copy of an observation (array or tensor; a dict's ``obs_key`` entry) to keep in a history."""
    if isinstance(observation, Mapping):
        if obs_key not in observation:
            raise ValueError(f"dict observation has no key {obs_key!r} (keys: {sorted(observation)}); set obs_key")
        observation = observation[obs_key]
    if isinstance(observation, Tensor):
        return observation.detach().clone()
    return np.array(observation, copy=True)


def _stack(items: list[Any]) -> Any:
    """Stack frames (all tensors: ``torch.stack``; else ``np.stack``) along a new first axis."""
    if all(isinstance(item, Tensor) for item in items):
        return torch.stack(items)
    return np.stack([np.asarray(item.cpu() if isinstance(item, Tensor) else item) for item in items])


def _surviving_histories(kept: list[deque[Any]], episode_start: Any, history: int) -> list[deque[Any]]:
    """The observation histories after ``episode_start`` (SB3: one flag per env): the flagged envs' cleared,
    the others' kept; all cleared when the flags do not match the envs."""
    starts = np.asarray(episode_start, dtype=bool).reshape(-1)
    if len(starts) != len(kept):
        return []
    return [deque(maxlen=history) if start else frames for start, frames in zip(starts, kept)]


def _check_seed(seed: Any) -> int | list[int] | None:
    """``None``, a non-negative int, or a non-empty sequence of them (one per env)."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        return int(seed)
    if isinstance(seed, (list, tuple, np.ndarray)) and len(seed) > 0:
        values = list(seed)
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values):
            return [int(v) for v in values]
    raise ValueError(f"seed must be a non-negative int or a non-empty list of them (one per env), got {seed!r}")
