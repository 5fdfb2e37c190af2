"""mpc_grasp: control Gymnasium environments with a learned world model and GRASP planning.

Importing the package registers its Gymnasium environments (``mpc_grasp/GridWorld-v0``, ...).
"""

from __future__ import annotations

from mpc_grasp import envs as _envs  # noqa: F401  (registers the Gymnasium ids)
from mpc_grasp.control.agent import GraspMPC
from mpc_grasp.data import (
    CollectionConfig,
    TransitionDataset,
    collect_transitions,
    collect_transitions_parallel,
    load_dataset,
)
from mpc_grasp.models import (
    MLPWorldModel,
    TrainingConfig,
    WorldModel,
    load_world_model,
    save_world_model,
    train_world_model,
)
from mpc_grasp.planners import PlanInit, Planner, PlanningError, PlanResult, make_planner

__version__ = "0.1.0"

__all__ = [
    "CollectionConfig",
    "GraspMPC",
    "MLPWorldModel",
    "PlanInit",
    "PlanResult",
    "Planner",
    "PlanningError",
    "TrainingConfig",
    "TransitionDataset",
    "WorldModel",
    "__version__",
    "collect_transitions",
    "collect_transitions_parallel",
    "load_dataset",
    "load_world_model",
    "make_planner",
    "save_world_model",
    "train_world_model",
]
