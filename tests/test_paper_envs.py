"""The paper's tasks as third-party envs (envs/point_maze.py, envs/pusht.py).

Env tests skip without the extras (``pip install 'mpc-grasp[robotics]'`` / the Push-T recipe in
docs/paper_tasks.md); the maze-grid geometry and the missing-extra messages are tested everywhere.
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from mpc_grasp.envs import point_maze, pusht

from mpc_grasp import GraspMPC, MLPWorldModel, collect_transitions, make_planner, train_world_model

UMAZE_ID = "mpc_grasp/PointMazeUMaze-v0"
MEDIUM_ID = "mpc_grasp/PointMazeMedium-v0"
PUSHT_ID = "mpc_grasp/PushT-v0"
_LOADED_AT_IMPORT = [name for name in ("mujoco", "gymnasium_robotics", "gym_pusht", "pymunk") if name in sys.modules]


@pytest.fixture(scope="module")
def robotics():
    return pytest.importorskip(
        "gymnasium_robotics", reason="needs the robotics extra: pip install 'mpc-grasp[robotics]'"
    )


@pytest.fixture(scope="module")
def gym_pusht():
    return pytest.importorskip("gym_pusht", reason="needs gym-pusht (docs/paper_tasks.md)")


# --------------------------------------------------------------------------- no extras needed


def test_ids_registered_without_importing_the_extras():
    assert all(env_id in gym.registry for env_id in (UMAZE_ID, MEDIUM_ID, PUSHT_ID))
    assert not _LOADED_AT_IMPORT  # `import mpc_grasp` (above, at collection) loaded none of the extras


def test_missing_robotics_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # makes `import gymnasium_robotics` fail
    with pytest.raises(ImportError, match=r"pip install 'mpc-grasp\[robotics\]'"):
        gym.make(UMAZE_ID)


def test_missing_pusht_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gym_pusht", None)
    monkeypatch.setitem(sys.modules, "gym_pusht.envs", None)
    with pytest.raises(ImportError, match=r"pip install 'mpc-grasp\[pusht\]' && pip install --no-deps 'gym-pusht"):
        gym.make(PUSHT_ID)


def test_bfs_path_lengths_on_the_maze_grids():
    assert len(point_maze.free_cells("umaze")) == 7
    assert point_maze.shortest_path_length("umaze", (1, 1), (3, 1)) == 6  # around the U
    assert point_maze.shortest_path_length("umaze", (1, 1), (1, 3)) == 2
    assert point_maze.shortest_path_length("medium", (1, 1), (6, 6)) is not None
    isolated = [[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 1]]
    assert point_maze.shortest_path_length(isolated, (1, 1), (2, 2)) is None
    with pytest.raises(ValueError, match="wall"):
        point_maze.bfs_distances("umaze", (0, 0))
    rng = np.random.default_rng(0)
    for maze, length in [("umaze", 1), ("umaze", 6), ("medium", 5), ("medium", 11)]:
        for _ in range(5):
            start, goal = point_maze.sample_start_goal(maze, length, rng)
            assert point_maze.shortest_path_length(maze, start, goal) == length
    with pytest.raises(ValueError, match="longest shortest path: 6"):
        point_maze.sample_start_goal("umaze", 7, rng)


def test_pusht_features_round_trip():
    state = np.array([[10.0, 500.0, 256.0, 100.0, 6.0], [256.0, 256.0, 300.0, 400.0, 0.5]])
    velocity = np.array([[100.0, -50.0], [0.0, 0.0]])
    features = pusht.features_from_state(state, velocity)
    assert features.shape == (2, 8) and np.all(np.abs(features[:, [0, 1, 4, 5]]) <= 1.0)
    back, back_velocity = pusht.state_from_features(features)
    np.testing.assert_allclose(back, state, atol=1e-9)
    np.testing.assert_allclose(back_velocity, velocity, atol=1e-9)


def test_pusht_task_sampler_keeps_distance_rotation_and_clearance():
    rng = np.random.default_rng(0)
    for distance, rotation in [(0.0, 0.0), (50.0, 0.3), (150.0, 1.0)]:
        start, goal = pusht.sample_pusht_task(rng, distance, rotation)
        assert np.linalg.norm(start[2:4] - goal[2:4]) == pytest.approx(distance)
        turn = np.mod(start[4] - goal[4] + np.pi, 2 * np.pi) - np.pi
        assert abs(turn) == pytest.approx(rotation)
        for state in (start, goal):
            assert np.linalg.norm(state[:2] - state[2:4]) > pusht.CLEARANCE


# --------------------------------------------------------------------------- Point-Maze


def test_point_maze_maps_match_gymnasium_robotics(robotics):
    from gymnasium_robotics.envs.maze import maps

    assert tuple(map(tuple, maps.U_MAZE)) == point_maze.U_MAZE
    assert tuple(map(tuple, maps.MEDIUM_MAZE)) == point_maze.MEDIUM_MAZE


@pytest.mark.parametrize("env_id, maze, steps", [(UMAZE_ID, "umaze", 300), (MEDIUM_ID, "medium", 600)])
def test_point_maze_builds_and_samples_tasks_at_path_lengths(robotics, env_id, maze, steps):
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == steps
    task = env.unwrapped
    for seed, length in enumerate([1, 2, 3]):
        obs, info = env.reset(seed=seed, options={"path_length": length})
        assert env.observation_space.contains(obs)
        np.testing.assert_allclose(obs["desired_goal"], task.goal_state())
        start, goal = task.cell_of(obs["observation"][:2]), task.cell_of(task.goal)  # +-0.25 noise stays in the cell
        assert point_maze.shortest_path_length(maze, start, goal) == length
        assert info["is_success"] is False
        obs, _, _, _, info = env.step(env.action_space.sample())
        assert {"is_success", "success", "distance"} <= set(info)
    env.close()


def test_point_maze_success_is_the_envs_own_flag(robotics):
    env = point_maze.make_point_maze("umaze", position_noise_range=0.0)
    task = env.unwrapped
    env.reset(seed=0, options={"reset_cell": (1, 2), "goal_cell": (1, 2)})  # middle of the top corridor (free to +-x)
    goal = task.goal
    np.testing.assert_allclose(goal, task.cell_center((1, 2)))
    for offset, expected in [(0.0, True), (0.3, True), (0.44, True), (0.46, False), (0.8, False)]:
        for sign in (1.0, -1.0):
            obs = task.set_ball_state(goal + [sign * offset, 0.0])
            assert task.is_success(obs) is expected
            obs, _, terminated, _, info = env.step(np.zeros(2, dtype=np.float32))
            assert info["is_success"] is info["success"] is expected is task.is_success(obs)
            assert terminated is expected  # continuing_task=False: the env ends the episode on success
            assert info["distance"] == pytest.approx(offset, abs=1e-6)
    env.close()


def test_point_maze_action_repeat_equals_native_steps(robotics):
    fast = point_maze.PointMazeAdapter("umaze", action_repeat=5)
    slow = point_maze.PointMazeAdapter("umaze")
    options = {"reset_cell": (1, 1), "goal_cell": (3, 1)}
    fast.reset(seed=3, options=options)
    obs, _ = slow.reset(seed=3, options=options)
    action = np.array([0.7, -0.2], dtype=np.float32)
    repeated, *_ = fast.step(action)
    for _ in range(5):
        obs, *_ = slow.step(action)
    np.testing.assert_allclose(repeated["observation"], obs["observation"])
    fast.close(), slow.close()


def test_grasp_plans_and_graspmpc_acts_on_point_maze(robotics):
    data = collect_transitions(UMAZE_ID, 500, seed=0, progress=False)
    assert data.state_dim == 4 and data.action_dim == 2
    model = train_world_model(data, hidden_sizes=(32, 32), epochs=3, seed=0, progress=False, num_threads=1)
    env = gym.make(UMAZE_ID)
    obs, _ = env.reset(seed=0, options={"path_length": 2})
    planner = make_planner("grasp", model, horizon=10, iterations=5, action_space=env.action_space, seed=0)
    plan = planner.plan(obs["observation"], obs["desired_goal"])
    actions = plan.actions.numpy()
    assert actions.shape == (10, 2) and np.isfinite(actions).all()
    assert np.all(actions >= env.action_space.low) and np.all(actions <= env.action_space.high)

    agent = GraspMPC(model, "grasp", horizon=10, action_space=env.action_space, iterations=5, seed=0)
    for _ in range(3):  # reads the goal from obs["desired_goal"]
        action, _ = agent.predict(obs)
        assert env.action_space.contains(action)
        obs, *_ = env.step(action)
    env.close()


# --------------------------------------------------------------------------- Push-T


def test_pusht_builds_and_renders_next_to_classic_control(gym_pusht):
    env = gym.make(PUSHT_ID, render_mode="rgb_array")
    assert env.spec.max_episode_steps == 300
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and obs["observation"].shape == (8,)
    assert info["is_success"] is False
    obs, reward, _, _, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and 0.0 <= reward <= 1.0 and "coverage" in info
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and (frame < 250).any()  # agent, block and goal drawn
    env.close()
    cartpole = gym.make("CartPole-v1", render_mode="rgb_array")  # gymnasium's pygame(-ce) rendering still works
    cartpole.reset(seed=0)
    frame = cartpole.render()
    assert frame.shape == (400, 600, 3) and (frame < 250).any()
    cartpole.close()


def test_pusht_success_is_the_envs_own_coverage_flag(gym_pusht):
    env = gym.make(PUSHT_ID)
    task = env.unwrapped
    goal = np.array([300.0, 220.0, 1.0])  # a custom goal pose: the env's coverage test uses it
    for shift, expected in [
        (0.0, True),
        (1.0, True),
        (3.0, False),
        (40.0, False),
    ]:  # 3 px: coverage 0.92 (bars are 30 px wide)
        start = np.array([100.0, 450.0, goal[0] + shift, goal[1], goal[2]])  # agent far from the block
        obs, info = env.reset(seed=0, options={"state": start, "goal": goal})
        np.testing.assert_allclose(task.goal_pose, goal)
        agent_target = (start[:2] - 256.0) / 256.0  # hold the agent where it is
        obs, reward, terminated, _, info = env.step(agent_target)
        assert info["is_success"] is expected is (task.coverage() > 0.95)
        assert terminated is expected and (reward == 1.0) is expected
        assert info["coverage"] == pytest.approx(task.coverage())
    obs, info = env.reset(seed=1)  # the env's own task: its fixed goal T
    np.testing.assert_allclose(task.goal_pose, [256.0, 256.0, np.pi / 4])
    env.close()


def test_pusht_reset_to_sampled_task(gym_pusht):
    env = gym.make(PUSHT_ID)
    obs, _ = env.reset(seed=2, options={"block_distance": 80.0, "block_rotation": 0.5})
    state, _ = pusht.state_from_features(obs["observation"])
    goal, _ = pusht.state_from_features(obs["desired_goal"])
    np.testing.assert_allclose(
        goal[2:], env.unwrapped.goal_pose[:2].tolist() + [np.mod(env.unwrapped.goal_pose[2], 2 * np.pi)], atol=1e-6
    )
    assert np.linalg.norm(state[2:4] - goal[2:4]) == pytest.approx(80.0, abs=1.0)
    env.close()


def test_grasp_plans_on_pusht_with_an_untrained_model(gym_pusht):
    env = gym.make(PUSHT_ID)
    obs, _ = env.reset(seed=0)
    model = MLPWorldModel(8, 2, hidden_sizes=(32, 32))
    planner = make_planner("grasp", model, horizon=10, iterations=5, action_space=env.action_space, seed=0)
    actions = planner.plan(obs["observation"], obs["desired_goal"]).actions.numpy()
    assert actions.shape == (10, 2) and np.isfinite(actions).all()
    assert np.all(np.abs(actions) <= 1.0)
    obs, *_ = env.step(actions[0])
    env.close()


def test_pusht_pixels_show_the_state_and_the_goal_frame_is_the_goal_state(gym_pusht):
    env = pusht.PushTAdapter(pixels=True, image_size=32, action_repeat=5)
    start, goal = np.array([100.0, 400.0, 300.0, 300.0, 0.5]), np.array([400.0, 100.0, 200.0, 200.0, 2.0])
    obs, info = env.reset(seed=0, options={"state": start, "goal": goal})
    assert env.observation_space.contains(obs) and obs["observation"].shape == (32, 32, 3)
    np.testing.assert_allclose(pusht.state_from_features(obs["state"])[0], start, atol=1e-6)
    np.testing.assert_array_equal(obs["desired_goal"], env.render_frame(goal))  # the goal drawn, not the T outline
    np.testing.assert_array_equal(obs["observation"], env.render_frame())
    np.testing.assert_allclose(env.state(), start, atol=1e-6)  # drawing the goal left the bodies where they were
    assert not np.array_equal(obs["observation"], obs["desired_goal"])
    single = pusht.PushTAdapter(pixels=True, image_size=32)
    single.reset(seed=0, options={"state": start, "goal": goal})
    target = np.array([0.5, -0.5])
    for _ in range(5):
        single.step(target)
    env.step(target)  # one step of 5 repeats = 5 single steps
    np.testing.assert_allclose(env.state(), single.state(), atol=1e-9)
    with pytest.raises(ValueError, match="action_repeat"):
        pusht.PushTAdapter(action_repeat=0)
    big = pusht.PushTAdapter(pixels=True, image_size=64, agent_radius=30.0)
    small = pusht.PushTAdapter(pixels=True, image_size=64)
    frames = [e.reset(seed=0, options={"state": start, "goal": goal})[0]["observation"] for e in (big, small)]
    blue = [int(((f[..., 2] > 180) & (f[..., 0] < 120)).sum()) for f in frames]  # the agent is RoyalBlue
    assert blue[0] > 3 * blue[1] > 0


def test_pusht_pusher_brings_the_block_toward_its_goal(gym_pusht):
    env = pusht.PushTAdapter(action_repeat=5, continuing_task=True)
    rng = np.random.default_rng(0)
    closer = 0
    for seed in range(4):
        env.reset(seed=seed, options={"block_distance": 150.0, "block_rotation": 0.5})
        policy = pusht.pusher_policy(env)
        distance = [np.linalg.norm(pusht.block_centre(env.state()[2:]) - pusht.block_centre(env.goal_pose))]
        for _ in range(40):
            _, _, terminated, _, _ = env.step(policy(None, rng))
            assert not terminated  # continuing: the expert's trajectory runs its full length
        distance.append(np.linalg.norm(pusht.block_centre(env.state()[2:]) - pusht.block_centre(env.goal_pose)))
        closer += distance[1] < 0.5 * distance[0]
    assert closer >= 3
