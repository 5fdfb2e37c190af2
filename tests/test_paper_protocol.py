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
    obs = pp._place("pointmaze_umaze", env, pair)
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


def test_pusht_success_is_dino_wms_state_test() -> None:
    from mpc_grasp.envs.pusht import features_from_state

    goal = features_from_state([200.0, 200.0, 300.0, 300.0, 0.1])
    assert pp.pusht_success(goal, goal)
    assert pp.pusht_success(features_from_state([210.0, 200.0, 310.0, 300.0, 0.1]), goal)  # 14.1 px in all
    assert not pp.pusht_success(features_from_state([200.0, 200.0, 300.0, 321.0, 0.1]), goal)  # 21 px
    assert pp.pusht_success(features_from_state([200.0, 200.0, 300.0, 300.0, 2 * np.pi - 0.2]), goal)  # wraps
    assert not pp.pusht_success(features_from_state([200.0, 200.0, 300.0, 300.0, 0.5]), goal)  # 0.4 rad


def test_scaled_budget_scales_every_iteration_budget() -> None:
    from mpc_grasp.planners import GraspConfig

    config = GraspConfig(iterations=40, warm_iterations=8, first_plan_iterations=20)
    scaled = pp.scaled_budget(config, 0.1)
    assert (scaled.iterations, scaled.warm_iterations, scaled.first_plan_iterations) == (4, 1, 2)
    assert pp.scaled_budget(config, 2.5).iterations == 100 and scaled.lr_actions == config.lr_actions


def test_a_tiny_pusht_run_at_equal_time(tmp_path) -> None:
    pytest.importorskip("gym_pusht", reason="needs gym-pusht (docs/paper_tasks.md)")
    settings = {**TINY, "planners": ("grasp", "cem"), "observations": ("state",), "modes": ("open_loop",)}
    config = pp.ProtocolConfig(
        tasks=("pusht",), equal_time="cem", calibration_pairs=1, cache=tmp_path / "c", out_dir=tmp_path, **settings
    )
    report = pp.run_protocol(config, "test")
    rows = {row["planner"]: row for row in report["rows"]}
    assert rows["cem"]["budget_scale"] == 1.0 and rows["grasp"]["budget_scale"] != 1.0
    assert all(row["budget"] == "time of cem" and row["episodes"] == 2 for row in rows.values())
    assert "## pusht" in pp.markdown(report) and (tmp_path / "paper_protocol.partial.jsonl").is_file()


def test_the_filmstrip_draws_goal_executed_and_planned_frames(config, tmp_path) -> None:
    path = pp.filmstrip("pointmaze_umaze", config, tmp_path / "film.png", offset=25)
    assert path.is_file() and path.stat().st_size > 1000
