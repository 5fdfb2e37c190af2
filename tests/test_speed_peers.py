"""The speed suite's peer comparison (issue 32): pytorch_mppi beside GraspMPC on the same model and objective."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bench.suites import speed
from bench.suites.peers import PEER, PytorchMPPIAgent, peer_row

ROW_FIELDS = {
    "problem",
    "planner",
    "controller",
    "options",
    "objective",
    "horizon",
    "threads",
    "episodes",
    "successes",
    "success_rate",
    "episode_returns",
    "mean_return",
    "median_ms_per_step",
}


@pytest.mark.parametrize("problem", ["cartpole", "wall"])
def test_a_peer_row_runs_a_few_closed_loop_steps(problem: str) -> None:
    pytest.importorskip("pytorch_mppi", reason="needs the peers extra: pip install 'mpc-grasp[peers]'")
    row = peer_row(
        problem, PEER, horizon=5, episodes=1, max_steps=3, num_samples=16, lambda_=1.0, noise_sigma=0.25, threads=1
    )
    assert set(row) >= ROW_FIELDS and row["controller"] == PEER
    assert row["env_steps"] == 3 and row["median_ms_per_step"] > 0 and len(row["episode_returns"]) == 1
    assert row["objective"] == ("reward" if problem == "cartpole" else "goal")
    assert row["options"] == {"num_samples": 16, "lambda_": 1.0, "noise_sigma": 0.25}


def test_the_peer_weighs_the_goal_as_graspmpc_does() -> None:
    """Same objective on the grid world: the peer's goal weights are GraspMPC's 1 / scale² of the episode's start."""
    pytest.importorskip("pytorch_mppi", reason="needs the peers extra: pip install 'mpc-grasp[peers]'")
    from bench.suites.peers import _problem

    from mpc_grasp.control.agent import GraspMPC

    env, model, _, _ = _problem("wall", "cpu", "exact", "across")
    obs, _ = env.reset(seed=0)
    agent = GraspMPC(model, "mppi", horizon=5, action_space=env.action_space, seed=0, iterations=1)
    agent.predict(obs)
    assert agent.last_plan is not None
    peer = PytorchMPPIAgent(model, env.action_space, horizon=5, num_samples=8, lambda_=1.0, noise_sigma=0.25)
    peer.reset()
    peer.predict(obs)
    assert peer._weights is not None
    torch.testing.assert_close(peer._weights, agent.last_plan.info["state_scale"][0].pow(-2))


def test_the_speed_suite_reports_peer_rows_with_their_fields(tmp_path: Path) -> None:
    config = speed.SpeedConfig(
        planners=("grasp",),
        horizons=(3,),
        steps=2,
        candidates=(2,),
        iterations=1,
        threads=1,
        out_dir=tmp_path,
        peer_planners=("grasp",),
        peer_samples=(8,),
        peer_lambdas=(1.0,),
        peer_horizon=3,
        peer_episodes=1,
        peer_steps=2,
    )
    report = speed.run_speed(config, "tiny")
    rows = report["peer_rows"]
    installed = report["peer_missing"] is None
    expected = {(p, c) for p in ("cartpole", "wall") for c in ("GraspMPC grasp", *((PEER,) if installed else ()))}
    assert {(row["problem"], row["controller"]) for row in rows} == expected
    assert all(set(row) >= ROW_FIELDS and row["threads"] == 1 and row["median_ms_per_step"] > 0 for row in rows)
    assert all(row["episodes"] == 1 and row["horizon"] == 3 for row in rows)
    stored = json.loads((tmp_path / "speed.json").read_text())
    assert stored["peer_rows"] == rows and stored["peer_settings"]["samples"] == [8]
    text = (tmp_path / "speed.md").read_text()
    assert "pytorch_mppi" in text and "median ms per step" in text and (tmp_path / "speed.png").exists()


def test_without_pytorch_mppi_the_graspmpc_rows_run_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed, "peer_available", lambda: False)
    units, missing = speed._peer_units(speed.SpeedConfig(peer_planners=("grasp", "cem")))
    assert missing is not None and "peers" in missing
    assert [(unit.key["problem"], unit.key["planner"]) for unit in units] == [
        ("cartpole", "grasp"),
        ("cartpole", "cem"),
        ("wall", "grasp"),
        ("wall", "cem"),
    ]
    with pytest.raises(ValueError, match="peer problem"):
        speed.SpeedConfig(peer_problems=("maze",))
