"""Pixel Point-Maze (top-down frames, the goal marker hidden), its noisy waypoint expert, and image trajectories
stored as Minari datasets."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="needs the robotics extra: pip install 'mpc-grasp[robotics]'")

from mpc_grasp.envs.point_maze import U_MAZE, PointMazeAdapter, next_cell_toward, waypoint_policy  # noqa: E402

from mpc_grasp.models.pixel import PixelDataset  # noqa: E402


def test_the_next_cell_follows_the_shortest_path_around_the_u() -> None:
    # U maze: free cells (1,1) (1,2) (1,3) / (2,3) / (3,1) (3,2) (3,3); from the bottom-left to the top-left
    path, cell = [], (3, 1)
    while cell != (1, 1):
        cell = next_cell_toward(U_MAZE, cell, (1, 1))
        path.append(cell)
    assert path == [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    assert next_cell_toward(U_MAZE, (1, 1), (1, 1)) == (1, 1)


def test_pixel_observations_show_the_ball_and_the_goal_frame_shows_it_at_the_goal() -> None:
    env = PointMazeAdapter("umaze", action_repeat=5, pixels=True, image_size=48)
    obs, info = env.reset(seed=0, options={"reset_cell": (3, 1), "goal_cell": (1, 1)})
    assert obs["observation"].shape == (48, 48, 3) and obs["observation"].dtype == np.uint8
    assert obs["desired_goal"].shape == (48, 48, 3) and obs["state"].shape == (4,)
    np.testing.assert_array_equal(info["state"], obs["state"])
    assert env.observation_space.contains(obs)
    assert np.abs(obs["observation"].astype(int) - obs["desired_goal"]).sum() > 0  # the ball is elsewhere
    before = env.ball_state()
    np.testing.assert_array_equal(env.render_at(env.goal), obs["desired_goal"])
    np.testing.assert_array_equal(env.ball_state()[0], before[0])  # render_at restores the ball
    env.set_goal(obs["state"][:2])  # a goal under the ball: the env's own test now says success
    _, _, terminated, _, info = env.step(np.zeros(2))
    assert info["is_success"] and terminated
    env.close()


def test_the_waypoint_expert_reaches_a_goal_around_the_bend() -> None:
    env = PointMazeAdapter("umaze", action_repeat=5, pixels=True, image_size=32)
    obs, _ = env.reset(seed=1, options={"reset_cell": (3, 1), "goal_cell": (1, 1)})
    policy, rng = waypoint_policy(env, noise=0.1, random_fraction=0.0), np.random.default_rng(0)
    for step in range(60):  # noqa: B007 (read after the loop)
        obs, _, terminated, _, info = env.step(policy(obs, rng))
        if terminated:
            break
    assert info["is_success"], (step, info["state"], env.goal)
    env.close()


def test_an_image_dataset_round_trips_through_minari(tmp_path) -> None:
    pytest.importorskip("minari", reason="needs the minari extra: pip install 'mpc-grasp[minari]'")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(9, 8, 8, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, size=(9, 2)).astype(np.float32)
    segments = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    states = rng.normal(size=(9, 4))
    dataset = PixelDataset(frames, actions, segments, states)
    folder = dataset.save_minari("mpc_grasp/test-v0", tmp_path, description="round trip")
    assert folder.is_dir()
    loaded = PixelDataset.load_minari("mpc_grasp/test-v0", tmp_path)
    np.testing.assert_array_equal(loaded.frames, frames)
    np.testing.assert_allclose(loaded.states, states)
    np.testing.assert_array_equal(loaded.segment_ids, segments)
    within = segments[1:] == segments[:-1]  # actions that lead to a next frame of the same segment
    np.testing.assert_array_equal(loaded.actions[:-1][within], actions[:-1][within])
    assert loaded.num_transitions == dataset.num_transitions == 7
    with pytest.raises(ValueError, match="no Minari dataset"):
        PixelDataset.load_minari("mpc_grasp/missing-v0", tmp_path)
