"""Pixel envs (``envs/pixels.py``) and the pixel world model (``mpc_grasp/models/pixel.py``).

One small model is trained once per module (~1.5k env steps, 150 image iterations; ~30 s on one
CPU thread) and checked against the true agent positions on held-out frames.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from mpc_grasp.envs import ENV_IDS, PIXEL_ENV_IDS, PixelCartPoleEnv, PixelGridWorldEnv

import mpc_grasp  # noqa: F401  (registers the env ids)
from mpc_grasp.models.checkpoint import CheckpointError
from mpc_grasp.models.pixel import (
    PixelDataset,
    PixelWorldModel,
    collect_pixel_dataset,
    decode_latent_strip,
    evaluate_pixel_world_model,
    latent_distance_correlation,
    load_or_train_pixel_world_model,
    load_pixel_world_model,
    save_pixel_world_model,
    train_pixel_world_model,
)

WALL_ID = "mpc_grasp/PixelGridWorldWall-v0"


# ------------------------------------------------------------------------------------- envs


def test_pixel_ids_registered_separately() -> None:
    assert set(PIXEL_ENV_IDS) == {"mpc_grasp/PixelGridWorld-v0", WALL_ID, "mpc_grasp/PixelCartPoleSwingup-v0"}
    assert not set(PIXEL_ENV_IDS) & set(ENV_IDS)
    assert set(PIXEL_ENV_IDS) <= set(gym.registry)
    assert gym.spec(WALL_ID).max_episode_steps == 100


@pytest.mark.parametrize("env_id", PIXEL_ENV_IDS)
def test_pixel_env_check_env_and_spaces(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    problems = [str(w.message) for w in caught if "infinity" not in str(w.message)]
    assert not problems, problems
    obs, info = env.reset(seed=0)
    channels = 6 if "CartPole" in env_id else 3
    for key in ("observation", "desired_goal"):
        assert obs[key].shape == (64, 64, channels) and obs[key].dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert "state" in info and "goal_state" in info and "goal" not in info
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and "state" in info
    env.close()


def test_grid_goal_image_is_render_at_goal_without_marker() -> None:
    env = gym.make("mpc_grasp/PixelGridWorld-v0", layout="umaze")
    base: PixelGridWorldEnv = env.unwrapped
    goal = np.array([1.5, 2.0])
    obs, info = env.reset(seed=1, options={"start": (7.0, 2.0), "goal": goal})
    np.testing.assert_array_equal(obs["desired_goal"], base.render_position(goal, None))
    np.testing.assert_array_equal(obs["observation"], base.render_position((7.0, 2.0), None))
    np.testing.assert_array_equal(info["state"], [7.0, 2.0])
    np.testing.assert_array_equal(info["goal_state"], goal)
    # standing on the goal: observation and goal image are the same picture
    obs, _ = env.reset(options={"start": goal, "goal": goal})
    np.testing.assert_array_equal(obs["observation"], obs["desired_goal"])
    # the goal image never changes within an episode and is not aliased between steps
    first = obs["desired_goal"]
    first[:] = 0
    obs, *_ = env.step(np.array([1.0, 0.0], dtype=np.float32))
    np.testing.assert_array_equal(obs["desired_goal"], base.render_position(goal, None))
    assert base.render_mode is None and base.layout == "umaze"


def test_cartpole_frame_stack_and_upright_goal() -> None:
    env = gym.make("mpc_grasp/PixelCartPoleSwingup-v0")
    base: PixelCartPoleEnv = env.unwrapped
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs["observation"][..., :3], obs["observation"][..., 3:])  # reset: repeated frame
    upright = base.render_state(np.zeros(4))
    np.testing.assert_array_equal(obs["desired_goal"], np.concatenate([upright, upright], axis=-1))
    previous = obs["observation"][..., 3:].copy()
    obs, _, _, _, info = env.step(np.array([1.0], dtype=np.float32))
    np.testing.assert_array_equal(obs["observation"][..., :3], previous)
    np.testing.assert_array_equal(obs["observation"][..., 3:], base.render_state(info["state"]))
    with pytest.raises(ValueError, match="frame_stack"):
        PixelCartPoleEnv(frame_stack=0)


# ------------------------------------------------------------------------------------- data


def test_collect_dataset_segments_and_roundtrip(tmp_path: Path) -> None:
    data = collect_pixel_dataset(WALL_ID, 60, seed=3, episode_length=25)
    assert data.frames.shape[1:] == (64, 64, 3) and data.frames.dtype == np.uint8
    assert data.num_transitions == 60 and data.states is not None and data.states.shape[1] == 2
    for i in data.window_starts(3):  # windows never cross a segment boundary
        assert len(set(data.segment_ids[i : i + 4])) == 1
    again = collect_pixel_dataset(WALL_ID, 60, seed=3, episode_length=25)
    np.testing.assert_array_equal(data.frames, again.frames)  # deterministic given the seed
    data.save(tmp_path / "d.npz")
    loaded = PixelDataset.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(loaded.frames, data.frames)
    np.testing.assert_array_equal(loaded.segment_ids, data.segment_ids)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an mpc_grasp pixel dataset"):
        PixelDataset.load(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="uint8 image"):
        collect_pixel_dataset("mpc_grasp/GridWorldWall-v0", 5)


def test_collection_goes_through_collect_transitions_with_vector_envs() -> None:
    data = collect_pixel_dataset(WALL_ID, 80, seed=5, episode_length=15, num_envs=2)
    assert data.num_transitions == 80 and data.states is not None and np.isfinite(data.states).all()
    base: PixelGridWorldEnv = gym.make(WALL_ID).unwrapped
    for i in range(0, len(data), 7):  # every frame shows the agent at its recorded true state
        np.testing.assert_array_equal(data.frames[i], base.render_position(data.states[i], None))
    for i in data.window_starts(1):  # consecutive frames of a segment are one action apart
        assert np.abs(data.states[i + 1] - data.states[i]).max() <= 0.25 + 1e-9
    assert np.all(np.bincount(data.segment_ids) <= 16)  # episodes end after episode_length steps


def test_from_transitions_rebuilds_sequences() -> None:
    data = collect_pixel_dataset(WALL_ID, 30, seed=4, episode_length=10)
    keep = np.flatnonzero(data.segment_ids[1:] == data.segment_ids[:-1])  # transition rows

    class Transitions:
        observations = data.frames[keep]
        actions = data.actions[keep]
        next_observations = data.frames[keep + 1]
        episode_ids = data.segment_ids[keep]

    rebuilt = PixelDataset.from_transitions(Transitions())
    np.testing.assert_array_equal(rebuilt.frames, data.frames)
    np.testing.assert_array_equal(rebuilt.segment_ids, data.segment_ids)
    np.testing.assert_allclose(rebuilt.actions[keep], data.actions[keep])


# ------------------------------------------------------------------------------------- model


@pytest.fixture(scope="module")
def trained() -> tuple[PixelWorldModel, PixelDataset]:
    torch.set_num_threads(1)
    data = collect_pixel_dataset(WALL_ID, 1500, seed=0, episode_length=40)
    model = train_pixel_world_model(
        data, latent_dim=8, iterations=150, batch_size=16, dynamics_iterations=200, seed=0, progress=False
    )
    held_out = collect_pixel_dataset(WALL_ID, 300, seed=123)  # other seed: unseen frames
    return model, held_out


def test_latent_distance_tracks_true_distance_on_held_out_frames(trained: tuple[PixelWorldModel, PixelDataset]) -> None:
    model, held_out = trained
    result = latent_distance_correlation(model, held_out.frames, held_out.states)
    # an untrained encoder gives ~0.0 here; the trained keypoints are ~linear in the position
    assert result["spearman"] > 0.9 and result["pearson"] > 0.9, result
    assert result["monotonic"], result["binned_latent_distance"]
    untrained = latent_distance_correlation(
        PixelWorldModel(action_dim=2, latent_dim=8), held_out.frames, held_out.states
    )
    assert untrained["spearman"] < result["spearman"]


def test_trained_model_reconstructs_and_predicts(trained: tuple[PixelWorldModel, PixelDataset]) -> None:
    model, held_out = trained
    metrics = evaluate_pixel_world_model(model, held_out)
    frames = held_out.frames.astype(np.float32) / 255.0
    background_only = float(((frames - np.median(frames, axis=0)) ** 2).mean())  # a decoder ignoring the agent
    assert metrics["recon_mse"] < 0.7 * background_only, (metrics, background_only)  # measured ~0.45x
    assert metrics["h_step_error"] < 0.5, metrics  # 10-step rollouts beat "nothing moves" clearly (~0.2)
    info = model.training_info
    assert info["transitions"] == 1500 and info["iterations"] == 150
    assert {"recon_mse", "one_step_error", "latent_spearman"} <= set(info["validation"])


def test_encode_accepts_uint8_numpy_and_float_torch(trained: tuple[PixelWorldModel, PixelDataset]) -> None:
    model, held_out = trained
    images = held_out.frames[:5]
    from_uint8 = model.encode(images)
    from_float = model.encode(torch.as_tensor(images).float() / 255.0)
    from_dict = model.encode({"observation": images, "desired_goal": images})
    assert from_uint8.shape == (5, model.latent_dim)
    torch.testing.assert_close(from_uint8, from_float)
    torch.testing.assert_close(from_uint8, from_dict)
    # leading batch shapes are kept; a single image gives one latent
    assert model.encode(images.reshape(5, 1, 64, 64, 3)).shape == (5, 1, model.latent_dim)
    torch.testing.assert_close(model.encode(images[0]), from_uint8[0])


def test_bad_images_raise_clear_errors(trained: tuple[PixelWorldModel, PixelDataset]) -> None:
    model, held_out = trained
    with pytest.raises(ValueError, match=r"\[\.\.\., 64, 64, 3\]"):
        model.encode(np.zeros((2, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="channel-first"):
        model.encode(np.zeros((2, 3, 64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.encode(held_out.frames[:2].astype(np.float32))  # 0..255 floats
    with pytest.raises(ValueError, match="NaN"):
        model.encode(np.full((64, 64, 3), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="'observation'"):
        model.encode({"pixels": held_out.frames[:1]})


def test_forward_contract_and_decode(trained: tuple[PixelWorldModel, PixelDataset]) -> None:
    model, held_out = trained
    assert model.state_dim == model.latent_dim == 8 and model.action_dim == 2
    z = model.encode(held_out.frames[:6]).reshape(2, 3, 8)
    nxt = model(z, torch.zeros(2, 3, 2))
    assert nxt.shape == (2, 3, 8)
    assert model(z[0, 0], torch.zeros(4, 2)).shape == (4, 8)  # leading shapes broadcast
    with pytest.raises(ValueError, match="action_dim"):
        model(z, torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="latent_dim"):
        model(torch.zeros(5), torch.zeros(2))
    with torch.no_grad():
        images = model.decode(z)
    assert images.shape == (2, 3, 64, 64, 3) and float(images.min()) >= 0 and float(images.max()) <= 1
    strip = decode_latent_strip(model, z[0], reference=held_out.frames[:3], gap=2)
    assert strip.dtype == np.uint8 and strip.shape == (64 * 2 + 2, 3 * 64 + 2 * 2, 3)


def test_plans_with_grasp_in_latent_space(trained: tuple[PixelWorldModel, PixelDataset]) -> None:
    from mpc_grasp import make_planner

    model, held_out = trained
    start, goal = model.encode(held_out.frames[0]), model.encode(held_out.frames[20])
    result = make_planner("grasp", model, horizon=6, iterations=5, num_candidates=2).plan(start.detach(), goal.detach())
    assert result.actions.shape == (6, 2) and torch.isfinite(result.states).all()


def test_checkpoint_roundtrip_and_corruption(trained: tuple[PixelWorldModel, PixelDataset], tmp_path: Path) -> None:
    model, held_out = trained
    path = tmp_path / "pixel.pt"
    save_pixel_world_model(model, path)
    loaded = load_pixel_world_model(path)
    z = model.encode(held_out.frames[:4])
    torch.testing.assert_close(loaded.encode(held_out.frames[:4]), z)
    torch.testing.assert_close(loaded(z, torch.ones(4, 2)), model(z, torch.ones(4, 2)))
    assert loaded.training_info["validation"] == pytest.approx(model.training_info["validation"])
    raw = bytearray(path.read_bytes())
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CheckpointError):
        load_pixel_world_model(corrupt)
    with pytest.raises(FileNotFoundError):
        load_pixel_world_model(tmp_path / "missing.pt")
    tampered = torch.load(path, weights_only=True)
    tampered["state_dict"]["dynamics.0.bias"] += 1.0
    torch.save(tampered, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="integrity"):
        load_pixel_world_model(tmp_path / "tampered.pt")


def test_training_is_deterministic_given_seed() -> None:
    data = collect_pixel_dataset(WALL_ID, 80, seed=1, episode_length=20)
    kwargs = dict(
        latent_dim=4, iterations=3, batch_size=4, dynamics_iterations=3, seed=7, progress=False, hidden_dim=32
    )
    first = train_pixel_world_model(data, **kwargs)
    second = train_pixel_world_model(data, **kwargs)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_invalid_configs_raise() -> None:
    with pytest.raises(ValueError, match="even"):
        PixelWorldModel(action_dim=2, latent_dim=7)
    with pytest.raises(ValueError, match="multiple of 4"):
        PixelWorldModel(action_dim=2, image_size=30)
    data = collect_pixel_dataset(WALL_ID, 10, seed=0, episode_length=2)
    with pytest.raises(ValueError, match="no training window"):
        train_pixel_world_model(data, rollout_steps=4, iterations=1, progress=False)
    with pytest.raises(FileNotFoundError):
        train_pixel_world_model("missing_dataset.npz", progress=False)


def test_load_or_train_from_env_id(tmp_path: Path) -> None:
    path = tmp_path / "wall.pt"
    tiny = dict(
        n_steps=120,
        episode_length=30,
        iterations=2,
        batch_size=4,
        dynamics_iterations=2,
        latent_dim=4,
        hidden_dim=32,
        progress=False,
    )
    model = load_or_train_pixel_world_model(WALL_ID, path, **tiny)
    assert path.is_file() and model.training_info["source"] == WALL_ID and model.training_info["transitions"] == 120
    again = load_or_train_pixel_world_model(WALL_ID, path)  # loads, does not retrain
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    assert again.metadata["env_id"] == WALL_ID
    with pytest.raises(CheckpointError, match="trained on"):
        load_or_train_pixel_world_model("mpc_grasp/PixelGridWorld-v0", path, env_kwargs={"layout": "umaze"})


def test_stacked_cartpole_frames_encode() -> None:
    data = collect_pixel_dataset("mpc_grasp/PixelCartPoleSwingup-v0", 20, seed=0)
    assert data.frames.shape[1:] == (64, 64, 6) and data.states.shape[1] == 4 and data.actions.shape[1] == 1
    model = PixelWorldModel(action_dim=1, latent_dim=8, channels=6)
    z = model.encode(data.frames[:3])
    assert z.shape == (3, 8) and model(z, torch.zeros(3, 1)).shape == (3, 8)
    with pytest.raises(ValueError, match="64, 64, 6"):
        model.encode(data.frames[:3, ..., :3])


def test_grasp_mpc_reaches_the_goal_image_in_pixel_wall(trained: tuple[PixelWorldModel, PixelDataset]) -> None:
    """Closed loop from pixels only: GraspMPC plans in the latent space toward the encoded goal
    image (read from the observation) and the REAL env reports success."""
    from mpc_grasp import GraspMPC

    model, _ = trained
    env = gym.make(WALL_ID)
    agent = GraspMPC(
        model,
        planner="grasp",
        horizon=15,
        action_space=env.action_space,
        replan_every=5,
        iterations=100,
        num_candidates=8,
        seed=0,  # no latent overrides: GRASP's state-side defaults are in units of the model's latent scale
    )
    reached = []
    for start, goal in (((2.0, 2.0), (2.5, 4.5)), ((6.5, 3.0), (6.0, 5.5))):  # one task per room
        obs, info = env.reset(seed=0, options={"start": start, "goal": goal})
        agent.reset()
        for step in range(1, 31):  # noqa: B007 (read after the loop)
            action, _ = agent.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        reached.append((bool(info["is_success"]), step, float(np.linalg.norm(info["state"] - np.asarray(goal)))))
    assert all(ok for ok, _, _ in reached), reached
    # the last observation encodes close to the goal image (latent distance shrank from the start)
    with torch.no_grad():
        assert float((model.encode(obs["observation"]) - model.encode(obs["desired_goal"])).norm()) < 0.3


def test_diagnostics_gradient_norms_and_filmstrip(trained: tuple[PixelWorldModel, PixelDataset]) -> None:
    from bench.diagnostics import HISTORY_KEYS, gradient_reshaping_histories, plan_filmstrip

    from mpc_grasp import make_planner

    model, held_out = trained
    with torch.no_grad():
        z = model.encode(held_out.frames[[0, 20, 40, 60]])
    histories = gradient_reshaping_histories(
        model, z[:2], z[2:], horizon=6, iterations=7, num_candidates=2, sync_every=0
    )
    assert set(histories) == {"detached", "full"}
    for hist in histories.values():
        assert all(hist[key].shape == (7,) and np.isfinite(hist[key]).all() for key in HISTORY_KEYS)
        assert hist["final_distance"].shape == (2,)
    # same seed and initialisation: only the detach differs, and it changes the state gradients (D_sF terms)
    assert not np.allclose(histories["detached"]["state_grad_norm"], histories["full"]["state_grad_norm"])
    with pytest.raises(ValueError, match="detach_states"):
        gradient_reshaping_histories(model, z[0], z[1], horizon=4, detach_states=False)

    plan = make_planner("grasp", model, horizon=6, iterations=3, num_candidates=2).plan(z[0], z[1])
    rows = plan_filmstrip(model, plan, z[1], held_out.frames[:5], every=2)
    assert [label for label, _ in rows] == ["virtual states (decoded)", "model rollout (decoded)", "real env"]
    assert all(
        image.dtype == np.uint8 and image.shape == (64, 4 * 64 + 3 * 2, 3) for _, image in rows
    )  # steps 0, 2, 4, 6
    with pytest.raises(ValueError, match="at most 7"):
        plan_filmstrip(model, plan, z[1], held_out.frames[:9])
