"""mpc_grasp: control Gymnasium environments with a learned world model and GRASP planning.

Importing the package registers its Gymnasium environments (``mpc_grasp/GridWorld-v0``, ...).
"""

from __future__ import annotations

from mpc_grasp import envs as _envs  # noqa: F401  (registers the Gymnasium ids)
from mpc_grasp.models.base import WorldModel
from mpc_grasp.planners import PlanInit, PlanResult, Planner, PlanningError, make_planner

__version__ = "0.1.0"

__all__ = [
    "PlanInit",
    "PlanResult",
    "Planner",
    "PlanningError",
    "WorldModel",
    "__version__",
    "make_planner",
]
