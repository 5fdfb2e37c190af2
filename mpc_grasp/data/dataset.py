"""Transition datasets for world-model learning and their ``.npz`` I/O.

A :class:`TransitionDataset` holds ``(obs, action, next_obs, terminated)`` rows plus episode / step
ids, so models can be validated on whole held-out episodes and multi-step rollouts never cross an
episode boundary. :mod:`mpc_grasp.data.collection` fills one from Gymnasium envs.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpc_grasp.atomic import atomic_path

__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "DatasetError",
    "Trajectory",
    "TransitionDataset",
    "concatenate_datasets",
    "load_dataset",
]

DATASET_FORMAT = "mpc_grasp.transitions"
DATASET_VERSION = 1

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
                f"next_observations shape {self.next_observations.shape} differs from observations shape {self.observations.shape}"
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
        assert self.truncated is not None and self.rewards is not None  # filled in by __post_init__
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
        meta = {**self.metadata, "format": DATASET_FORMAT, "format_version": DATASET_VERSION}
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        arrays.update({_EXTRA_PREFIX + name: value for name, value in self.extras.items()})
        arrays[_METADATA_KEY] = np.array(json.dumps(_jsonable(meta), sort_keys=True))
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:  # a handle: no ".npz" appended
            np.savez_compressed(handle, **arrays)
        return Path(path)

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


def concatenate_datasets(
    datasets: Sequence[TransitionDataset], metadata: dict[str, Any] | None = None
) -> TransitionDataset:
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
