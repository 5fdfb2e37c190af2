"""World models with a history of k observations (``history``): the stacked-state contract, the pixel
model with k context frames (shapes, training windows, checkpoints), k = 1 unchanged, and GraspMPC /
planners on stacked states. Tiny sizes, seeded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import mpc_grasp  # noqa: F401  (registers the env ids)
from mpc_grasp import GraspMPC, make_planner
from mpc_grasp.models import check_world_model, history_length
from mpc_grasp.models.checkpoint import _digest
from mpc_grasp.models.pixel import (
    PixelDataset,
    PixelWorldModel,
    load_pixel_world_model,
    save_pixel_world_model,
    train_pixel_world_model,
)
from mpc_grasp.models.pixel import training as pixel_training

WALL_ID = "mpc_grasp/PixelGridWorldWall-v0"
TINY = dict(latent_dim=4, hidden_dim=16, encoder_width=8)


def tiny_model(history: int, image_size: int = 16, seed: int = 0) -> PixelWorldModel:
    torch.manual_seed(seed)
    model = PixelWorldModel(action_dim=2, image_size=image_size, history=history, **TINY)
    with torch.no_grad():  # non-trivial normalisation and a dynamics MLP that is far from "nothing moves"
        model.latent_mean.copy_(torch.linspace(-0.2, 0.2, 4))
        model.latent_std.copy_(torch.linspace(0.5, 1.5, 4))
        model.delta_std.copy_(torch.linspace(0.1, 0.4, 4))
        model.dynamics[-1].weight.normal_(0.0, 0.5)
    return model.eval()


def random_dataset(
    segments: int = 4, length: int = 12, size: int = 16, seed: int = 0, index_frames: bool = False
) -> PixelDataset:
    """Random frames (or, with ``index_frames``, frame i filled with the value i) and actions ``[i / 100, 0]``."""
    rng = np.random.default_rng(seed)
    n = segments * length
    if index_frames:
        frames = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 3)).copy()
    else:
        frames = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    actions = np.stack([np.arange(n) / 100.0, rng.uniform(-1, 1, n)], axis=1).astype(np.float32)
    return PixelDataset(frames, actions, np.repeat(np.arange(segments), length))


# ------------------------------------------------------------------------------------- contract


def test_history_length_and_check_world_model() -> None:
    class Plain:
        state_dim, action_dim = 4, 2

        def __call__(self, state: Any, action: Any) -> Any:
            return state

    plain = Plain()
    assert history_length(plain) == 1
    plain.history = 2  # type: ignore[attr-defined]
    assert history_length(plain) == 2
    check_world_model(plain)
    plain.history = 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="not a multiple"):
        check_world_model(plain)
    for bad in (0, 1.5, True):
        plain.history = bad  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="history must be a positive integer"):
            history_length(plain)
    with pytest.raises(ValueError, match="history"):
        PixelWorldModel(action_dim=2, history=0)


# ------------------------------------------------------------------------------------- model


def test_k2_shapes_and_stacked_forward() -> None:
    model = tiny_model(history=2)
    assert history_length(model) == 2 and model.latent_dim == 4 and model.state_dim == 8
    assert model.dynamics[0].in_features == 8 + 2 and model.dynamics[-1].out_features == 4
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 2, 16, 16, 3), dtype=np.uint8)
    with torch.no_grad():
        state = model.encode(frames[0])
        per_frame = model.encode_frames(frames[0])
        assert state.shape == (8,) and per_frame.shape == (2, 4)
        torch.testing.assert_close(state, per_frame.flatten(), rtol=0, atol=0)  # oldest first
        batch = model.encode(frames)
        assert batch.shape == (3, 8)
        torch.testing.assert_close(batch[0], state)
        with pytest.raises(ValueError, match="needs a stack of the last 2 frames"):
            model.encode(frames[0, 0])  # a single frame
        with pytest.raises(ValueError, match="needs a stack of the last 2 frames"):
            model.encode(frames[:, :1])

        action = torch.tensor([0.5, -0.3])
        nxt = model(state, action)
        assert nxt.shape == (8,)
        torch.testing.assert_close(nxt[:4], state[4:], rtol=0, atol=0)  # the newest latent shifted to the front
        features = torch.cat([((state.reshape(2, 4) - model.latent_mean) / model.latent_std).flatten(), action])
        torch.testing.assert_close(nxt[4:], state[4:] + model.dynamics(features) * model.delta_std)
        older_changed = state.clone()
        older_changed[:4] += 0.5
        assert not torch.allclose(model(older_changed, action)[4:], nxt[4:])  # the older frame matters
        # leading shapes broadcast; rollouts keep the stacked layout
        assert model(batch, torch.zeros(5, 1, 2)).shape == (5, 3, 8)
        rolled = model.rollout(state, torch.zeros(4, 2))
        assert rolled.shape == (5, 8)
        torch.testing.assert_close(rolled[1:, :4], rolled[:-1, 4:], rtol=0, atol=0)
        with pytest.raises(ValueError, match=r"state_dim=8 \(history 2 x latent_dim=4\)"):
            model(state[:4], action)
        # decode draws the newest latent of a stacked state
        torch.testing.assert_close(model.decode(state), model.decode(state[4:]), rtol=0, atol=0)
        assert model.decode(batch).shape == (3, 16, 16, 3)
    torch.testing.assert_close(model.state_scale, model.latent_std.repeat(2), rtol=0, atol=0)
    assert model.state_scale.shape == (8,)


def test_k1_model_is_unchanged() -> None:
    model = tiny_model(history=1)
    default = PixelWorldModel(action_dim=2, image_size=16, **TINY)
    assert default.history == 1 and default.config["history"] == 1 and history_length(default) == 1
    assert model.state_dim == model.latent_dim == 4 and model.config["history"] == 1
    assert model.dynamics[0].in_features == 4 + 2
    assert model.state_scale is model.latent_std
    frame = np.random.default_rng(1).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    with torch.no_grad():
        z = model.encode(frame)
        assert z.shape == (4,)
        torch.testing.assert_close(z, model.encode_frames(frame), rtol=0, atol=0)
        action = torch.tensor([0.2, 0.7])
        expected = z + model.dynamics(torch.cat([(z - model.latent_mean) / model.latent_std, action])) * model.delta_std
        torch.testing.assert_close(model(z, action), expected, rtol=0, atol=0)


def test_k1_training_reproduces_the_pre_history_weights() -> None:
    """Pinned from the code before ``history`` existed (same data, seed and random streams): a k = 1 run
    must not move. Tolerances absorb only float noise across CPUs."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(60, 16, 16, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, size=(60, 2)).astype(np.float32)
    data = PixelDataset(frames, actions, np.repeat(np.arange(4), 15))
    model = train_pixel_world_model(
        data,
        latent_dim=4,
        hidden_dim=32,
        encoder_width=8,
        iterations=5,
        batch_size=4,
        dynamics_iterations=5,
        seed=0,
        progress=False,
    )
    flat = torch.cat([p.detach().flatten().double() for p in model.state_dict().values()])
    assert float(flat.sum()) == pytest.approx(377.40891672309954, rel=1e-4)
    assert model.training_info["validation"]["one_step_error"] == pytest.approx(1.002644419670105, rel=1e-4)


def test_old_checkpoint_without_history_loads_as_k1(tmp_path: Path) -> None:
    model = tiny_model(history=1)
    path = save_pixel_world_model(model, tmp_path / "new.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["history"]  # a checkpoint written before the argument existed
    payload["sha256"] = _digest(payload["model_class"], payload["config"], payload["metadata"], payload["state_dict"])
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_pixel_world_model(tmp_path / "old.pt")
    assert loaded.history == 1 and loaded.state_dim == 4
    z = torch.randn(3, 4)
    torch.testing.assert_close(loaded(z, torch.ones(3, 2)), model(z, torch.ones(3, 2)), rtol=0, atol=0)


# ------------------------------------------------------------------------------------- training


def test_k3_trains_and_checkpoint_roundtrips(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = random_dataset()
    model = train_pixel_world_model(
        data,
        history=3,
        iterations=3,
        batch_size=4,
        rollout_steps=2,
        dynamics_iterations=3,
        dynamics_rollout_steps=2,
        seed=0,
        progress=False,
        **TINY,
    )
    assert model.history == 3 and model.state_dim == 12 and model.config["history"] == 3
    assert model.dynamics[0].in_features == 12 + 2
    validation = model.training_info["validation"]
    assert all(np.isfinite(validation[key]) for key in ("recon_mse", "one_step_error", "h_step_error"))
    path = save_pixel_world_model(model, tmp_path / "k3.pt")
    loaded = load_pixel_world_model(path)
    assert loaded.config == model.config
    stacks = data.frames[:6].reshape(2, 3, 16, 16, 3)
    with torch.no_grad():
        state = model.encode(stacks)
        torch.testing.assert_close(loaded.encode(stacks), state, rtol=0, atol=0)
        action = torch.tensor([[0.3, -0.1], [0.0, 1.0]])
        torch.testing.assert_close(loaded(state, action), model(state, action), rtol=0, atol=0)
    torch.testing.assert_close(loaded.state_scale, model.state_scale, rtol=0, atol=0)
    # segments too short for 3 context frames and the rollout
    with pytest.raises(ValueError, match="3 context frames"):
        train_pixel_world_model(random_dataset(length=4), history=3, rollout_steps=2, iterations=1, progress=False)


def test_phase1_windows_hold_k_context_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frame i shows the value i and its action is [i / 100, .]: each window must be k + R consecutive frames
    of one segment, and the actions those taken from the last context frame on."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = pixel_training._model_loss

    def spy(model: PixelWorldModel, images: torch.Tensor, actions: torch.Tensor, *args: Any) -> Any:
        seen.append((images.detach().clone(), actions.detach().clone()))
        return original(model, images, actions, *args)

    monkeypatch.setattr(pixel_training, "_model_loss", spy)
    data = random_dataset(segments=3, length=10, index_frames=True)
    train_pixel_world_model(
        data,
        history=2,
        rollout_steps=3,
        iterations=2,
        batch_size=8,
        dynamics_iterations=0,
        validation_fraction=0.0,
        progress=False,
        **TINY,
    )
    assert len(seen) == 2
    for images, actions in seen:
        assert images.shape == (8, 2 + 3, 16, 16, 3) and actions.shape == (8, 3, 2)
        index = (images[..., 0, 0, 0] * 255).round().long()  # [B, k + R] frame indices
        assert torch.all(index[:, 1:] - index[:, :-1] == 1)
        assert torch.all(index[:, 0] // 10 == index[:, -1] // 10)  # one segment
        torch.testing.assert_close(actions[..., 0] * 100, index[:, 1:-1].float())  # from context frame k-1 on


def test_phase2_rollouts_start_from_k_context_latents(monkeypatch: pytest.MonkeyPatch) -> None:
    """With frame i encoded as the latent (i, i, ...), each phase-2 rollout starts from the stacked latents of
    frames i .. i+k-1 and applies the actions of frames i+k-1 ...; the loss targets are the frames after."""
    starts: list[torch.Tensor] = []
    first_actions: list[torch.Tensor] = []
    original = pixel_training._rollout_steps

    def spy(model: PixelWorldModel, start: torch.Tensor, actions: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        starts.append(start.detach().clone())
        first_actions.append(actions[0].detach().clone())
        assert len(actions) == 2
        return original(model, start, actions)

    def index_latents(model: PixelWorldModel, frames: np.ndarray, device: Any, chunk: int = 256) -> torch.Tensor:
        return torch.arange(len(frames), dtype=torch.float32)[:, None].repeat(1, model.latent_dim)

    monkeypatch.setattr(pixel_training, "_rollout_steps", spy)
    monkeypatch.setattr(pixel_training, "_encode_frames", index_latents)
    model = PixelWorldModel(action_dim=2, image_size=16, history=3, **TINY)
    data = random_dataset(segments=3, length=10)
    pixel_training._fit_dynamics(
        model,
        data,
        iterations=3,
        batch_size=16,
        rollout_steps=2,
        lr=1e-3,
        rng=np.random.default_rng(0),
        seed=0,
        device="cpu",
        progress=False,
    )
    assert len(starts) == 3
    for start, action in zip(starts, first_actions):
        frames = start.reshape(16, 3, 4)[..., 0]  # frame index of each context latent, oldest first
        assert torch.all(frames[:, 1:] - frames[:, :-1] == 1)
        last_frame = frames[:, -1] + 2  # the rollout's 2 steps stay in the segment
        assert torch.all(frames[:, 0] // 10 == last_frame // 10)
        torch.testing.assert_close(action[:, 0] * 100, frames[:, -1])


# ------------------------------------------------------------------------------------- planning


def test_make_planner_plans_on_stacked_states() -> None:
    model = tiny_model(history=2, image_size=64)
    frames = np.random.default_rng(2).integers(0, 256, size=(2, 2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        start, goal = model.encode(frames)
    result = make_planner("grasp", model, horizon=3, iterations=3, num_candidates=2, seed=0).plan(start, goal)
    assert result.actions.shape == (3, 2) and result.states.shape == (4, 8)
    assert torch.isfinite(result.states).all()
    torch.testing.assert_close(result.states[0], start)
    torch.testing.assert_close(result.states[1:, :4], result.states[:-1, 4:])  # the stacked layout is kept


def _start_state(agent: GraspMPC) -> torch.Tensor:
    """The start state ``[n_envs, S]`` of the agent's last plan (index 0 of its rollout)."""
    assert agent.last_plan is not None
    return agent.last_plan.states[:, 0]


def test_grasp_mpc_keeps_a_history_of_single_frames() -> None:
    model = tiny_model(history=2, image_size=64)
    env = gym.make(WALL_ID)
    agent = GraspMPC(model, horizon=3, action_space=env.action_space, iterations=2, num_candidates=2, seed=0)
    assert agent.history == 2
    obs, _ = env.reset(seed=0)
    seen = [obs["observation"].copy()]
    for step in range(3):
        action, _ = agent.predict(obs)
        assert action.shape == (2,) and env.action_space.contains(action)
        previous = seen[max(step - 1, 0)]  # the first step repeats the first frame
        with torch.no_grad():
            expected = model.encode(np.stack([previous, seen[step]]))
            goal = model.encode(np.stack([obs["desired_goal"]] * 2))  # the env's goal frame, repeated
        torch.testing.assert_close(_start_state(agent), expected[None])
        assert agent.last_plan is not None and agent.last_plan.states.shape == (1, 4, 8)
        obs, *_ = env.step(action)
        seen.append(obs["observation"].copy())
    assert len(agent.diagnostics) == 3 and all(d.replanned for d in agent.diagnostics)  # replans every step
    assert agent._resolve_goal(obs["desired_goal"], 1) is not None
    torch.testing.assert_close(agent._resolve_goal(obs["desired_goal"], 1)[0], goal)
    agent.reset()
    assert agent._frames == []
    agent.predict(obs)  # after a reset the history restarts from the current frame
    with torch.no_grad():
        torch.testing.assert_close(_start_state(agent), model.encode(np.stack([seen[-1]] * 2))[None])
    env.close()


def test_grasp_mpc_history_goal_observation_and_batches() -> None:
    model = tiny_model(history=2, image_size=64)
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    rng = np.random.default_rng(3)
    goal_frame, a0, a1, b0, b1 = rng.integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)
    agent = GraspMPC(
        model, horizon=3, action_space=space, goal_observation=goal_frame, iterations=2, num_candidates=2, seed=0
    )
    with torch.no_grad():
        assert agent._goal is not None
        torch.testing.assert_close(agent._goal, model.encode(np.stack([goal_frame, goal_frame])))
        expected = model.encode(np.stack([np.stack([a1, a1]), np.stack([b0, b1])]))
    actions, _ = agent.predict(np.stack([a0, b0]))
    assert actions.shape == (2, 2) and np.all(np.abs(actions) <= 1.0)
    # env 0's episode restarts (SB3 episode_start): only its history is cleared
    agent.predict(np.stack([a1, b1]), episode_start=np.array([True, False]))
    torch.testing.assert_close(_start_state(agent), expected)
    with pytest.raises(ValueError, match="expects one observation"):
        agent.predict(np.zeros((2, 32, 32, 3), dtype=np.uint8))


def test_a_goal_frame_constrains_only_the_newest_frame_of_a_history_state() -> None:
    """The default goal weights and GRASP's lifted end s_T := g ignore the older frames of a stacked goal (a goal
    observation is one frame: being at rest there for k frames is not asked); given weights are used as is."""
    model = tiny_model(history=3)
    start = torch.zeros(model.state_dim)
    goal = torch.full((model.state_dim,), 0.3)
    other = goal.clone()
    other[: 2 * model.latent_dim] = -0.7  # same newest frame, other context frames
    planner = make_planner("grasp", model, horizon=4, iterations=2, seed=0)
    np.testing.assert_array_equal(planner.goal_mask.numpy(), [0.0] * 8 + [1.0] * 4)
    results = [planner.plan(start, g) for g in (goal, other)]
    np.testing.assert_allclose(results[0].actions.numpy(), results[1].actions.numpy(), atol=1e-6)
    assert float(results[0].cost) == pytest.approx(float(results[1].cost), rel=1e-5)
    weighted = make_planner("grasp", model, horizon=4, iterations=2, seed=0, state_weights=torch.ones(12))
    costs = [float(weighted.plan(start, g).cost) for g in (goal, other)]
    assert costs[0] != pytest.approx(costs[1], rel=1e-3)
    assert make_planner("cem", tiny_model(history=1), horizon=4).goal_mask.tolist() == [1.0] * 4
