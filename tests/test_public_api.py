"""The public API is pinned: renaming or dropping a name here is a breaking change for users."""

from __future__ import annotations

import inspect

import mpc_grasp
import mpc_grasp.planners
from mpc_grasp import GraspMPC, make_planner
from mpc_grasp.planners import PLANNERS, Planner

PUBLIC = {
    "GraspMPC",
    "MLPWorldModel",
    "PlanInit",
    "PlanResult",
    "Planner",
    "PlanningError",
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
}

PLANNER_NAMES = {"grasp", "cem", "icem", "mppi", "gd"}
"""``make_planner`` / ``GraspMPC`` names (``icem`` added with issue 30)."""

PLANNER_EXPORTS = {
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
    "make_planner",
}


def test_top_level_names_are_exported_and_importable() -> None:
    assert set(mpc_grasp.__all__) >= PUBLIC
    for name in mpc_grasp.__all__:
        assert getattr(mpc_grasp, name) is not None


def test_the_entry_points_keep_their_signatures() -> None:
    assert list(inspect.signature(make_planner).parameters)[:3] == ["name", "model", "horizon"]
    agent = inspect.signature(GraspMPC)
    assert list(agent.parameters)[:5] == ["model", "planner", "horizon", "action_space", "goal"]
    assert list(inspect.signature(GraspMPC.predict).parameters) == [
        "self",
        "observation",
        "state",
        "episode_start",
        "deterministic",
    ]
    assert list(inspect.signature(Planner.plan).parameters)[:4] == ["self", "state", "goal", "init"]
    assert list(inspect.signature(Planner.plan_batch).parameters)[:5] == ["self", "states", "goals", "init", "seeds"]


def test_the_planner_names_and_their_configs_are_pinned() -> None:
    assert set(PLANNERS) == PLANNER_NAMES
    assert set(mpc_grasp.planners.__all__) >= PLANNER_EXPORTS
    for name in PLANNER_EXPORTS:
        assert getattr(mpc_grasp.planners, name) is not None
