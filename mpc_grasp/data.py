"""Transition datasets for world-model learning: collection from Gymnasium envs and ``.npz`` I/O.

A :class:`TransitionDataset` holds ``(obs, action, next_obs, terminated)`` rows plus episode / step
ids, so models can be validated on whole held-out episodes and multi-step rollouts never cross an
episode boundary. :func:`collect_transitions` fills one with random, temporally correlated or
(noisy) scripted exploration, optionally over several vectorised envs.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from tqdm.auto import tqdm

__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "EXPLORATIONS",
    "DatasetError",
    "Trajectory",
    "TransitionDataset",
    "collect_transitions",
    "collect_transitions_parallel",
    "concatenate_datasets",
    "load_dataset",
    "make_env",
    "shard_seeds",
    "space_description",
]

DATASET_FORMAT = "mpc_grasp.transitions"
DATASET_VERSION = 1
EXPLORATIONS = ("random", "correlated")

# array fields stored in the .npz, in order; all must have the same first dimension
_ARRAY_FIELDS = (
    "observations",
    "actions",
    "next_observations",
    "terminated",
    "truncated",
    "rewards",
    "episode_ids",
    "step_ids",
)
_METADATA_KEY = "metadata_json"
_EXTRA_PREFIX = "extra."  # optional per-row arrays (TransitionDataset.extras) are stored as "extra.<name>"


class DatasetError(ValueError):
    """A dataset file or array set that is missing, malformed or for another environment."""


# --------------------------------------------------------------------------- dataset containers


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One contiguous run of an episode (rows sorted by step), for multi-step evaluation."""

    episode_id: int
    observations: np.ndarray  # [L, ...]
    actions: np.ndarray  # [L, A]
    next_observations: np.ndarray  # [L, ...]
    terminated: np.ndarray  # [L] bool
    step_ids: np.ndarray  # [L]
    indices: np.ndarray  # [L] row indices into the dataset

    def __len__(self) -> int:
        return int(self.actions.shape[0])


@dataclass(eq=False)
class TransitionDataset:
    """Transitions ``(observations[i], actions[i]) -> next_observations[i]`` from Gymnasium episodes.

    ``episode_ids[i]`` / ``step_ids[i]`` locate each row in its episode (rows of different episodes
    may be interleaved, e.g. from vector envs). ``terminated[i]`` / ``truncated[i]`` mark the last
    transition of an episode; ``next_observations`` of such a row is the true final observation.
    ``extras`` holds optional per-row arrays (``[N, ...]``), e.g. ``"state"`` / ``"next_state"``
    recorded from ``info`` by ``collect_transitions(info_keys=("state",))`` for evaluation.
    """

    observations: np.ndarray
    actions: np.ndarray
    next_observations: np.ndarray
    terminated: np.ndarray
    episode_ids: np.ndarray
    step_ids: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    truncated: np.ndarray | None = None
    rewards: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = _leading_len(self.actions, "actions")
        if self.truncated is None:
            self.truncated = np.zeros(n, dtype=bool)
        if self.rewards is None:
            self.rewards = np.zeros(n, dtype=np.float32)
        self.observations = _as_numeric(self.observations, "observations")
        self.next_observations = _as_numeric(self.next_observations, "next_observations")
        self.actions = _as_numeric(self.actions, "actions").astype(np.float32, copy=False)
        self.terminated = np.asarray(self.terminated).astype(bool, copy=False)
        self.truncated = np.asarray(self.truncated).astype(bool, copy=False)
        self.rewards = _as_numeric(self.rewards, "rewards").astype(np.float32, copy=False)
        self.episode_ids = _as_integer(self.episode_ids, "episode_ids")
        self.step_ids = _as_integer(self.step_ids, "step_ids")
        if not isinstance(self.metadata, dict):
            raise DatasetError(f"metadata must be a dict, got {type(self.metadata).__name__}")
        if not isinstance(self.extras, Mapping):
            raise DatasetError(f"extras must be a dict of arrays, got {type(self.extras).__name__}")
        self.extras = {str(k): _as_numeric(v, f"extras[{k!r}]") for k, v in self.extras.items()}
        self._check_consistency()

    # -- validation -----------------------------------------------------------------------------
    def _check_consistency(self) -> None:
        n = len(self.actions)
        if self.actions.ndim != 2:
            raise DatasetError(f"actions must have shape [N, action_dim], got {self.actions.shape}")
        if self.observations.ndim < 2:
            raise DatasetError(f"observations must have shape [N, ...state shape], got {self.observations.shape}")
        if self.next_observations.shape != self.observations.shape:
            raise DatasetError(
                f"next_observations shape {self.next_observations.shape} differs from observations shape "
                f"{self.observations.shape}"
            )
        for name in ("terminated", "truncated", "rewards", "episode_ids", "step_ids"):
            value = getattr(self, name)
            if value.ndim != 1:
                raise DatasetError(f"{name} must be 1-D [N], got shape {value.shape}")
        lengths = {name: len(getattr(self, name)) for name in _ARRAY_FIELDS}
        if len(set(lengths.values())) != 1:
            detail = ", ".join(f"{k}={v}" for k, v in lengths.items())
            raise DatasetError(f"dataset arrays have inconsistent lengths ({detail}); expected all {n}")
        for name, value in self.extras.items():
            if value.ndim < 1 or len(value) != n:
                raise DatasetError(f"extras[{name!r}] must have shape [N={n}, ...], got {value.shape}")
        if n and (self.step_ids.min() < 0 or self.episode_ids.min() < 0):
            raise DatasetError("episode_ids and step_ids must be non-negative")

    # -- basic properties -----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def state_shape(self) -> tuple[int, ...]:
        """Shape of one stored observation (the model's state for vector observations)."""
        return tuple(int(d) for d in self.observations.shape[1:])

    @property
    def state_dim(self) -> int:
        """Flat size of one observation."""
        return int(np.prod(self.state_shape))

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def num_episodes(self) -> int:
        return int(np.unique(self.episode_ids).size)

    def __repr__(self) -> str:
        return (
            f"TransitionDataset(env_id={self.env_id!r}, n={len(self)}, episodes={self.num_episodes}, "
            f"state_shape={self.state_shape}, action_dim={self.action_dim})"
        )

    # -- slicing --------------------------------------------------------------------------------
    def subset(self, index: np.ndarray | slice, **metadata_updates: Any) -> TransitionDataset:
        """Rows selected by an index array, boolean mask or slice (metadata copied and updated)."""
        meta = dict(self.metadata)
        meta.update(metadata_updates)
        return TransitionDataset(
            observations=self.observations[index],
            actions=self.actions[index],
            next_observations=self.next_observations[index],
            terminated=self.terminated[index],
            episode_ids=self.episode_ids[index],
            step_ids=self.step_ids[index],
            metadata=meta,
            truncated=self.truncated[index],
            rewards=self.rewards[index],
            extras={name: value[index] for name, value in self.extras.items()},
        )

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[TransitionDataset, TransitionDataset]:
        """Split into ``(train, val)`` by whole episodes, about ``val_fraction`` of the rows in val.

        Both parts get at least one episode. A dataset with a single episode is split in time
        instead (the last ``val_fraction`` of its steps, given a new episode id).
        """
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if len(self) < 2:
            raise ValueError(f"cannot split a dataset with {len(self)} transition(s)")
        episodes, counts = np.unique(self.episode_ids, return_counts=True)
        if episodes.size < 2:
            order = np.argsort(self.step_ids, kind="stable")
            n_val = min(max(1, int(round(val_fraction * len(self)))), len(self) - 1)
            train_idx, val_idx = np.sort(order[:-n_val]), np.sort(order[-n_val:])
            val = self.subset(val_idx, split="val", split_seed=seed, val_fraction=val_fraction)
            val.episode_ids = np.full(len(val), int(episodes[0]) + 1, dtype=np.int64)
            return self.subset(train_idx, split="train", split_seed=seed, val_fraction=val_fraction), val
        rng = np.random.default_rng(seed)
        order = rng.permutation(episodes.size)
        target = val_fraction * len(self)
        cumulative = np.cumsum(counts[order])
        n_val_eps = int(np.searchsorted(cumulative, target) + 1)  # first prefix reaching the target
        n_val_eps = min(max(n_val_eps, 1), episodes.size - 1)
        if n_val_eps > 1 and abs(cumulative[n_val_eps - 2] - target) <= abs(cumulative[n_val_eps - 1] - target):
            n_val_eps -= 1  # the shorter prefix is closer to the requested fraction
        val_eps = episodes[order[:n_val_eps]]
        is_val = np.isin(self.episode_ids, val_eps)
        common = dict(split_seed=seed, val_fraction=val_fraction)
        return self.subset(~is_val, split="train", **common), self.subset(is_val, split="val", **common)

    def trajectories(self, min_length: int = 1) -> Iterator[Trajectory]:
        """Yield contiguous per-episode runs sorted by step (a gap in ``step_ids`` starts a new run)."""
        if len(self) == 0:
            return
        order = np.lexsort((self.step_ids, self.episode_ids))
        eps, steps = self.episode_ids[order], self.step_ids[order]
        breaks = np.flatnonzero((np.diff(eps) != 0) | (np.diff(steps) != 1)) + 1
        for run in np.split(order, breaks):
            if run.size < min_length:
                continue
            yield Trajectory(
                episode_id=int(self.episode_ids[run[0]]),
                observations=self.observations[run],
                actions=self.actions[run],
                next_observations=self.next_observations[run],
                terminated=self.terminated[run],
                step_ids=self.step_ids[run],
                indices=run,
            )

    # -- I/O ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a single compressed ``.npz`` (arrays + metadata as JSON), atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.metadata, "format": DATASET_FORMAT, "format_version": DATASET_VERSION}
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        arrays.update({_EXTRA_PREFIX + name: value for name, value in self.extras.items()})
        arrays[_METADATA_KEY] = np.array(json.dumps(_jsonable(meta), sort_keys=True))
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], expected_env_id: str | None = None) -> TransitionDataset:
        """Read a file written by :meth:`save`; ``DatasetError`` (a ``ValueError``) if it is unusable."""
        return load_dataset(path, expected_env_id=expected_env_id)


def load_dataset(path: str | os.PathLike[str], expected_env_id: str | None = None) -> TransitionDataset:
    """Load and validate a transition ``.npz``.

    Raises ``FileNotFoundError`` for a missing file and :class:`DatasetError` (a ``ValueError``)
    naming the file when it is corrupt or truncated, lacks keys, has inconsistent arrays, has an
    unknown format version, or was collected on an env other than ``expected_env_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):  # pragma: no cover - np.load returns NpzFile for zips
                raise DatasetError("not an .npz archive")
            keys = set(npz.files)
            missing = [k for k in (*_ARRAY_FIELDS, _METADATA_KEY) if k not in keys]
            if missing:
                raise DatasetError(f"missing keys {missing} (has {sorted(keys)})")
            arrays = {k: npz[k] for k in (*_ARRAY_FIELDS, _METADATA_KEY)}
            extras = {k[len(_EXTRA_PREFIX) :]: npz[k] for k in npz.files if k.startswith(_EXTRA_PREFIX)}
    except DatasetError as error:
        raise DatasetError(f"dataset {str(path)!r} is invalid: {error}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as error:
        raise DatasetError(
            f"dataset {str(path)!r} is corrupt or truncated (not a readable .npz): {type(error).__name__}: {error}"
        ) from None
    try:
        meta = json.loads(str(arrays.pop(_METADATA_KEY)))
        if not isinstance(meta, dict):
            raise DatasetError("metadata is not a JSON object")
    except (json.JSONDecodeError, TypeError) as error:
        raise DatasetError(f"dataset {str(path)!r} has unreadable metadata: {error}") from None
    except DatasetError as error:
        raise DatasetError(f"dataset {str(path)!r} is invalid: {error}") from None
    if meta.get("format") != DATASET_FORMAT:
        raise DatasetError(f"dataset {str(path)!r} has format {meta.get('format')!r}, expected {DATASET_FORMAT!r}")
    if meta.get("format_version") != DATASET_VERSION:
        raise DatasetError(
            f"dataset {str(path)!r} has format version {meta.get('format_version')!r}; this version of "
            f"mpc_grasp reads version {DATASET_VERSION}"
        )
    if expected_env_id is not None and meta.get("env_id") != expected_env_id:
        raise DatasetError(
            f"dataset {str(path)!r} was collected on env {meta.get('env_id')!r}, expected {expected_env_id!r}"
        )
    try:
        return TransitionDataset(metadata=meta, extras=extras, **arrays)
    except DatasetError as error:
        raise DatasetError(f"dataset {str(path)!r} is invalid: {error}") from None


# --------------------------------------------------------------------------- environments


def make_env(env_id: str, **env_kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with a clear ``ValueError`` (and close matches) for an unknown id."""
    import mpc_grasp.envs  # noqa: F401  (registers the package's ids)

    try:
        return gym.make(env_id, **env_kwargs)
    except gym.error.Error as error:
        if env_id in gym.registry:
            raise ValueError(f"could not create env {env_id!r} with kwargs {env_kwargs}: {error}") from None
        close = difflib.get_close_matches(env_id, list(gym.registry), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown Gymnasium env id {env_id!r}{hint}") from None


def space_description(space: gym.Space) -> dict[str, Any]:
    """JSON-friendly description of a Box-like space (type, shape, low, high, dtype)."""
    desc: dict[str, Any] = {"type": type(space).__name__, "shape": list(space.shape or ()), "dtype": str(space.dtype)}
    if isinstance(space, spaces.Box):
        desc["low"] = np.asarray(space.low, dtype=np.float64).tolist()
        desc["high"] = np.asarray(space.high, dtype=np.float64).tolist()
    return desc


def _env_factories(
    env: str | gym.Env | Callable[..., gym.Env], env_kwargs: Mapping[str, Any], num_envs: int
) -> tuple[list[Callable[[], gym.Env]], str, bool]:
    """Factories for each sub-env, the env id for metadata, and whether we own (may close) the envs."""
    if isinstance(env, str):
        make_env(env, **env_kwargs).close()  # fail fast with a clear message on a bad id / kwargs
        return [lambda: gym.make(env, **env_kwargs) for _ in range(num_envs)], env, True
    if isinstance(env, gym.Env):
        if num_envs != 1:
            raise ValueError("pass an env id or a factory (not an env instance) to collect with num_envs > 1")
        if env_kwargs:
            raise ValueError("env_kwargs cannot be applied to an already-created env instance")
        spec = getattr(env, "spec", None)
        return [lambda: env], (spec.id if spec is not None else type(env.unwrapped).__name__), False
    if callable(env):
        probe = env(**env_kwargs)
        if not isinstance(probe, gym.Env):
            raise TypeError(f"env factory returned {type(probe).__name__}, expected a gymnasium.Env")
        spec = getattr(probe, "spec", None)
        env_id = spec.id if spec is not None else type(probe.unwrapped).__name__
        probe.close()
        return [lambda: env(**env_kwargs) for _ in range(num_envs)], env_id, True
    raise TypeError(f"env must be a Gymnasium id, a gymnasium.Env or a factory, got {type(env).__name__}")


# --------------------------------------------------------------------------- exploration


class _Explorer:
    """Per-sub-env action generator: i.i.d. uniform, Ornstein-Uhlenbeck, or noisy scripted policy."""

    def __init__(
        self,
        action_space: spaces.Box,
        num_envs: int,
        rng: np.random.Generator,
        exploration: str | Callable[[Any], Any],
        policy_noise: float,
        correlation: float,
        noise_scale: float,
    ) -> None:
        self.low = np.asarray(action_space.low, dtype=np.float64)
        self.high = np.asarray(action_space.high, dtype=np.float64)
        self.half = (self.high - self.low) / 2.0
        self.mid = (self.high + self.low) / 2.0
        self.dtype = action_space.dtype
        self.num_envs, self.rng = num_envs, rng
        self.exploration, self.policy_noise = exploration, float(policy_noise)
        self.rho, self.sigma = float(correlation), float(noise_scale)
        self.state = self._stationary(num_envs)  # OU state in normalised [-1, 1] coordinates

    def _stationary(self, n: int) -> np.ndarray:
        return self.rng.normal(0.0, self.sigma, size=(n, self.low.size))

    def episode_started(self, env_index: int) -> None:
        """A fresh episode: redraw the correlated noise from its stationary law (no carry-over)."""
        self.state[env_index] = self._stationary(1)[0]

    def actions(self, per_env_obs: list[Any]) -> np.ndarray:
        shape = (self.num_envs, self.low.size)
        if self.exploration == "random":
            normalised = self.rng.uniform(-1.0, 1.0, size=shape)
        elif self.exploration == "correlated":
            innovation = self.rng.normal(0.0, self.sigma, size=shape)
            self.state = self.rho * self.state + np.sqrt(1.0 - self.rho**2) * innovation
            normalised = np.clip(self.state, -1.0, 1.0)
        else:
            policy = self.exploration
            act = getattr(policy, "predict", None)  # stable-baselines3 models
            raw = [np.asarray(act(o, deterministic=True)[0] if act is not None else policy(o), dtype=np.float64) for o in per_env_obs]
            try:
                stacked = np.stack([r.reshape(self.low.shape) for r in raw])
            except ValueError as error:
                raise ValueError(f"policy returned actions of shape {raw[0].shape}, expected {self.low.shape}") from error
            normalised = (stacked - self.mid) / np.where(self.half > 0, self.half, 1.0)
            if self.policy_noise > 0:
                normalised = normalised + self.rng.normal(0.0, self.policy_noise, size=shape)
            normalised = np.clip(normalised, -1.0, 1.0)
        return (self.mid + normalised * self.half).astype(self.dtype)


# --------------------------------------------------------------------------- collection


def collect_transitions(
    env: str | gym.Env | Callable[..., gym.Env],
    n_steps: int,
    policy: Callable[[Any], Any] | None = None,
    seed: int = 0,
    num_envs: int = 1,
    exploration: str = "correlated",
    obs_key: str = "observation",
    progress: bool = True,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    policy_noise: float = 0.1,
    correlation: float = 0.9,
    noise_scale: float = 0.8,
    info_keys: Sequence[str] = (),
    reset_options: Callable[[np.random.Generator], Mapping[str, Any] | None] | None = None,
) -> TransitionDataset:
    """Run exploration in ``env`` and return ``n_steps`` transitions.

    ``env`` is a Gymnasium id (with ``env_kwargs``), a factory, or an env instance (``num_envs=1``).
    Exploration: ``"random"`` (i.i.d. uniform actions), ``"correlated"`` (Ornstein-Uhlenbeck noise
    with per-step ``correlation`` and stationary std ``noise_scale`` in units of the action
    half-range, clipped to the bounds: long straight pushes that cover mazes and hit walls), or a
    ``policy(obs) -> action`` callable / stable-baselines3 model (overrides ``exploration``; Gaussian
    noise of std ``policy_noise`` half-ranges added). Dict observations are stored as
    ``obs[obs_key]``. With ``num_envs > 1`` a ``SyncVectorEnv`` (next-step autoreset) is used; the
    reset step it inserts after each episode is not a transition and is skipped, so the last
    ``next_observations`` of an episode is its true final observation. Deterministic given ``seed``.

    ``info_keys``: ``info[key]`` of each row's start and end observation is kept as
    ``dataset.extras[key]`` / ``extras["next_" + key]`` (e.g. the true state of a pixel env, for
    evaluation); every step must report it. ``reset_options(rng)`` supplies the reset options of
    every episode (also the automatic resets of vector envs), drawn with a generator seeded by ``seed``.
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if int(num_envs) != num_envs or num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
    n_steps, num_envs = int(n_steps), int(num_envs)
    if policy is None and exploration not in EXPLORATIONS:
        raise ValueError(f"unknown exploration {exploration!r}; valid: {list(EXPLORATIONS)} or pass policy=callable")
    if policy is not None and not (callable(policy) or hasattr(policy, "predict")):
        raise TypeError(f"policy must be callable obs -> action or have .predict, got {type(policy).__name__}")
    if not 0.0 <= correlation < 1.0:
        raise ValueError(f"correlation must be in [0, 1), got {correlation}")
    if noise_scale <= 0 or policy_noise < 0:
        raise ValueError(f"noise_scale must be > 0 and policy_noise >= 0, got {noise_scale}, {policy_noise}")
    info_keys = tuple(info_keys)
    if not all(isinstance(key, str) and key for key in info_keys) or len(set(info_keys)) != len(info_keys):
        raise ValueError(f"info_keys must be distinct non-empty strings, got {info_keys!r}")
    if reset_options is not None and not callable(reset_options):
        raise TypeError(f"reset_options must be callable rng -> options dict, got {type(reset_options).__name__}")
    env_kwargs = dict(env_kwargs or {})
    factories, env_id, owned = _env_factories(env, env_kwargs, num_envs)
    if reset_options is not None:
        factories = [_with_reset_options(make, reset_options, np.random.default_rng([seed, i])) for i, make in enumerate(factories)]

    vec = gym.vector.SyncVectorEnv(factories, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    try:
        action_space = vec.single_action_space
        if not isinstance(action_space, spaces.Box) or not np.all(np.isfinite(action_space.low)) or not np.all(np.isfinite(action_space.high)):
            raise ValueError(f"collect_transitions needs a bounded Box action space, got {action_space}")
        obs_space = vec.single_observation_space
        if isinstance(obs_space, spaces.Dict):
            if obs_key not in obs_space.spaces:
                raise ValueError(f"obs_key {obs_key!r} not in the dict observation keys {list(obs_space.spaces)}")
            state_space = obs_space[obs_key]
        else:
            state_space = obs_space
        state_shape = tuple(state_space.shape or ())
        if not state_shape:
            raise ValueError(f"observations must be arrays, got space {state_space}")

        rng = np.random.default_rng(seed)
        explorer = _Explorer(action_space, num_envs, rng, policy if policy is not None else exploration, policy_noise, correlation, noise_scale)
        obs_buf = np.empty((n_steps, *state_shape), dtype=state_space.dtype)
        next_buf = np.empty_like(obs_buf)
        act_buf = np.empty((n_steps, *action_space.shape), dtype=np.float32)
        term_buf = np.empty(n_steps, dtype=bool)
        trunc_buf = np.empty(n_steps, dtype=bool)
        rew_buf = np.empty(n_steps, dtype=np.float32)
        ep_buf = np.empty(n_steps, dtype=np.int64)
        step_buf = np.empty(n_steps, dtype=np.int64)
        info_bufs: dict[str, list[Any]] = {name: [] for key in info_keys for name in (key, "next_" + key)}

        def info_values(infos: Mapping[str, Any], key: str) -> np.ndarray:
            values, present = infos.get(key), infos.get("_" + key)
            if values is None or present is None or not np.all(present):
                raise ValueError(f"info_keys: the env did not report info[{key!r}] at every step (info keys: {sorted(k for k in infos if not k.startswith('_'))})")
            return np.asarray(values)

        def states(obs: Any) -> np.ndarray:
            return np.asarray(obs[obs_key] if isinstance(obs, Mapping) else obs)

        def per_env(obs: Any) -> list[Any]:
            if isinstance(obs, Mapping):
                return [{k: v[i] for k, v in obs.items()} for i in range(num_envs)]
            return [obs[i] for i in range(num_envs)]

        obs, infos = vec.reset(seed=seed)
        episode = np.arange(num_envs, dtype=np.int64)
        next_episode = num_envs
        step = np.zeros(num_envs, dtype=np.int64)
        resetting = np.zeros(num_envs, dtype=bool)  # this vector step is an autoreset, not a transition
        count = 0
        bar = tqdm(total=n_steps, desc=f"collect {env_id}", unit="step", disable=not progress, leave=False)
        try:
            while count < n_steps:
                actions = explorer.actions(per_env(obs))
                next_obs, rewards, terminated, truncated, next_infos = vec.step(actions)
                current, following = states(obs), states(next_obs)
                recorded = {key: (info_values(infos, key), info_values(next_infos, key)) for key in info_keys}
                for i in range(num_envs):
                    if resetting[i]:  # obs[i] was a final obs; next_obs[i] is the new episode's first obs
                        continue
                    if count < n_steps:
                        obs_buf[count], next_buf[count], act_buf[count] = current[i], following[i], actions[i]
                        term_buf[count], trunc_buf[count], rew_buf[count] = terminated[i], truncated[i], rewards[i]
                        ep_buf[count], step_buf[count] = episode[i], step[i]
                        for key, (before, after) in recorded.items():
                            info_bufs[key].append(before[i].copy())
                            info_bufs["next_" + key].append(after[i].copy())
                        count += 1
                        bar.update(1)
                    step[i] += 1
                for i in range(num_envs):
                    if resetting[i]:
                        episode[i], step[i] = next_episode, 0
                        next_episode += 1
                        explorer.episode_started(i)
                resetting = np.logical_or(terminated, truncated)
                obs, infos = next_obs, next_infos
        finally:
            bar.close()
    finally:
        if owned:
            vec.close()

    spec = gym.spec(env_id) if isinstance(env, str) else None
    from mpc_grasp import __version__ as package_version  # late import: mpc_grasp imports this module

    metadata: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "max_episode_steps": getattr(spec, "max_episode_steps", None),
        "observation_space": space_description(state_space),
        "full_observation_space": str(obs_space),
        "obs_key": obs_key if isinstance(obs_space, spaces.Dict) else None,
        "action_space": space_description(action_space),
        "seed": int(seed),
        "n_steps": n_steps,
        "num_envs": num_envs,
        "exploration": exploration if policy is None else f"policy:{getattr(policy, '__name__', type(policy).__name__)}",
        "exploration_params": (
            {"correlation": correlation, "noise_scale": noise_scale}
            if policy is None and exploration == "correlated"
            else ({"policy_noise": policy_noise} if policy is not None else {})
        ),
        "info_keys": list(info_keys),
        "reset_options": None if reset_options is None else getattr(reset_options, "__name__", type(reset_options).__name__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": package_version,
        "gymnasium_version": gym.__version__,
    }
    return TransitionDataset(
        observations=obs_buf,
        actions=act_buf,
        next_observations=next_buf,
        terminated=term_buf,
        episode_ids=ep_buf,
        step_ids=step_buf,
        metadata=metadata,
        truncated=trunc_buf,
        rewards=rew_buf,
        extras={name: np.stack(values) for name, values in info_bufs.items()},
    )


class _ResetOptionsWrapper(gym.Wrapper):
    """Calls ``reset`` with ``options_fn(rng)`` whenever no options are given (incl. vector autoresets)."""

    def __init__(self, env: gym.Env, options_fn: Callable[[np.random.Generator], Mapping[str, Any] | None], rng: np.random.Generator) -> None:
        super().__init__(env)
        self._options_fn, self._rng = options_fn, rng

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if options is None:
            drawn = self._options_fn(self._rng)
            options = None if drawn is None else dict(drawn)
        return self.env.reset(seed=seed, options=options)


def _with_reset_options(
    make: Callable[[], gym.Env], options_fn: Callable[[np.random.Generator], Mapping[str, Any] | None], rng: np.random.Generator
) -> Callable[[], gym.Env]:
    return lambda: _ResetOptionsWrapper(make(), options_fn, rng)


# --------------------------------------------------------------------------- many env copies


@dataclass(frozen=True)
class _Shard:
    """One ``collect_transitions`` call of a parallel collection (picklable for Ray)."""

    env: str | Callable[..., gym.Env]
    n_steps: int
    seed: int
    options: dict[str, Any]


def _collect_shard(shard: _Shard) -> TransitionDataset:
    """Body of one collection task: the ordinary ``collect_transitions`` with the shard's seed."""
    return collect_transitions(shard.env, shard.n_steps, seed=shard.seed, progress=False, **shard.options)


def shard_seeds(seed: int, shards: int) -> list[int]:
    """Independent per-shard seeds derived from ``seed`` (``numpy.random.SeedSequence.spawn``):
    shard k's stream depends only on ``(seed, k)``, never on which worker runs it or when."""
    return [int(child.generate_state(1, dtype=np.uint32)[0]) for child in np.random.SeedSequence(int(seed)).spawn(int(shards))]


def collect_transitions_parallel(
    env: str | Callable[..., gym.Env],
    n_steps: int,
    shards: int,
    seed: int = 0,
    *,
    backend: str = "local",
    address: str | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    **collect_options: Any,
) -> TransitionDataset:
    """``n_steps`` transitions collected as ``shards`` independent ``collect_transitions`` calls.

    Each shard (``n_steps / shards`` steps, over ``num_envs`` vector envs if given in
    ``collect_options``) runs as a task of :func:`mpc_grasp.parallel.run_tasks` — in-process, or as
    Ray remote tasks with ``backend="ray"`` — with seed ``shard_seeds(seed, shards)[k]``; the
    shards are concatenated in shard order (episode ids renumbered to stay unique). The dataset is
    therefore the same for a given ``(seed, shards)`` whatever the backend or worker count (it
    differs from a single ``collect_transitions`` call with the same seed). ``env`` is an id or a
    picklable factory (an env instance cannot be shipped to workers).
    """
    from mpc_grasp.parallel import run_tasks

    if isinstance(env, gym.Env):
        raise ValueError("collect_transitions_parallel needs an env id or a picklable factory, not an env instance")
    if int(shards) != shards or shards < 1:
        raise ValueError(f"shards must be a positive integer, got {shards!r}")
    if int(n_steps) != n_steps or n_steps < shards:
        raise ValueError(f"n_steps must be an integer >= shards ({shards}), got {n_steps!r}")
    if "progress" in collect_options or "seed" in collect_options:
        raise TypeError("pass seed and progress directly, not inside collect_options")
    n_steps, shards = int(n_steps), int(shards)
    sizes = [n_steps // shards + (1 if index < n_steps % shards else 0) for index in range(shards)]
    seeds = shard_seeds(seed, shards)
    if isinstance(env, str):
        _env_factories(env, dict(collect_options.get("env_kwargs") or {}), 1)  # fail fast on a bad id, here not in a worker
    tasks = [_Shard(env=env, n_steps=size, seed=shard_seed, options=dict(collect_options)) for size, shard_seed in zip(sizes, seeds)]
    parts = run_tasks(_collect_shard, tasks, backend=backend, address=address, num_workers=num_workers, progress=progress, desc="collect shards")
    metadata = {
        **parts[0].metadata,
        "seed": int(seed),
        "n_steps": n_steps,
        "shards": shards,
        "shard_seeds": seeds,
        "shard_steps": sizes,
        "collection_backend": backend,
    }
    return concatenate_datasets(parts, metadata)


def concatenate_datasets(datasets: Sequence[TransitionDataset], metadata: dict[str, Any] | None = None) -> TransitionDataset:
    """Rows of ``datasets`` in order; episode ids offset so episodes of different parts never merge.

    ``metadata`` defaults to the first part's. Parts must share observation and action shapes.
    """
    if not datasets:
        raise ValueError("concatenate_datasets needs at least one dataset")
    first = datasets[0]
    for index, part in enumerate(datasets[1:], start=1):
        if part.state_shape != first.state_shape or part.action_dim != first.action_dim:
            raise DatasetError(
                f"dataset {index} has state shape {part.state_shape} / action dim {part.action_dim}, "
                f"dataset 0 has {first.state_shape} / {first.action_dim}"
            )
    extra_keys = set(first.extras)
    if any(set(part.extras) != extra_keys for part in datasets[1:]):
        raise DatasetError(f"datasets carry different extras: {[sorted(part.extras) for part in datasets]}")
    offsets = np.cumsum([0] + [int(part.episode_ids.max()) + 1 if len(part) else 0 for part in datasets[:-1]])
    return TransitionDataset(
        observations=np.concatenate([part.observations for part in datasets]),
        actions=np.concatenate([part.actions for part in datasets]),
        next_observations=np.concatenate([part.next_observations for part in datasets]),
        terminated=np.concatenate([part.terminated for part in datasets]),
        episode_ids=np.concatenate([part.episode_ids + offset for part, offset in zip(datasets, offsets)]),
        step_ids=np.concatenate([part.step_ids for part in datasets]),
        metadata=dict(first.metadata if metadata is None else metadata),
        truncated=np.concatenate([part.truncated for part in datasets]),
        rewards=np.concatenate([part.rewards for part in datasets]),
        extras={key: np.concatenate([part.extras[key] for part in datasets]) for key in sorted(extra_keys)},
    )


# --------------------------------------------------------------------------- helpers


def _leading_len(value: Any, name: str) -> int:
    array = np.asarray(value)
    if array.ndim == 0:
        raise DatasetError(f"{name} must be an array with a leading [N] dimension, got a scalar")
    return int(array.shape[0])


def _as_numeric(value: Any, name: str) -> np.ndarray:
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DatasetError(f"{name} must be numeric, got dtype {array.dtype}")
    return array


def _as_integer(value: Any, name: str) -> np.ndarray:
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _jsonable(value: Any) -> Any:
    """Make ``value`` JSON-serialisable (numpy scalars/arrays -> Python, unknown objects -> repr)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)

