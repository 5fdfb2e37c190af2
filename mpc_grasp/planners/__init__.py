"""Planners behind one interface: ``make_planner(name, model, horizon, **config).plan(state, goal)``."""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc_grasp.models.base import check_action_space
from mpc_grasp.planners.base import (
    PlanInit,
    Planner,
    PlannerConfig,
    PlanningError,
    PlanResult,
    config_from_kwargs,
)
from mpc_grasp.planners.cem import CEMConfig, CEMPlanner
from mpc_grasp.planners.gd import GDConfig, GDPlanner
from mpc_grasp.planners.grasp import GraspConfig, GraspPlanner
from mpc_grasp.planners.icem import ICEMConfig, ICEMPlanner
from mpc_grasp.planners.mppi import MPPIConfig, MPPIPlanner

PLANNERS: dict[str, type[Planner]] = {
    "grasp": GraspPlanner,
    "cem": CEMPlanner,
    "icem": ICEMPlanner,
    "mppi": MPPIPlanner,
    "gd": GDPlanner,
}

_PLANNER_KWARGS = (
    "action_low",
    "action_high",
    "state_weights",
    "state_scale",
    "dense_goal_weight",
    "running_cost",
    "reward_fn",
    "terminal_value",
    "termination_fn",
    "discount",
    "device",
    "callback",
)


def make_planner(
    name: str,
    model: Any,
    horizon: int,
    *,
    action_space: Any = None,
    config: PlannerConfig | None = None,
    **options: Any,
) -> Planner:
    """Build planner ``name`` ("grasp" | "cem" | "icem" | "mppi" | "gd") for ``model`` and ``horizon``.

    ``options`` mixes config fields (e.g. ``iterations=200, num_candidates=8``) with planner
    arguments (``action_low``, ``action_high``, ``state_weights``, ``state_scale``, ``dense_goal_weight``,
    ``running_cost``, ``reward_fn``, ``terminal_value``, ``termination_fn``, ``discount``, ``device``, ``callback``).
    ``action_space`` (a Gymnasium Box) sets the bounds.
    """
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; choose one of {sorted(PLANNERS)}")
    planner_class = PLANNERS[name]
    planner_kwargs = {key: options.pop(key) for key in _PLANNER_KWARGS if key in options}
    if action_space is not None:
        low, high = getattr(action_space, "low", None), getattr(action_space, "high", None)
        if low is None or high is None:
            raise ValueError(f"action_space must be a bounded Box, got {action_space!r}")
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("action_space must have finite bounds for planning")
        check_action_space(action_space, model)
        planner_kwargs.setdefault("action_low", low)
        planner_kwargs.setdefault("action_high", high)
    if config is None:
        config = config_from_kwargs(planner_class.config_class, options)
    elif options:
        raise TypeError(f"pass either config or config options, not both (got {sorted(options)})")
    return planner_class(model, horizon, config, **planner_kwargs)


__all__ = [
    "PLANNERS",
    "CEMConfig",
    "CEMPlanner",
    "GDConfig",
    "GDPlanner",
    "GraspConfig",
    "GraspPlanner",
    "ICEMConfig",
    "ICEMPlanner",
    "MPPIConfig",
    "MPPIPlanner",
    "PlanInit",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "PlanningError",
    "make_planner",
]
