"""The analytic test beds must be what they claim: ``PointMassWalls`` is the grid world's physics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import mpc_grasp  # noqa: F401  (registers the envs)
from mpc_grasp.models.analytic import CartPoleSwingupModel, PointMassWalls

LAYOUT_ENVS = {
    "wall": "mpc_grasp/GridWorldWall-v0",
    "umaze": "mpc_grasp/GridWorldUMaze-v0",
    "maze": "mpc_grasp/GridWorldMaze-v0",
}


@pytest.mark.parametrize("layout", sorted(LAYOUT_ENVS))
def test_exact_point_mass_walls_predict_every_env_step(layout: str) -> None:
    """One-step predictions from the env's own states, under random correlated pushes (many wall
    contacts and corner hits), agree with the env to float precision."""
    env = gym.make(LAYOUT_ENVS[layout])
    model = PointMassWalls.from_layout(layout, smoothing=0.0)
    rng = np.random.default_rng(0)
    states, actions, next_states = [], [], []
    for episode in range(20):
        obs, _ = env.reset(seed=episode)
        action = rng.uniform(-1, 1, 2)
        for _ in range(60):
            action = np.clip(0.8 * action + 0.6 * rng.normal(size=2), -1, 1).astype(np.float32)
            states.append(obs["observation"])
            obs, *_ = env.step(action)
            actions.append(action)
            next_states.append(obs["observation"])
    with torch.no_grad():
        predicted = model(torch.as_tensor(np.array(states)), torch.as_tensor(np.array(actions))).numpy()
    error = np.abs(predicted - np.array(next_states)).max(axis=1)
    moved = np.abs(np.array(next_states) - np.array(states)).max(axis=1)
    assert (moved < 0.2).mean() > 0.02, "the pushes should hit walls often enough to test contacts"
    assert error.max() < 1e-4, f"{(error > 1e-4).sum()} of {len(error)} steps differ, worst by {error.max():.3f}"


def test_a_corner_blocks_the_agent_instead_of_popping_it_into_the_door() -> None:
    """Below the door's bottom edge, pushing diagonally into the wall: x is blocked, only y moves (as in the env)."""
    model = PointMassWalls.from_layout("wall", smoothing=0.0)
    with torch.no_grad():
        after = model(torch.tensor([3.9, 5.97]), torch.tensor([1.0, 1.0]))
    np.testing.assert_allclose(after.numpy(), [3.9, 6.22], atol=1e-5)


@pytest.mark.parametrize(
    ("env_id", "frame_skip"), [("mpc_grasp/CartPoleSwingup-v0", 2), ("mpc_grasp/CartPoleBalance-v0", 1)]
)
def test_cart_pole_model_predicts_every_env_step(env_id: str, frame_skip: int) -> None:
    env = gym.make(env_id)
    model = CartPoleSwingupModel(frame_skip)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    states, actions, next_states = [], [], []
    for _ in range(200):
        action = rng.uniform(-1, 1, 1).astype(np.float32)
        before = obs
        obs, _, terminated, truncated, _ = env.step(action)
        if not terminated:  # the env stops mid-step when the cart leaves the track; the model does not
            states.append(before)
            actions.append(action)
            next_states.append(obs)
        if terminated or truncated:
            obs, _ = env.reset(seed=len(states))
    with torch.no_grad():
        predicted = model(torch.as_tensor(np.array(states)), torch.as_tensor(np.array(actions))).numpy()
    assert len(states) > 150
    np.testing.assert_allclose(predicted, np.array(next_states), atol=1e-4)
    with pytest.raises(ValueError, match="frame_skip"):
        CartPoleSwingupModel(0)
