"""Tests for the Gymnasium environments in ``mpc_grasp.envs`` (grid world, continuous cart-pole)."""

from __future__ import annotations

import importlib
import math
import warnings

import gymnasium as gym
import mpc_grasp.envs as envs
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mpc_grasp.envs import (
    ENV_IDS,
    LAYOUTS,
    ContinuousCartPoleEnv,
    GridWorldEnv,
    obs_to_state,
    sample_task,
    segment_hits_wall,
    wall_boxes,
)
from mpc_grasp.envs.grid_world import AGENT_COLOR, GOAL_COLOR, WALL_COLOR

# Gymnasium's own CartPole triggers these too: velocities are unbounded.
_BENIGN = ("infinity",)


def _strictly_in_walls(pos: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    pos = np.atleast_2d(pos)
    inside = (
        (boxes[None, :, 0] < pos[:, None, 0])
        & (pos[:, None, 0] < boxes[None, :, 2])
        & (boxes[None, :, 1] < pos[:, None, 1])
        & (pos[:, None, 1] < boxes[None, :, 3])
    )
    return inside.any(axis=1)


# ------------------------------------------------------------------------------- registration


def test_all_ids_registered() -> None:
    expected = {
        "mpc_grasp/GridWorld-v0",
        "mpc_grasp/GridWorldWall-v0",
        "mpc_grasp/GridWorldUMaze-v0",
        "mpc_grasp/GridWorldMaze-v0",
        "mpc_grasp/GridWorldOpen-v0",
        "mpc_grasp/CartPoleBalance-v0",
        "mpc_grasp/CartPoleSwingup-v0",
    }
    assert expected == set(ENV_IDS)
    assert expected <= set(gym.registry)
    assert gym.spec("mpc_grasp/GridWorldWall-v0").max_episode_steps == 100
    assert gym.spec("mpc_grasp/CartPoleBalance-v0").max_episode_steps == 200
    assert gym.spec("mpc_grasp/CartPoleSwingup-v0").max_episode_steps == 250


def test_reimport_is_idempotent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(envs)
        envs.register_envs()
    assert set(ENV_IDS) <= set(gym.registry)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    problems = [str(w.message) for w in caught if not any(b in str(w.message) for b in _BENIGN)]
    assert not problems, problems
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert "is_success" in info and "goal" in info
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_stable_baselines3_check_env(env_id: str) -> None:
    """SB3's checker also verifies the GoalEnv contract (reward == compute_reward(obs...))."""
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_checker.check_env(gym.make(env_id).unwrapped, warn=False)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_render(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", render_size=48)
    env.reset(seed=1)
    env.step(env.action_space.sample())
    img = env.render()
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    env.close()


def test_unknown_layout_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="umaze"):
        GridWorldEnv(layout="nope")
    with pytest.raises(ValueError, match="valid layouts"):
        wall_boxes("nope")
    with pytest.raises(ValueError):
        gym.make("mpc_grasp/GridWorld-v0", layout="nope")
    with pytest.raises(ValueError):
        ContinuousCartPoleEnv(task="nope")


# ------------------------------------------------------------------------------- grid world geometry


def test_layout_sizes_and_boxes_cover_walls_exactly() -> None:
    for name, rows in LAYOUTS.items():
        h, w = len(rows), len(rows[0])
        assert 7 <= h <= 9 and 7 <= w <= 9, name
        boxes = wall_boxes(name)
        assert boxes.ndim == 2 and boxes.shape[1] == 4
        # every cell centre is in a box iff it is a wall cell
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                centre = np.array([c + 0.5, h - 1 - r + 0.5])
                assert _strictly_in_walls(centre, boxes)[0] == (ch == "#"), (name, r, c)
        # total box area equals the number of wall cells (no overlaps)
        area = np.sum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        assert area == sum(row.count("#") for row in rows)


def test_wall_layout_door_and_blocked_line() -> None:
    rows = LAYOUTS["wall"]
    door = [(r, c) for r, row in enumerate(rows[1:-1], 1) for c, ch in enumerate(row) if c == 4 and ch == "."]
    assert door == [(2, 4)]  # the single door: x in [4, 5], y in [6, 7]
    assert segment_hits_wall("wall", (2.5, 3.0), (6.5, 3.0))
    assert not segment_hits_wall("wall", (2.5, 6.5), (6.5, 6.5))  # straight through the door


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_never_enters_walls_random_max_speed(layout: str) -> None:
    env = GridWorldEnv(layout=layout)
    boxes = wall_boxes(layout)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    positions = []
    for _ in range(2000):
        action = rng.choice([-1.0, 1.0], size=2) * rng.uniform(0.8, 1.5, size=2)  # max speed and beyond
        obs, _, terminated, _, info = env.step(action.astype(np.float32))
        positions.append(info["position"])
        positions.append(obs["observation"])
        if terminated:
            env.reset()
    p = np.asarray(positions, dtype=np.float64)
    assert not _strictly_in_walls(p, boxes).any()
    assert np.all(p >= 0) and np.all(p <= [env.width, env.height])
    # and the centre keeps its clearance agent_radius (float64 state)
    assert not _strictly_in_walls(p[::2], wall_boxes(layout, inflate=env.agent_radius)).any()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_no_tunnelling_with_huge_steps_batched(layout: str) -> None:
    """Batched physics with step sizes up to 3 cells: must stop at the first wall, never jump."""
    rng = np.random.default_rng(1)
    boxes = wall_boxes(layout)
    for step_size in (0.25, 0.9, 3.0):
        env = GridWorldEnv(layout=layout, step_size=step_size)
        pos = np.stack([env._geo.sample_in(rng) for _ in range(256)])
        for _ in range(50):
            act = rng.uniform(-1, 1, size=pos.shape)
            corner = rng.random(len(pos)) < 0.5
            act[corner] = np.sign(act[corner])  # half the agents at max speed
            new = env.transition(pos, act)
            assert not _strictly_in_walls(new, boxes).any()
            # per-axis legs of the move never pass through a wall
            mid = np.stack([new[:, 0], pos[:, 1]], axis=1)
            assert not _segments_blocked(pos, mid, boxes).any()
            assert not _segments_blocked(mid, new, boxes).any()
            pos = new


def _segments_blocked(p: np.ndarray, q: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    from mpc_grasp.envs.grid_world import _segments_hit_boxes

    return _segments_hit_boxes(p, q, boxes)


def test_slides_along_wall_and_stops_flush() -> None:
    env = GridWorldEnv(layout="wall", step_size=0.25)
    env.reset(options={"start": (3.5, 3.0), "goal": (7.0, 2.0)})
    for _ in range(10):  # push diagonally into the wall at x = 4
        obs, *_ = env.step(np.array([1.0, 1.0], dtype=np.float32))
    assert env.position[0] == pytest.approx(4.0 - env.agent_radius, abs=0.0)
    assert env.position[1] == pytest.approx(3.0 + 10 * 0.25)  # slid upward at full speed


def test_transition_matches_step() -> None:
    env = GridWorldEnv(layout="maze")
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = rng.uniform(-1.5, 1.5, size=2).astype(np.float32)
        expected = env.transition(env.position, a)
        env.step(a)
        np.testing.assert_array_equal(env.position, expected)


def test_scripted_path_through_door_succeeds() -> None:
    env = gym.make("mpc_grasp/GridWorldWall-v0")
    obs, info = env.reset(seed=0, options={"start": (2.0, 2.0), "goal": (7.0, 2.0)})
    assert not info["is_success"]
    waypoints = [np.array([2.0, 6.5]), np.array([7.0, 6.5]), np.array([7.0, 2.0])]
    k = 0
    success = False
    for _ in range(100):
        pos = obs["observation"].astype(np.float64)
        if k < len(waypoints) - 1 and np.linalg.norm(pos - waypoints[k]) < 0.05:
            k += 1
        action = np.clip((waypoints[k] - pos) / env.unwrapped.step_size, -1, 1).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(-info["distance"])
        if terminated:
            success = info["is_success"]
            break
    assert success
    assert info["distance"] <= env.unwrapped.goal_radius


def test_greedy_policy_gets_stuck_on_wall() -> None:
    env = GridWorldEnv(layout="wall")
    obs, _ = env.reset(options={"start": (2.0, 2.0), "goal": (7.0, 2.0)})
    for _ in range(100):
        pos, goal = obs["observation"], obs["desired_goal"]
        obs, _, terminated, _, info = env.step(np.clip((goal - pos) * 4, -1, 1))
        assert not terminated
    assert info["position"][0] == pytest.approx(4.0 - env.agent_radius)


def test_reset_options_honoured_and_validated() -> None:
    env = GridWorldEnv(layout="umaze")
    obs, info = env.reset(seed=0, options={"start": [1.5, 1.5], "goal": [7.5, 1.5]})
    np.testing.assert_allclose(obs["observation"], [1.5, 1.5])
    np.testing.assert_allclose(obs["desired_goal"], [7.5, 1.5])
    np.testing.assert_allclose(info["goal"], [7.5, 1.5])
    assert info["distance"] == pytest.approx(6.0)
    # only one given: the other is sampled, at least min_goal_distance away
    obs, _ = env.reset(seed=1, options={"goal": [7.5, 1.5]})
    np.testing.assert_allclose(obs["desired_goal"], [7.5, 1.5])
    assert np.linalg.norm(obs["observation"] - obs["desired_goal"]) >= env.min_goal_distance
    # a start within agent_radius of a wall is pushed flush to the wall
    obs, _ = env.reset(options={"start": [2.95, 2.0], "goal": [7.5, 1.5]})
    np.testing.assert_allclose(obs["observation"], [3.0 - env.agent_radius, 2.0], atol=1e-6)
    # a float32 observation of a flush position is accepted as a start (round-off is absorbed)
    assert np.float64(obs["observation"][0]) > 3.0 - env.agent_radius
    obs2, _ = env.reset(options={"start": obs["observation"], "goal": [7.5, 1.5]})
    np.testing.assert_allclose(obs2["observation"], obs["observation"])
    bad = [
        ({"start": [4.5, 2.0]}, "inside a wall"),  # central block
        ({"goal": [4.5, 2.0]}, "inside a wall"),
        ({"start": [-1.0, 2.0]}, "outside the map"),
        ({"goal": [2.0, 9.5]}, "outside the map"),
        ({"start": [0.0, 4.0]}, "wall boundary"),  # on the outer border wall's face
        ({"goal": [3.0, 9.0]}, "wall boundary"),
        ({"start": [1.0, 2.0, 3.0]}, "finite"),
        ({"goal": [np.nan, 2.0]}, "finite"),
        ({"task": "sideways"}, "unknown task"),
        ({"strat": [1.5, 1.5]}, "unknown reset options"),
    ]
    for options, msg in bad:
        with pytest.raises(ValueError, match=msg):
            env.reset(options=options)


def test_random_reset_in_free_space_and_apart() -> None:
    for layout in LAYOUTS:
        env = GridWorldEnv(layout=layout)
        boxes = wall_boxes(layout, inflate=env.agent_radius)
        for seed in range(30):
            obs, _ = env.reset(seed=seed)
            s, g = obs["observation"].astype(np.float64), obs["desired_goal"].astype(np.float64)
            assert not _strictly_in_walls(np.stack([s, g]), wall_boxes(layout)).any()
            assert not _strictly_in_walls(env.position, boxes).any()
            assert np.linalg.norm(s - g) >= env.min_goal_distance - 1e-5


@pytest.mark.parametrize("layout", ["wall", "umaze", "maze"])
def test_across_task_is_blocked(layout: str) -> None:
    env = GridWorldEnv(layout=layout)
    for seed in range(25):
        obs, info = env.reset(seed=seed, options={"task": "across"})
        s, g = obs["observation"], obs["desired_goal"]
        assert segment_hits_wall(layout, s, g), (layout, s, g)
        assert not info["is_success"]
    rng = np.random.default_rng(0)
    for _ in range(25):
        s, g = sample_task(layout, rng)
        assert segment_hits_wall(layout, s, g)
    # constructor-level task
    env = GridWorldEnv(layout=layout, task="across")
    obs, _ = env.reset(seed=0)
    assert segment_hits_wall(layout, obs["observation"], obs["desired_goal"])


def test_across_wall_regions() -> None:
    env = GridWorldEnv(layout="wall")
    for seed in range(20):
        obs, _ = env.reset(seed=seed, options={"task": "across"})
        xs = sorted([obs["observation"][0], obs["desired_goal"][0]])
        assert xs[0] < 4.0 and xs[1] > 5.0
        assert obs["observation"][1] <= 5.0 and obs["desired_goal"][1] <= 5.0


def test_seeding_is_deterministic() -> None:
    def rollout(seed: int) -> np.ndarray:
        env = gym.make("mpc_grasp/GridWorldMaze-v0")
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        traj = [np.concatenate([obs["observation"], obs["desired_goal"]])]
        for _ in range(20):
            obs, *_ = env.step(env.action_space.sample())
            traj.append(np.concatenate([obs["observation"], obs["desired_goal"]]))
        return np.asarray(traj)

    np.testing.assert_array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7), rollout(8))


def test_compute_reward_vectorised() -> None:
    env = GridWorldEnv()
    a = np.zeros((5, 2))
    d = np.tile([3.0, 4.0], (5, 1))
    np.testing.assert_allclose(env.compute_reward(a, d, {}), -5.0)
    assert env.compute_reward(np.zeros(2), np.array([0.1, 0.0]), {}) == pytest.approx(-0.1)


def test_grid_render_agent_and_goal_pixels() -> None:
    env = GridWorldEnv(layout="wall", render_mode="rgb_array")
    env.reset(options={"start": (2.0, 2.0), "goal": (7.0, 6.5)})
    img = env.render()
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8

    def pixel(xy: tuple[float, float]) -> np.ndarray:
        col = int(xy[0] / env.width * 64)
        row = int((env.height - xy[1]) / env.height * 64)
        return img[row, col]

    np.testing.assert_array_equal(pixel((2.0, 2.0)), AGENT_COLOR)
    np.testing.assert_array_equal(pixel((7.0, 6.5)), GOAL_COLOR)
    np.testing.assert_array_equal(pixel((4.5, 3.0)), WALL_COLOR)
    # agent blob at least 3 pixels wide
    agent_mask = np.all(img == AGENT_COLOR, axis=-1)
    cols = np.flatnonzero(agent_mask.any(axis=0))
    assert cols.max() - cols.min() + 1 >= 3
    # goal images: no goal marker
    goal_img = env.render_position((7.0, 6.5), goal=None, size=32)
    assert goal_img.shape == (32, 32, 3)
    assert not np.all(goal_img == GOAL_COLOR, axis=-1).any()
    assert np.all(goal_img == AGENT_COLOR, axis=-1).sum() >= 4


# ------------------------------------------------------------------------------- cart-pole


def test_cartpole_matches_gymnasium_physics() -> None:
    ref = gym.make("CartPole-v1").unwrapped
    ref.reset(seed=0)
    ours = ContinuousCartPoleEnv(task="balance")
    ours.reset(seed=0)
    ref.state = ours.state.copy()
    rng = np.random.default_rng(0)
    for t in range(50):
        push_right = bool(rng.random() < 0.5) if t % 7 else True
        ref_obs, ref_r, ref_term, *_ = ref.step(1 if push_right else 0)
        obs, r, term, _, info = ours.step(np.array([1.0 if push_right else -1.0], dtype=np.float32))
        np.testing.assert_allclose(obs_to_state(obs), ref_obs.astype(np.float64), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(ours.state, ref.state)  # bit-identical float64 state
        assert r == ref_r and term == ref_term
        if term:
            break


def test_cartpole_swingup_physics_matches_with_frame_skip() -> None:
    ref = gym.make("CartPole-v1").unwrapped
    ref.reset(seed=0)
    ours = ContinuousCartPoleEnv(task="swingup")
    assert ours.frame_skip == 2
    ours.reset(seed=0)
    ref.state = ours.state.copy()
    for t in range(40):
        a = 1 if (t // 5) % 2 else 0
        for _ in range(2):
            ref.steps_beyond_terminated = None  # the reference ends on angle; only physics matters here
            ref.step(a)
        ours.step(np.array([1.0 if a else -1.0]))
        np.testing.assert_array_equal(ours.state, ref.state)


def test_cartpole_balance_terminates_when_falling() -> None:
    env = gym.make("mpc_grasp/CartPoleBalance-v0")
    obs, info = env.reset(seed=0)
    assert obs.shape == (5,) and obs.dtype == np.float32
    assert info["is_success"]
    np.testing.assert_array_equal(info["goal"], [0, 0, 1, 0, 0])
    for t in range(200):  # noqa: B007 (read after the loop)
        obs, reward, terminated, truncated, info = env.step(np.array([1.0], dtype=np.float32))
        assert reward == 1.0
        if terminated:
            break
    assert terminated and not truncated and t < 100
    assert not info["is_success"]
    assert abs(info["theta"]) > math.radians(12) or abs(obs[0]) > 2.4


def test_cartpole_swingup_starts_down_and_rewards_bounded() -> None:
    env = gym.make("mpc_grasp/CartPoleSwingup-v0")
    obs, info = env.reset(seed=0)
    assert obs[2] < -0.99  # cos(theta) ~ -1: hanging down
    assert abs(abs(info["theta"]) - math.pi) < 0.1
    assert not info["is_success"]
    rng = np.random.default_rng(0)
    for _ in range(250):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, size=1).astype(np.float32))
        assert 0.0 <= reward <= 1.0
        assert np.isclose(obs[2] ** 2 + obs[3] ** 2, 1.0, atol=1e-5)
        if terminated or truncated:
            break


def test_cartpole_swingup_success_and_reward_at_goal() -> None:
    env = ContinuousCartPoleEnv(task="swingup")
    obs, info = env.reset(options={"state": [0.0, 0.0, 2 * math.pi + 0.01, 0.0]})  # wrapped upright
    assert info["is_success"]
    obs, reward, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
    assert info["is_success"] and not terminated and reward > 0.99
    env.reset(options={"state": [0.0, 0.0, 0.0, 3.0]})
    assert not env._info()["is_success"]  # too fast
    env.reset(options={"state": [2.39, 5.0, math.pi, 0.0]})
    *_, terminated, _, _ = env.step(np.ones(1))
    assert terminated  # left the track
    with pytest.raises(ValueError, match="4 finite"):
        env.reset(options={"state": [0.0, 0.0, 0.0]})
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan]))


def test_cartpole_render_state() -> None:
    from mpc_grasp.envs.cartpole import CART_COLOR, POLE_COLOR

    env = ContinuousCartPoleEnv(task="swingup", render_mode="rgb_array")
    env.reset(seed=0)
    up = env.render_state(np.array([0, 0, 1, 0, 0], dtype=np.float32))
    down = env.render_state(np.array([0.0, 0.0, math.pi, 0.0]))  # raw 4-dim state
    assert up.shape == (64, 64, 3) and up.dtype == np.uint8
    pole_up = np.argwhere(np.all(up == POLE_COLOR, axis=-1))
    pole_down = np.argwhere(np.all(down == POLE_COLOR, axis=-1))
    assert pole_up[:, 0].mean() < 32 < pole_down[:, 0].mean()  # image rows grow downward
    right = env.render_state(np.array([2.0, 0, 1, 0, 0]))
    cart_centre = np.argwhere(np.all(right == CART_COLOR, axis=-1))[:, 1].mean()
    assert cart_centre > 50
    assert env.render().shape == (64, 64, 3)


def test_transition_pushes_out_through_the_right_face_coordinates() -> None:
    """Regression: a float32 position a hair inside a wall face must stay on its own side."""
    from mpc_grasp.envs.grid_world import GridWorldEnv

    env = GridWorldEnv("wall")
    np.testing.assert_allclose(env.transition(np.float32([5.1, 3.0]), np.float32([-1.0, 0.0])), [5.1, 3.0], atol=1e-5)
    np.testing.assert_allclose(env.transition(np.float32([3.0, 7.9]), np.float32([0.0, 1.0])), [3.0, 7.9], atol=1e-5)
    env.reset(options={"start": [5.05, 3.0], "goal": [7.0, 3.0]})
