"""MLP world model: shapes and validation, ensembles, checkpoints, training quality, metrics."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from mpc_grasp.envs.grid_world import segment_hits_wall
from torch import nn

import mpc_grasp  # noqa: F401  (registers the env ids)
from mpc_grasp.data import TransitionDataset, collect_transitions
from mpc_grasp.models import (
    CheckpointError,
    MLPWorldModel,
    WorldModel,
    load_world_model,
    multi_step_error,
    one_step_error,
    save_world_model,
    train_world_model,
)
from mpc_grasp.models.checkpoint import CHECKPOINT_FORMAT
from mpc_grasp.models.mlp import INPUT_CLIP
from mpc_grasp.planners import make_planner


def make_model(ensemble_size: int = 1, seed: int = 0) -> MLPWorldModel:
    torch.manual_seed(seed)
    model = MLPWorldModel(3, 2, hidden_sizes=(32, 32), ensemble_size=ensemble_size)
    model.set_normalizers(
        torch.ones(3), 2 * torch.ones(3), torch.zeros(2), torch.ones(2), 0.1 * torch.ones(3), 0.5 * torch.ones(3)
    )
    return model


class LinearTruth(nn.Module):
    """The exact dynamics ``s' = s + 0.1 a`` of :func:`linear_dataset`, as a world model."""

    state_dim, action_dim = 2, 2

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return state + 0.1 * action


def linear_dataset(seed: int = 0) -> TransitionDataset:
    """Episodes of ``s' = s + 0.1 a`` with random lengths and far-apart starts, rows shuffled
    (as if interleaved by vector envs): a window crossing an episode boundary would show a jump."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    for episode in range(12):
        s = rng.uniform(-50, 50, size=2)
        for step in range(int(rng.integers(5, 60))):
            a = rng.uniform(-1, 1, size=2)
            rows.append((s, a, s + 0.1 * a, episode, step))
            s = s + 0.1 * a
    order = rng.permutation(len(rows))
    obs, act, nxt, eps, steps = (np.array([rows[i][k] for i in order]) for k in range(5))
    return TransitionDataset(
        observations=obs.astype(np.float32),
        actions=act.astype(np.float32),
        next_observations=nxt.astype(np.float32),
        terminated=np.zeros(len(rows), bool),
        episode_ids=eps,
        step_ids=steps,
    )


# --------------------------------------------------------------------------- shapes and API


@pytest.mark.parametrize("ensemble_size", [1, 4])
@pytest.mark.parametrize("lead", [(), (5,), (4, 7), (2, 3, 2)])
def test_forward_any_leading_shape(ensemble_size: int, lead: tuple[int, ...]) -> None:
    model = make_model(ensemble_size)
    state, action = torch.randn(*lead, 3), torch.randn(*lead, 2)
    out = model(state, action)
    assert out.shape == (*lead, 3) and out.dtype == torch.float32
    # batched evaluation equals row-by-row evaluation
    flat = model(state.reshape(-1, 3), action.reshape(-1, 2)).reshape(*lead, 3)
    torch.testing.assert_close(out, flat)
    mean, std = model.predict_distribution(state, action)
    assert mean.shape == std.shape == (*lead, 3) and bool((std > 0).all())
    torch.testing.assert_close(mean, out)
    means, stds = model.member_predictions(state, action)
    assert means.shape == (ensemble_size, *lead, 3)
    torch.testing.assert_close(means.mean(0), out)
    assert isinstance(model, WorldModel)


def test_forward_validates_shapes() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="state must have last dimension state_dim=3"):
        model(torch.zeros(5, 4), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="action must have last dimension action_dim=2"):
        model(torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="same leading"):
        model(torch.zeros(5, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="state must have last dimension"):
        model(torch.tensor(1.0), torch.zeros(2))
    # float64 / numpy inputs are accepted and cast
    assert model(np.zeros(3), np.zeros(2, dtype=np.float64)).shape == (3,)


def test_inputs_beyond_the_clip_give_the_clip_boundarys_step() -> None:
    """Inputs are clipped at INPUT_CLIP training stds, so a rollout fed its own far-out predictions drifts at most
    linearly: a constant-in-data dimension (std 1, as InvertedDoublePendulum's constraint force) moved to 100
    gives the step of the boundary state, not an exploding one."""
    model = make_model()
    states = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    states[:, 2] = 0.0  # constant in the data
    model.fit_normalizers(states, torch.randn(500, 2), states + 0.1)
    far, boundary = states[:4].clone(), states[:4].clone()
    far[:, 2], boundary[:, 2] = 100.0, float(model.state_mean[2] + INPUT_CLIP * model.state_std[2])
    action = torch.ones(4, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(far, action) - far, model(boundary, action) - boundary)
        reward_inputs = model.reward_inputs(far, action, far + 1e6)
    assert float(reward_inputs.abs().max()) <= INPUT_CLIP + 1e-6


def test_a_dim_constant_in_the_data_keeps_its_units() -> None:
    """A dim the data never moves (InvertedDoublePendulum's constraint force, 0 until the cart hits its rail) gets
    std 1, not a floor of 1e-4: the model's own small drift in it (0.01 after one predicted step) must not read as
    100 stds (clipped to 10) and send the next prediction anywhere."""
    model = make_model()
    states = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    states[:, 2] = 0.0
    model.fit_normalizers(states, torch.randn(500, 2), states + 0.1)
    assert float(model.state_std[2]) == 1.0 and float(model.state_std[0]) == pytest.approx(float(states[:, 0].std()))
    start, drifted, clipped = states[:4].clone(), states[:4].clone(), states[:4].clone()
    drifted[:, 2], clipped[:, 2] = 0.01, INPUT_CLIP
    action = torch.zeros(4, 2)
    with torch.no_grad():
        drift_change = (model(drifted, action) - model(start, action)).abs().max()
        clip_change = (model(clipped, action) - model(start, action)).abs().max()
    assert float(drift_change) < 0.01 * float(clip_change)


def test_ensemble_members_differ_and_std_includes_disagreement() -> None:
    model = make_model(ensemble_size=5)
    state, action = torch.randn(10, 3), torch.randn(10, 2)
    means, stds = model.member_predictions(state, action)
    assert not torch.allclose(means[0], means[1])
    _, std = model.predict_distribution(state, action)
    assert bool((std >= stds.square().mean(0).sqrt() - 1e-6).all())


def test_encode_and_gradients() -> None:
    model = make_model()
    torch.testing.assert_close(model.encode(np.array([1.0, 2.0, 3.0])), torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(
        model.encode({"observation": [1, 2, 3], "desired_goal": [0, 0, 0]}), torch.tensor([1.0, 2.0, 3.0])
    )
    with pytest.raises(ValueError, match="must end in shape"):
        model.encode(np.zeros(4))
    action = torch.zeros(6, 2, requires_grad=True)
    model(torch.randn(6, 3), action).sum().backward()
    assert action.grad is not None and bool(action.grad.abs().sum() > 0)


def test_config_rebuilds_architecture() -> None:
    model = make_model(ensemble_size=3)
    clone = MLPWorldModel(**model.config)
    clone.load_state_dict(model.state_dict())
    x, a = torch.randn(8, 3), torch.randn(8, 2)
    assert torch.equal(clone(x, a), model(x, a))
    with pytest.raises(ValueError, match="activation"):
        MLPWorldModel(3, 2, activation="swish!")


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_is_bit_identical(tmp_path: Path) -> None:
    model = make_model(ensemble_size=2)
    model.training_history = {"best_epoch": 3, "train_loss": [1.0, 0.5]}
    path = save_world_model(model, tmp_path / "m.pt", metadata={"env_id": "Pendulum-v1"})
    loaded = load_world_model(path)
    assert type(loaded) is MLPWorldModel and loaded.config == model.config and not loaded.training
    x, a = torch.randn(64, 3), torch.randn(64, 2)
    assert torch.equal(loaded(x, a), model(x, a))
    m1, s1 = loaded.predict_distribution(x, a)
    m2, s2 = model.predict_distribution(x, a)
    assert torch.equal(m1, m2) and torch.equal(s1, s2)
    assert loaded.metadata["env_id"] == "Pendulum-v1"
    assert loaded.training_history["best_epoch"] == 3
    for name in ("state_mean", "state_std", "delta_std"):
        assert torch.equal(getattr(loaded, name), getattr(model, name))


def test_checkpoint_rejects_bad_files(tmp_path: Path) -> None:
    path = save_world_model(make_model(), tmp_path / "good.pt")
    blob = path.read_bytes()

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt' is truncated or corrupt: its zip archive cannot be read$"):
        load_world_model(truncated)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 50)
    with pytest.raises(CheckpointError, match="garbage.pt' is not a torch checkpoint"):
        load_world_model(garbage)
    text = tmp_path / "notes.pt"
    text.write_text("epoch 101: loss 0.3\n")  # a text file: torch would say KeyError: 101
    with pytest.raises(CheckpointError, match=r"notes.pt' is not a torch checkpoint \(no zip archive"):
        load_world_model(text)

    payload = torch.load(path, weights_only=True)
    wrong_version = tmp_path / "v2.pt"
    torch.save({**payload, "version": 2}, wrong_version)
    with pytest.raises(CheckpointError, match="v2.pt.*version 2"):
        load_world_model(wrong_version)

    wrong_format = tmp_path / "other.pt"
    torch.save({"state_dict": payload["state_dict"]}, wrong_format)
    with pytest.raises(CheckpointError, match="other.pt.*not an mpc_grasp world-model checkpoint"):
        load_world_model(wrong_format)

    tampered_weights = {k: v.clone() for k, v in payload["state_dict"].items()}
    tampered_weights["weights.0"][0, 0, 0] += 1e-3
    tampered = tmp_path / "tampered.pt"
    torch.save({**payload, "state_dict": tampered_weights}, tampered)
    with pytest.raises(CheckpointError, match="tampered.pt.*sha256 mismatch"):
        load_world_model(tampered)

    tampered_config = tmp_path / "config.pt"
    torch.save({**payload, "config": {**payload["config"], "hidden_sizes": [64, 64]}}, tampered_config)
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_world_model(tampered_config)

    with pytest.raises(FileNotFoundError):
        load_world_model(tmp_path / "missing.pt")
    assert issubclass(CheckpointError, ValueError) and payload["format"] == CHECKPOINT_FORMAT


# --------------------------------------------------------------------------- training and metrics


def test_training_beats_no_change_predictor_on_pendulum() -> None:
    data = collect_transitions("Pendulum-v1", 6000, seed=0, num_envs=4, progress=False)
    train, test = data.split(0.15, seed=1)
    model = train_world_model(
        train, hidden_sizes=(128, 128), epochs=30, batch_size=256, seed=0, progress=False, num_threads=1
    )
    history = model.training_history
    assert history["n_train"] + history["n_val"] == len(train) and history["n_val"] > 0
    assert len(history["train_loss"]) == len(history["val_mse"]) >= history["best_epoch"] >= 1
    assert history["val_mse"][history["best_epoch"] - 1] == min(history["val_mse"])
    one = one_step_error(model, test)
    assert one["rmse"] < 0.25 * one["no_change_rmse"], one
    multi = multi_step_error(model, test, horizons=(1, 10, 50))
    assert multi["rmse"][0] == pytest.approx(one["rmse"], rel=1e-4)
    assert all(r < b for r, b in zip(multi["rmse"], multi["no_change_rmse"]))
    assert multi["n_windows"][0] > multi["n_windows"][2] > 0


def test_min_steps_raises_the_epochs_of_a_small_dataset_and_fits_it_better() -> None:
    """400 transitions are two batches per epoch: 20 epochs are 40 steps; ``min_steps=600`` makes them 300 epochs
    (recorded as run) and a lower held-out one-step error."""
    data = collect_transitions("Pendulum-v1", 600, seed=0, progress=False, env_kwargs={"max_episode_steps": 100})
    train, test = data.split(0.3, seed=1)
    options = dict(hidden_sizes=(64, 64), epochs=20, batch_size=256, patience=None, val_fraction=0.0, seed=0)
    short = train_world_model(train, progress=False, **options)
    long = train_world_model(train, min_steps=600, progress=False, **options)
    assert short.training_history["config"]["epochs"] == 20
    assert long.training_history["config"]["epochs"] == 300 == len(long.training_history["train_loss"])
    assert one_step_error(long, test)["rmse"] < 0.5 * one_step_error(short, test)["rmse"]
    with pytest.raises(ValueError, match="min_steps must be an integer >= 0"):
        train_world_model(train, min_steps=-1, progress=False)


def test_training_on_the_models_own_rollouts_cuts_the_error_that_compounds_over_a_horizon() -> None:
    """Held-out open-loop errors at 10 and 30 steps: a model also trained on its own 8-step rollouts
    (``rollout_steps=8``) beats the one-step loss alone by a fifth or more at the same epochs."""
    data = collect_transitions("Pendulum-v1", 1500, seed=0, progress=False, env_kwargs={"max_episode_steps": 100})
    train, test = data.split(0.3, seed=1)
    options = dict(hidden_sizes=(64, 64), epochs=60, val_fraction=0.0, seed=0, progress=False, num_threads=1)
    one_step = train_world_model(train, **options)
    rollouts = train_world_model(train, rollout_steps=8, **options)
    assert rollouts.training_history["config"]["rollout_steps"] == 8
    plain, trained = (multi_step_error(m, test, horizons=(10, 30))["rmse"] for m in (one_step, rollouts))
    assert all(r < 0.8 * p for r, p in zip(trained, plain)), (plain, trained)


def test_rollouts_longer_than_every_episode_leave_the_one_step_fit_and_bad_lengths_are_refused() -> None:
    data = linear_dataset()  # episodes of 5-59 steps
    options = dict(hidden_sizes=(16,), epochs=3, val_fraction=0.0, seed=0, progress=False)
    plain = train_world_model(data, **options)
    too_long = train_world_model(data, rollout_steps=200, **options)
    for name, weights in plain.state_dict().items():
        assert torch.equal(weights, too_long.state_dict()[name]), name
    with pytest.raises(ValueError, match="rollout_steps must be a positive integer"):
        train_world_model(data, rollout_steps=0, progress=False)


def test_training_options_and_time_cap() -> None:
    data = collect_transitions("Pendulum-v1", 2000, seed=0, progress=False, env_kwargs={"max_episode_steps": 100})
    model = train_world_model(
        data,
        hidden_sizes=(32,),
        ensemble_size=3,
        epochs=100_000,
        patience=None,
        max_time_s=1.0,
        loss="nll",
        progress=False,
    )
    assert model.training_history["stopped"] == "max_time_s" and model.ensemble_size == 3
    assert model.training_history["wall_time_s"] < 10.0
    assert model.metadata["env_id"] == "Pendulum-v1"
    with pytest.raises(ValueError, match="unknown loss"):
        train_world_model(data, loss="huber", progress=False)


def test_a_dataset_too_small_to_split_gets_a_warning_not_silence() -> None:
    tiny = collect_transitions("Pendulum-v1", 5, seed=0, progress=False)
    with pytest.warns(UserWarning, match=r"training on \d+ transitions with \d+ for validation: too few"):
        train_world_model(tiny, hidden_sizes=(8,), epochs=1, progress=False)
    enough = collect_transitions("Pendulum-v1", 400, seed=0, progress=False, env_kwargs={"max_episode_steps": 50})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        train_world_model(enough, hidden_sizes=(8,), epochs=1, progress=False)


def test_metrics_are_zero_for_the_true_model_and_windows_respect_episodes() -> None:
    data = linear_dataset()
    truth = LinearTruth()
    one = one_step_error(truth, data)
    assert one["rmse"] < 1e-5 and one["n"] == len(data)
    assert one["no_change_rmse"] == pytest.approx(
        0.1 * np.sqrt(np.mean(data.actions.astype(np.float64) ** 2)), rel=1e-3
    )
    horizons = (1, 10, 40)
    multi = multi_step_error(truth, data, horizons=horizons, max_windows=None)
    assert max(multi["rmse"]) < 1e-4  # float32 round-off only; a window across episodes would be off by ~50
    lengths = [len(t) for t in data.trajectories()]
    assert multi["n_windows"] == [sum(max(0, n - h + 1) for n in lengths) for h in horizons]
    assert 0 < multi["no_change_rmse"][0] < multi["no_change_rmse"][2]
    capped = multi_step_error(truth, data, horizons=horizons, max_windows=50)
    assert capped["n_windows"][0] == 50
    empty = multi_step_error(truth, data, horizons=(1000,))
    assert empty["n_windows"] == [0] and empty["rmse"] == [None]


def test_grid_world_wall_model_is_accurate_and_respects_the_wall(wall_model_and_held_out) -> None:
    """One-step error far below the 0.25 step, and pushing into the wall at full speed for 10 steps does not pass it."""
    model, test = wall_model_and_held_out
    one = one_step_error(model, test)
    assert one["rmse"] < 0.05, one  # displacement per step is up to 0.25
    assert multi_step_error(model, test, horizons=(10,))["rmse"][0] < 0.25
    face_left, face_right = 4.0 - 0.1, 5.0 + 0.1  # the agent's centre stops agent_radius from the wall
    ys = torch.tensor([2.0, 3.0, 4.0])  # the wall spans y in [1, 6]; the door is y in [6, 7]
    with torch.no_grad():
        left = torch.stack([torch.full_like(ys, 3.4), ys], dim=1)
        right = torch.stack([torch.full_like(ys, 5.6), ys], dim=1)
        push = torch.tensor([[1.0, 0.0]]).expand(len(ys), 2)
        max_left, min_right = left[:, 0].clone(), right[:, 0].clone()
        for _ in range(10):
            left, right = model(left, push), model(right, -push)
            max_left, min_right = torch.maximum(max_left, left[:, 0]), torch.minimum(min_right, right[:, 0])
    tolerance = 0.1  # the wall cell itself starts 0.1 beyond the face
    assert bool((max_left < face_left + tolerance).all()), max_left
    assert bool((min_right > face_right - tolerance).all()), min_right
    assert bool((max_left > face_left - 0.1).all()) and bool(
        (min_right < face_right + 0.1).all()
    )  # it does reach the wall


def _slow_push_into_the_wall(model: MLPWorldModel, speed: float, steps: int = 30) -> torch.Tensor:
    """Final x after pushing right at ``speed`` from x=3.5 (left room) at three heights; the face is at x=3.9."""
    with torch.no_grad():
        state = torch.tensor([[3.5, 2.0], [3.5, 3.0], [3.5, 4.0]])
        for _ in range(steps):
            state = model(state, torch.tensor([[speed, 0.0]]).expand(3, 2))
    return state[:, 0]


def test_fourier_features_sharpen_the_learned_wall(wall_dataset, wall_model_and_held_out) -> None:
    """Same data and budget with 64 Fourier features of the state: lower one-step error, and slow pushes
    stop at the wall instead of creeping into it (measured: RMSE 0.0215 -> 0.0120; after 30 pushes at half
    speed x = 4.00-4.06 plain vs 3.88-3.92 with features)."""
    plain, test = wall_model_and_held_out
    train, _ = wall_dataset
    sharp = train_world_model(
        train,
        hidden_sizes=(256, 256, 256),
        epochs=60,
        batch_size=512,
        lr=3e-3,
        seed=0,
        progress=False,
        num_threads=1,
        fourier_features=64,
    )
    assert sharp.config["fourier_features"] == 64 and sharp.normalize_inputs(
        torch.zeros(1, 2), torch.zeros(1, 2)
    ).shape == (1, 132)
    assert one_step_error(sharp, test)["rmse"] < 0.8 * one_step_error(plain, test)["rmse"]
    face = 3.9
    for speed in (0.25, 0.5):
        assert float(_slow_push_into_the_wall(sharp, speed).max()) < face + 0.06, speed
    assert float(_slow_push_into_the_wall(plain, 0.5).max()) > face + 0.06  # what the features fix


def test_fourier_model_round_trips_through_a_checkpoint(tmp_path) -> None:
    model = MLPWorldModel(2, 2, hidden_sizes=(16,), fourier_features=8, fourier_scale=2.0)
    path = save_world_model(model, tmp_path / "fourier.pt")
    loaded = load_world_model(path)
    state, action = torch.randn(5, 2), torch.randn(5, 2)
    torch.testing.assert_close(loaded(state, action), model(state, action))
    assert loaded.config["fourier_scale"] == 2.0
    with pytest.raises(ValueError, match="fourier"):
        MLPWorldModel(2, 2, fourier_features=-1)


def test_grasp_on_the_learned_model_goes_through_the_door_and_the_plan_works_in_the_real_env(
    wall_model_and_held_out,
) -> None:
    """Open loop: plan on the LEARNED model, execute the actions in the real grid world. The straight line from
    the left room to the right room is blocked by the wall; the plan must climb to the door (y in [6, 7]).
    A short detour, and only about half the planner seeds manage it (the model blurs the door corners): long
    across-room detours still fail with learned models (README, known limitations)."""
    model, _ = wall_model_and_held_out
    start, goal = np.array([3.0, 5.0], dtype=np.float32), np.array([6.5, 6.0], dtype=np.float32)
    assert segment_hits_wall("wall", start, goal)
    env = gym.make("mpc_grasp/GridWorldWall-v0").unwrapped
    successes = 0
    for seed in range(8):
        plan = make_planner("grasp", model, 30, iterations=300, goal_tolerance=0.3, seed=seed).plan(start, goal)
        position, closest = start.copy(), np.inf
        for action in plan.actions.numpy():
            position = env.transition(position, action)
            closest = min(closest, float(np.linalg.norm(position - goal)))
        successes += closest <= 0.3
    assert successes >= 2, (
        successes
    )  # 4/8 seeds here; seeds 0-3 alone gave 2/4, then 1/4 after a package refresh (knife edge)
