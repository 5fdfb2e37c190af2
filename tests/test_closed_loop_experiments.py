"""Helpers of experiments/closed_loop.py (the runs themselves are too slow for tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def closed_loop():
    from bench.suites import agent_vs_rl  # the suite behind experiments/closed_loop.py

    return agent_vs_rl


def test_closed_loop_options_per_env_and_flag_overrides(closed_loop) -> None:
    args = closed_loop.parse_args(
        [
            "--set",
            "dense_goal_weight=0.1",
            "--set",
            "cartpole:state_weights=[1,1,2,2,1]",
            "--set",
            "cartpole:dense_goal_weight=0.5",
            "--horizon",
            "30",
        ]
    )
    wall = closed_loop.agent_settings("wall_across", args)
    cart = closed_loop.agent_settings("cartpole", args)
    assert wall.horizon == cart.horizon == 30 and wall.goal_tolerance == 0.3 and cart.goal_tolerance is None
    assert dict(wall.options) == {"dense_goal_weight": 0.1}
    assert dict(cart.options) == {"dense_goal_weight": 0.5, "state_weights": [1, 1, 2, 2, 1]}
    with pytest.raises(SystemExit):
        closed_loop.parse_args(["--set", "nosuchenv:x=1"])
    quick = closed_loop.parse_args(["--quick"])
    assert quick.grid_steps == 2_000 and quick.n_eval == 2 and quick.horizon == 20
