"""The field's protocol on pixel Point-Maze (bench.suites.paper_protocol) at a tiny scale: pairs, cells, report."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="needs the robotics extra: pip install 'mpc-grasp[robotics]'")
pytest.importorskip("minari", reason="needs the minari extra: pip install 'mpc-grasp[minari]'")

from bench.suites import paper_protocol as pp  # noqa: E402

TINY = {
    "episodes": 2,
    "train_episodes": 3,
    "planners": ("grasp_paper",),
    "pixel_training": (("iterations", 4), ("dynamics_iterations", 4), ("batch_size", 4)),
    "state_training": (("epochs", 2),),
    "progress": False,
}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    return pp.ProtocolConfig(cache=root / "cache", out_dir=root / "out", **TINY)


def test_pairs_come_from_held_out_trajectories_and_no_start_already_succeeds(config) -> None:
    pairs, redraws = pp.eval_pairs("pointmaze_umaze", 25, config)
    assert len(pairs) == config.episodes and redraws >= 0
    for pair in pairs:
        gap = np.linalg.norm(np.subtract(pair["start_state"][:2], pair["goal_state"][:2]))
        assert gap > pp.SUCCESS_RADIUS
        assert pair["start_frame"].shape == pair["goal_frame"].shape == (pp.IMAGE_SIZE, pp.IMAGE_SIZE, 3)
    again, _ = pp.eval_pairs("pointmaze_umaze", 25, config)  # cached data, seeded draws: the same pairs
    assert [p["start_state"] for p in again] == [p["start_state"] for p in pairs]
    held_out = pp.trajectories("pointmaze_umaze", config.episodes, config.seed + 1000, config.cache)
    training = pp.trajectories("pointmaze_umaze", config.train_episodes, config.seed, config.cache)
    assert not np.array_equal(held_out.states[:5], training.states[:5])  # other trajectories than the model saw


def test_the_success_test_is_the_envs_flag_at_the_goal_position(config) -> None:
    env = pp.make_env("pointmaze_umaze")
    pair = pp.eval_pairs("pointmaze_umaze", 25, config)[0][0]
    obs = pp._place(env, pair)
    np.testing.assert_allclose(obs["state"], pair["start_state"])
    _, _, _, _, info = env.step(np.zeros(2))
    assert not info["is_success"]
    env.set_ball_state(np.asarray(pair["goal_state"][:2]))
    _, _, terminated, _, info = env.step(np.zeros(2))
    assert info["is_success"] and terminated
    env.close()


def test_a_tiny_protocol_run_reports_every_cell(config) -> None:
    report = pp.run_protocol(config, "test")
    assert len(report["rows"]) == 2 * 1 * 2  # observations x planners x modes
    for row in report["rows"]:
        assert row["episodes"] == 2 and 0 <= row["successes"] <= 2 and row["plans"] >= 1
        assert row["s_per_plan"] > 0 and row["goal_offset"] == 25
    open_loop = [r for r in report["rows"] if r["mode"] == "open_loop"]
    assert all(r["plans"] == 2 for r in open_loop)  # one plan per pair
    text = pp.markdown(report)
    assert "## pointmaze_umaze" in text and "pixels mpc 25" in text
