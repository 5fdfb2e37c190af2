"""Transition collection and dataset I/O: boundaries, determinism, vector envs, file validation."""

from __future__ import annotations

import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from mpc_grasp.data import DatasetError, TransitionDataset, collect_transitions, load_dataset


class CounterEnv(gym.Env):
    """obs = [steps taken in this episode, episode parity]; odd episodes terminate after 3 steps,
    even ones run until the TimeLimit truncates them, so every boundary is checkable exactly."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.count, self.parity = 0, 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count, self.parity = 0, float(self.np_random.integers(0, 2))
        return np.array([self.count, self.parity], dtype=np.float32), {}

    def step(self, action):
        self.count += 1
        terminated = self.parity == 1.0 and self.count >= 3
        return np.array([self.count, self.parity], dtype=np.float32), 1.0, terminated, False, {}


def counter_factory() -> gym.Env:
    return gym.wrappers.TimeLimit(CounterEnv(), max_episode_steps=5)


def small_pendulum(**kwargs) -> TransitionDataset:
    return collect_transitions(
        "Pendulum-v1", 300, seed=3, progress=False, env_kwargs={"max_episode_steps": 50}, **kwargs
    )


# --------------------------------------------------------------------------- collection


@pytest.mark.parametrize("num_envs", [1, 3])
def test_episode_boundaries_keep_true_final_observation(num_envs: int) -> None:
    data = collect_transitions(counter_factory, 400, seed=0, num_envs=num_envs, progress=False)
    assert len(data) == 400
    # every row is a real transition: obs counts the steps taken, next_obs one more (never a reset obs)
    np.testing.assert_array_equal(data.observations[:, 0], data.step_ids)
    np.testing.assert_array_equal(data.next_observations[:, 0], data.step_ids + 1)
    ends = data.terminated | data.truncated
    assert data.terminated.any() and data.truncated.any()
    odd = data.observations[:, 1] == 1.0
    assert np.all(data.next_observations[data.terminated, 0] == 3) and np.all(odd[data.terminated])
    assert np.all(data.next_observations[data.truncated, 0] == 5) and not np.any(odd[data.truncated])
    assert not np.any(data.terminated & data.truncated)
    # each finished episode has exactly one end row, and it is its last row
    for traj in data.trajectories():
        flags = ends[traj.indices]
        assert flags[:-1].sum() == 0
        np.testing.assert_array_equal(traj.next_observations[:-1], traj.observations[1:])


def test_vector_collection_is_deterministic_and_ids_are_unique() -> None:
    kwargs = dict(n_steps=500, num_envs=4, progress=False, env_kwargs={"max_episode_steps": 40})
    a = collect_transitions("Pendulum-v1", seed=7, **kwargs)
    b = collect_transitions("Pendulum-v1", seed=7, **kwargs)
    c = collect_transitions("Pendulum-v1", seed=8, **kwargs)
    for name in ("observations", "actions", "next_observations", "episode_ids", "step_ids", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.actions, c.actions)
    assert len(a) == 500 and a.metadata["num_envs"] == 4
    # (episode, step) pairs are unique and steps of an episode are 0..L-1
    pairs = set(zip(a.episode_ids.tolist(), a.step_ids.tolist()))
    assert len(pairs) == len(a)
    for traj in a.trajectories():
        np.testing.assert_array_equal(traj.step_ids, np.arange(len(traj)))
        np.testing.assert_array_equal(traj.next_observations[:-1], traj.observations[1:])
    assert np.all(a.actions >= -2.0) and np.all(a.actions <= 2.0)


def test_single_env_matches_instance_and_factory_paths() -> None:
    by_id = collect_transitions("Pendulum-v1", 120, seed=1, progress=False)
    instance = gym.make("Pendulum-v1")
    by_instance = collect_transitions(instance, 120, seed=1, progress=False)
    by_factory = collect_transitions(lambda: gym.make("Pendulum-v1"), 120, seed=1, progress=False)
    np.testing.assert_array_equal(by_id.observations, by_instance.observations)
    np.testing.assert_array_equal(by_id.next_observations, by_factory.next_observations)
    assert by_instance.env_id == "Pendulum-v1"
    instance.close()


def test_exploration_modes() -> None:
    def lag1(actions: np.ndarray) -> float:
        return float(np.corrcoef(actions[:-1, 0], actions[1:, 0])[0, 1])

    random = collect_transitions("MountainCarContinuous-v0", 2000, exploration="random", progress=False)
    correlated = collect_transitions("MountainCarContinuous-v0", 2000, exploration="correlated", progress=False)
    assert abs(lag1(random.actions)) < 0.1
    assert lag1(correlated.actions) > 0.7
    assert np.all(np.abs(correlated.actions) <= 1.0) and np.mean(np.abs(correlated.actions) == 1.0) > 0.05
    scripted = collect_transitions(
        "Pendulum-v1", 50, policy=lambda obs: np.array([1.0]), policy_noise=0.0, progress=False
    )
    np.testing.assert_array_equal(scripted.actions, np.ones((50, 1), dtype=np.float32))
    noisy = collect_transitions(
        "Pendulum-v1", 200, policy=lambda obs: np.array([0.0]), policy_noise=0.2, progress=False
    )
    assert 0.2 < noisy.actions.std() < 0.6  # 0.2 half-ranges of a [-2, 2] action = 0.4
    assert noisy.metadata["exploration"].startswith("policy:")


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown Gymnasium env id 'Pendulum-v9'.*Pendulum-v1"):
        collect_transitions("Pendulum-v9", 10, progress=False)
    with pytest.raises(ValueError, match="unknown exploration"):
        collect_transitions("Pendulum-v1", 10, exploration="levy", progress=False)
    with pytest.raises(ValueError, match="n_steps"):
        collect_transitions("Pendulum-v1", 0, progress=False)
    with pytest.raises(ValueError, match="num_envs > 1"):
        collect_transitions(gym.make("Pendulum-v1"), 10, num_envs=2, progress=False)
    with pytest.raises(ValueError, match="bounded Box action"):
        collect_transitions("CartPole-v1", 10, progress=False)


# --------------------------------------------------------------------------- dataset API and files


def test_save_load_round_trip(tmp_path: Path) -> None:
    data = small_pendulum()
    path = data.save(tmp_path / "sub" / "pendulum.npz")
    loaded = load_dataset(path, expected_env_id="Pendulum-v1")
    for name in (
        "observations",
        "actions",
        "next_observations",
        "terminated",
        "truncated",
        "rewards",
        "episode_ids",
        "step_ids",
    ):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name))
    for key in (
        "env_id",
        "seed",
        "n_steps",
        "exploration",
        "observation_space",
        "action_space",
        "package_version",
        "created",
    ):
        assert loaded.metadata[key] == data.metadata[key]
    assert loaded.metadata["observation_space"]["shape"] == [3]
    assert loaded.metadata["action_space"]["low"] == [-2.0]
    assert loaded.metadata["env_kwargs"] == {"max_episode_steps": 50}
    assert TransitionDataset.load(path).state_dim == 3


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    good = small_pendulum().save(tmp_path / "good.npz")
    blob = good.read_bytes()

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a numpy archive at all" * 10)
    with pytest.raises(ValueError, match="garbage.npz.*corrupt or truncated"):
        load_dataset(garbage)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated.npz.*corrupt or truncated"):
        load_dataset(truncated)

    with zipfile.ZipFile(good) as archive:
        names = archive.namelist()
    missing = tmp_path / "missing.npz"
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "actions"}
    np.savez(missing, **arrays)
    with pytest.raises(DatasetError, match=r"missing keys \['actions'\]"):
        load_dataset(missing)
    assert "actions.npy" in names

    inconsistent = tmp_path / "inconsistent.npz"
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["terminated"] = arrays["terminated"][:-3]
    np.savez(inconsistent, **arrays)
    with pytest.raises(ValueError, match="inconsistent lengths"):
        load_dataset(inconsistent)

    arrays["terminated"] = np.zeros(len(arrays["actions"]), dtype=bool)
    arrays["next_observations"] = arrays["next_observations"][:, :2]
    bad_shape = tmp_path / "bad_shape.npz"
    np.savez(bad_shape, **arrays)
    with pytest.raises(ValueError, match="next_observations shape"):
        load_dataset(bad_shape)

    with pytest.raises(ValueError, match="collected on env 'Pendulum-v1', expected 'mpc_grasp/GridWorld-v0'"):
        load_dataset(good, expected_env_id="mpc_grasp/GridWorld-v0")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nope.npz")


def test_split_by_whole_episodes() -> None:
    data = collect_transitions("Pendulum-v1", 1000, seed=0, progress=False, env_kwargs={"max_episode_steps": 50})
    train, val = data.split(0.2, seed=0)
    assert len(train) + len(val) == len(data)
    assert not set(train.episode_ids.tolist()) & set(val.episode_ids.tolist())
    assert 0.1 <= len(val) / len(data) <= 0.3
    train2, val2 = data.split(0.2, seed=0)
    np.testing.assert_array_equal(val.episode_ids, val2.episode_ids)
    # a single long episode is split in time instead
    one = collect_transitions("Pendulum-v1", 100, seed=0, progress=False)
    t1, v1 = one.split(0.25)
    assert (len(t1), len(v1)) == (75, 25)
    assert t1.step_ids.max() < v1.step_ids.min()
    assert [len(t) for t in v1.trajectories()] == [25]
    with pytest.raises(ValueError, match="val_fraction"):
        data.split(1.5)


def test_dataset_validates_arrays() -> None:
    n = 4
    ok = dict(
        observations=np.zeros((n, 2)),
        actions=np.zeros((n, 1)),
        next_observations=np.zeros((n, 2)),
        terminated=np.zeros(n, bool),
        episode_ids=np.zeros(n, int),
        step_ids=np.arange(n),
    )
    assert len(TransitionDataset(**ok)) == n
    with pytest.raises(DatasetError, match="inconsistent lengths"):
        TransitionDataset(**{**ok, "step_ids": np.arange(n + 1)})
    with pytest.raises(DatasetError, match="actions must have shape"):
        TransitionDataset(**{**ok, "actions": np.zeros(n)})
    with pytest.raises(DatasetError, match="episode_ids must hold integers"):
        TransitionDataset(**{**ok, "episode_ids": np.zeros(n)})


def test_grid_world_dict_observations() -> None:
    data = collect_transitions(
        "mpc_grasp/GridWorld-v0", 600, seed=0, num_envs=2, progress=False, env_kwargs={"layout": "wall"}
    )
    assert data.state_shape == (2,) and data.action_dim == 2
    assert data.metadata["obs_key"] == "observation"
    assert data.metadata["env_kwargs"] == {"layout": "wall"}
    delta = data.next_observations - data.observations
    assert np.all(np.abs(delta) <= 0.25 + 1e-5)  # velocity actions, 0.25 units per step at most
    assert np.mean(np.all(np.abs(delta) < 1e-6, axis=1) & np.any(np.abs(data.actions) > 0.2, axis=1)) < 0.5
    for traj in data.trajectories():
        np.testing.assert_array_equal(traj.next_observations[:-1], traj.observations[1:])


def test_info_keys_and_reset_options_survive_vector_autoresets(tmp_path: Path) -> None:
    starts = []

    def options(rng: np.random.Generator) -> dict:
        starts.append(rng.uniform(1.5, 2.5, size=2))
        return {"start": starts[-1], "goal": (7.0, 2.0)}

    data = collect_transitions(
        "mpc_grasp/GridWorld-v0",
        90,
        seed=0,
        num_envs=2,
        progress=False,
        env_kwargs={"layout": "wall", "max_episode_steps": 20},
        info_keys=("position",),
        reset_options=options,
    )
    # info[key] of each row's start / end observation is recorded, also across autoresets
    np.testing.assert_allclose(data.extras["position"], data.observations, atol=1e-6)
    np.testing.assert_allclose(data.extras["next_position"], data.next_observations, atol=1e-6)
    # every episode (first resets and autoresets alike) began at a drawn start
    first = data.observations[data.step_ids == 0]
    assert len(first) >= 4 and np.all((first >= 1.5) & (first <= 2.5))
    loaded = load_dataset(data.save(tmp_path / "extras.npz"))
    np.testing.assert_array_equal(loaded.extras["next_position"], data.extras["next_position"])
    assert set(data.subset(slice(0, 5)).extras) == {"position", "next_position"}
    with pytest.raises(ValueError, match="did not report info\\['nope'\\]"):
        collect_transitions("mpc_grasp/GridWorld-v0", 5, progress=False, info_keys=("nope",))
    with pytest.raises(TypeError, match="reset_options must be callable"):
        collect_transitions("mpc_grasp/GridWorld-v0", 5, progress=False, reset_options={"start": (2, 2)})
    with pytest.raises(DatasetError, match="extras\\['x'\\]"):
        TransitionDataset(
            **{
                name: getattr(data, name)
                for name in ("observations", "actions", "next_observations", "terminated", "episode_ids", "step_ids")
            },
            extras={"x": np.zeros(3)},
        )
