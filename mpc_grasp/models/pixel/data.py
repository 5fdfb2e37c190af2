"""Image trajectories for the pixel world model: stored once per frame, collected from pixel envs."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor


@dataclass
class PixelDataset:
    """Image trajectories stored once per frame (no obs/next_obs duplication).

    ``frames[i]`` is an observation image, ``actions[i]`` the action taken there, and
    ``segment_ids`` marks uninterrupted trajectories: ``frames[i + 1]`` is the result of
    ``actions[i]`` iff ``segment_ids[i + 1] == segment_ids[i]`` (the action of a segment's last
    frame is unused). ``states`` holds the true low-dim states for evaluation only (may be None).
    """

    frames: np.ndarray  # uint8 [N, H, W, C]
    actions: np.ndarray  # float32 [N, A]
    segment_ids: np.ndarray  # int64 [N]
    states: np.ndarray | None = None  # float64 [N, D]

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.segment_ids = np.asarray(self.segment_ids, dtype=np.int64)
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4:
            raise ValueError(f"frames must be uint8 [N, H, W, C], got {self.frames.dtype} {self.frames.shape}")
        n = len(self.frames)
        if self.actions.ndim != 2 or len(self.actions) != n:
            raise ValueError(f"actions must be [N={n}, A], got {self.actions.shape}")
        if self.segment_ids.shape != (n,):
            raise ValueError(f"segment_ids must be [N={n}], got {self.segment_ids.shape}")
        if n and np.any(np.diff(self.segment_ids) < 0):
            raise ValueError("segment_ids must be non-decreasing (frames of a segment are contiguous)")
        if self.states is not None:
            self.states = np.asarray(self.states, dtype=np.float64)
            if self.states.ndim != 2 or len(self.states) != n:
                raise ValueError(f"states must be [N={n}, D], got {self.states.shape}")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_transitions(self) -> int:
        """Number of (frame, action, next frame) transitions."""
        return int(np.sum(self.segment_ids[1:] == self.segment_ids[:-1])) if len(self) else 0

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return int(
            self.frames.nbytes
            + self.actions.nbytes
            + self.segment_ids.nbytes
            + (self.states.nbytes if self.states is not None else 0)
        )

    def window_starts(self, length: int) -> np.ndarray:
        """Indices ``i`` such that frames ``i .. i + length`` lie in one segment (``length`` actions)."""
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        n = len(self)
        if n <= length:
            return np.zeros(0, dtype=np.int64)
        starts = np.arange(n - length)
        return starts[self.segment_ids[starts] == self.segment_ids[starts + length]]

    def subset_segments(self, segments: np.ndarray) -> PixelDataset:
        """The dataset restricted to the given segment ids (order preserved)."""
        mask = np.isin(self.segment_ids, segments)
        return PixelDataset(
            self.frames[mask],
            self.actions[mask],
            self.segment_ids[mask],
            None if self.states is None else self.states[mask],
        )

    def split(self, validation_fraction: float, seed: int = 0) -> tuple[PixelDataset, PixelDataset]:
        """Split by whole segments into (train, validation)."""
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        segments = np.unique(self.segment_ids)
        rng = np.random.default_rng(seed)
        n_val = int(round(validation_fraction * len(segments)))
        if validation_fraction > 0 and len(segments) >= 2:
            n_val = min(max(n_val, 1), len(segments) - 1)
        val = rng.choice(segments, size=n_val, replace=False) if n_val else np.zeros(0, dtype=np.int64)
        return self.subset_segments(np.setdiff1d(segments, val)), self.subset_segments(np.sort(val))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a compressed ``.npz`` (format tag and version included) to exactly ``path``, atomically."""
        from mpc_grasp.atomic import atomic_path

        arrays: dict[str, np.ndarray] = {
            "format": np.array("mpc_grasp.pixel_dataset"),
            "version": np.array(1),
            "frames": self.frames,
            "actions": self.actions,
            "segment_ids": self.segment_ids,
        }
        if self.states is not None:
            arrays["states"] = self.states
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:  # a handle: no ".npz" appended
            np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub: a **dict might also fill allow_pickle: bool

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PixelDataset:
        """Read a dataset written by :meth:`save`, with a clear error for other files."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or str(data["format"]) != "mpc_grasp.pixel_dataset":
                    raise ValueError(f"{path} is not an mpc_grasp pixel dataset (missing or wrong format tag)")
                if int(data["version"]) != 1:
                    raise ValueError(f"{path}: unsupported pixel dataset version {int(data['version'])} (expected 1)")
                states = data.get("states", None)
                return cls(data["frames"], data["actions"], data["segment_ids"], states)
        except (OSError, KeyError, EOFError) as error:
            raise ValueError(f"could not read pixel dataset {path}: {error}") from error

    def save_minari(self, dataset_id: str, root: str | os.PathLike[str], **metadata: Any) -> Path:
        """Write the dataset as a Minari dataset (Farama's format for offline Gymnasium data; HDF5), one episode
        per segment, observations ``{"pixels", "state"}`` (``state`` only when the dataset has true states).
        ``root`` is the folder Minari keeps datasets in (``MINARI_DATASETS_PATH``); ``metadata`` goes to
        ``minari.create_dataset_from_buffers`` (e.g. ``author``, ``description``). Returns the dataset folder."""
        minari, episode_buffer = _import_minari()
        frame_space = spaces.Box(0, 255, self.frames.shape[1:], np.uint8)
        parts: dict[str, spaces.Space] = {"pixels": frame_space}
        if self.states is not None:
            parts["state"] = spaces.Box(-np.inf, np.inf, self.states.shape[1:], np.float64)
        buffers = []
        for index, segment in enumerate(np.unique(self.segment_ids)):
            rows = np.flatnonzero(self.segment_ids == segment)
            steps = len(rows) - 1
            observations = {"pixels": self.frames[rows]}
            if self.states is not None:
                observations["state"] = self.states[rows]
            done = np.zeros(steps, dtype=bool)
            buffers.append(
                episode_buffer(
                    id=index,
                    observations=observations,
                    actions=self.actions[rows[:-1]],
                    rewards=np.zeros(steps),
                    terminations=done,
                    truncations=np.r_[done[:-1], True],
                    infos={},
                )
            )
        action_space = spaces.Box(-np.inf, np.inf, self.actions.shape[1:], np.float32)
        with _minari_root(root), warnings.catch_warnings():
            # Minari's advice about optional metadata (author, code_permalink, eval_env, env_spec) the caller left out
            warnings.filterwarnings("ignore", message=".*is set to None|env_spec is None", category=UserWarning)
            minari.create_dataset_from_buffers(
                dataset_id,
                buffer=buffers,
                observation_space=spaces.Dict(parts),
                action_space=action_space,
                algorithm_name=metadata.pop("algorithm_name", "mpc_grasp"),
                **metadata,
            )
        return Path(root) / dataset_id

    @classmethod
    def load_minari(cls, dataset_id: str, root: str | os.PathLike[str]) -> PixelDataset:
        """Read a Minari dataset of image observations (``{"pixels"[, "state"]}`` dicts, or bare images)."""
        minari, _ = _import_minari()
        with _minari_root(root):
            try:
                dataset = minari.load_dataset(dataset_id)
            except (FileNotFoundError, ValueError) as error:
                raise ValueError(f"no Minari dataset {dataset_id!r} under {root}: {error}") from None
            frames, states, actions, segments = [], [], [], []
            for index, episode in enumerate(dataset.iterate_episodes()):
                observations = episode.observations
                pixels = observations["pixels"] if isinstance(observations, dict) else observations
                frames.append(np.asarray(pixels, dtype=np.uint8))
                if isinstance(observations, dict) and "state" in observations:
                    states.append(np.asarray(observations["state"], dtype=np.float64))
                acts = np.asarray(episode.actions, dtype=np.float32)
                actions.append(np.concatenate([acts, np.zeros_like(acts[:1])]))  # a segment's last action: unused
                segments.append(np.full(len(pixels), index, dtype=np.int64))
        return cls(
            np.concatenate(frames),
            np.concatenate(actions),
            np.concatenate(segments),
            np.concatenate(states) if len(states) == len(frames) and states else None,
        )

    @classmethod
    def from_transitions(
        cls, dataset: Any, states: np.ndarray | None = None, next_states: np.ndarray | None = None
    ) -> PixelDataset:
        """Convert a transition dataset (``observations``, ``actions``, ``next_observations`` and
        optionally ``episode_ids`` / ``step_ids`` arrays, e.g. ``mpc_grasp.data.TransitionDataset``
        collected with ``obs_key="observation"`` on a pixel env) into frame sequences.

        Rows are ordered by (episode, step) when ``step_ids`` exist, so interleaved vector-env rows
        chain up. ``states`` / ``next_states`` (optional, evaluation only) are the true states of each
        row's start / end frame; by default they come from ``dataset.extras["state"]`` /
        ``["next_state"]`` when present. Frames without a known state get NaN.
        """
        obs, act, nxt, episodes = _transition_arrays(dataset)
        extras = getattr(dataset, "extras", None) or {}
        if states is None and next_states is None and "state" in extras and "next_state" in extras:
            states, next_states = extras["state"], extras["next_state"]
        n = len(obs)
        for name, value in (("states", states), ("next_states", next_states)):
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows but the dataset has {n} transitions")
        step_ids = getattr(dataset, "step_ids", None)
        order = np.lexsort((np.asarray(step_ids), episodes)) if step_ids is not None and n else np.arange(n)
        chain = _FrameChain(states, next_states)
        previous = -1
        for t in order:
            chained = (
                previous >= 0
                and episodes[t] == episodes[previous]
                and (step_ids is None or step_ids[t] == step_ids[previous] + 1)
                and np.array_equal(obs[t], nxt[previous])
            )
            chain.add(t, obs[t], act[t], nxt[t], chained)
            previous = t
        return chain.dataset(cls, act)


def _transition_arrays(dataset: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(observations, actions, next_observations, episode_ids)`` of a transition dataset of uint8 images."""
    try:
        obs = np.asarray(dataset.observations)
        act = np.asarray(dataset.actions, dtype=np.float32)
        nxt = np.asarray(dataset.next_observations)
        episodes = np.asarray(getattr(dataset, "episode_ids", np.zeros(len(obs), dtype=np.int64)))
    except AttributeError as error:
        raise ValueError(f"transition dataset needs observations/actions/next_observations arrays: {error}") from error
    if obs.dtype != np.uint8 or obs.ndim != 4 or nxt.shape != obs.shape:
        raise ValueError(
            f"observations must be uint8 images [N, H, W, C] (collect from a Pixel* env with obs_key='observation'), got {obs.dtype} {obs.shape}"
        )
    return obs, act, nxt, episodes


class _FrameChain:
    """Frame sequences built row by row by :meth:`PixelDataset.from_transitions`: a row that continues the
    previous one adds only its next frame; any other row starts a new segment with both frames."""

    def __init__(self, states: np.ndarray | None, next_states: np.ndarray | None) -> None:
        self.states, self.next_states = states, next_states
        some_states = states if states is not None else next_states
        self.has_states = some_states is not None
        self.nan_state = np.full(np.shape(some_states)[1:] if some_states is not None else (), np.nan)
        self.frames: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.segments: list[int] = []
        self.frame_states: list[np.ndarray] = []
        self.segment = -1

    def _state(self, values: np.ndarray | None, t: int) -> np.ndarray:
        return self.nan_state if values is None else np.asarray(values[t], dtype=np.float64)

    def add(self, t: int, frame: np.ndarray, action: np.ndarray, next_frame: np.ndarray, chained: bool) -> None:
        """Row ``t``: ``frame`` --``action``--> ``next_frame``; ``chained``: ``frame`` is the last frame added."""
        if not chained:
            self.segment += 1
            self.frames.append(frame)
            self.actions.append(action)
            self.segments.append(self.segment)
            self.frame_states.append(self._state(self.states, t))
        else:
            self.actions[-1] = action  # the previous next-frame is this frame: record its action
            if self.states is not None:
                self.frame_states[-1] = self._state(self.states, t)
        self.frames.append(next_frame)
        self.actions.append(np.zeros_like(action))
        self.segments.append(self.segment)
        self.frame_states.append(self._state(self.next_states, t))

    def dataset(self, cls: type[PixelDataset], act: np.ndarray) -> PixelDataset:
        """The chained frames as a ``cls`` (``act``: the transitions' actions, for the empty case's shape)."""
        frames = self.frames
        return cls(
            np.stack(frames) if frames else np.zeros((0, 1, 1, 1), np.uint8),
            np.stack(self.actions)
            if self.actions
            else np.zeros((0, act.shape[-1] if act.ndim == 2 else 1), np.float32),
            np.asarray(self.segments, dtype=np.int64),
            np.stack(self.frame_states) if self.has_states and frames else None,
        )


def collect_pixel_dataset(
    env: Any,
    n_steps: int,
    *,
    seed: int = 0,
    episode_length: int = 50,
    smoothing: float = 0.8,
    policy: Callable[[Any, np.random.Generator], np.ndarray] | None = None,
    reset_options: Callable[[np.random.Generator], dict[str, Any] | None] | None = None,
    num_envs: int = 1,
    progress: bool = False,
) -> PixelDataset:
    """Roll out ``n_steps`` environment steps from a pixel env and keep the image sequences.

    A thin layer over :func:`mpc_grasp.data.collect_transitions` (the package's one collection
    loop) followed by :meth:`PixelDataset.from_transitions`. ``env`` is a Gymnasium env or id.
    Actions come from ``policy(obs, rng)`` or, by default, temporally correlated noise ``n_t =
    smoothing * n_{t-1} + sqrt(1 - smoothing²) * N(0, 1)`` clipped to [-1, 1] and mapped onto the
    action box (long pushes cover the space and hit walls more than white noise).
    ``reset_options(rng)`` may supply reset options per episode (e.g. random start states).
    Episodes end at termination or after ``episode_length`` steps. ``info["state"]`` (when the
    env reports it) is recorded as ``states`` for evaluation only.
    """
    from mpc_grasp.data import collect_transitions

    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps}")
    if int(episode_length) != episode_length or episode_length < 1:
        raise ValueError(f"episode_length must be a positive integer, got {episode_length}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    info_keys = ("state",) if "state" in _probe_pixel_env(env, seed) else ()
    source, env_kwargs = _time_limited(env, int(episode_length))
    transitions = collect_transitions(
        source,
        n_steps,
        policy=None if policy is None else _seeded_policy(policy, seed),
        seed=seed,
        num_envs=num_envs,
        exploration="correlated",
        obs_key="observation",
        progress=progress,
        env_kwargs=env_kwargs,
        policy_noise=0.0,
        correlation=smoothing,
        noise_scale=1.0,
        info_keys=info_keys,
        reset_options=reset_options,
    )
    return PixelDataset.from_transitions(transitions)


def _probe_pixel_env(env: Any, seed: int) -> dict[str, Any]:
    """Check that ``env`` (an env or id) observes uint8 images ``[H, W, C]`` (or a dict with one under
    ``"observation"``); returns the ``info`` of a reset with ``seed`` (an id's env is closed again)."""
    import gymnasium

    from mpc_grasp.data import make_env

    probe = make_env(env) if isinstance(env, str) else env
    try:
        space = probe.observation_space
        image_space = (
            space["observation"]
            if isinstance(space, gymnasium.spaces.Dict) and "observation" in space.spaces
            else space
        )
        if (
            not isinstance(image_space, gymnasium.spaces.Box)
            or image_space.dtype != np.uint8
            or len(image_space.shape) != 3
        ):
            raise ValueError(
                f"pixel data collection needs uint8 image observations [H, W, C] (or a dict with one under "
                f"'observation'), got {image_space}; use a Pixel* env such as mpc_grasp/PixelGridWorldWall-v0"
            )
        _, info = probe.reset(seed=seed)
        return dict(info)
    finally:
        if isinstance(env, str):
            probe.close()


def _time_limited(env: Any, episode_length: int) -> tuple[Any, dict[str, Any]]:
    """``collect_transitions``'s env and ``env_kwargs`` with episodes cut at ``episode_length`` steps."""
    import gymnasium

    if isinstance(env, str):
        return env, {"max_episode_steps": episode_length}
    return gymnasium.wrappers.TimeLimit(env, max_episode_steps=episode_length), {}


def _seeded_policy(policy: Callable[[Any, np.random.Generator], np.ndarray], seed: int) -> Callable[[Any], np.ndarray]:
    """``policy(obs, rng)`` as ``obs -> action`` with its own generator, seeded by ``seed``."""
    policy_rng = np.random.default_rng([seed, 2**16])

    def seeded(obs: Any) -> np.ndarray:
        return np.asarray(policy(obs, policy_rng))

    return seeded


def _as_pixel_dataset(
    data: Any, n_steps: int, seed: int, episode_length: int, progress: bool, collect_kwargs: Mapping[str, Any]
) -> tuple[PixelDataset, dict[str, Any]]:
    """Dataset from a PixelDataset, a transition dataset, a Gymnasium env or an env id."""
    if isinstance(data, PixelDataset):
        return data, {"source": "dataset"}
    if isinstance(data, os.PathLike) or (isinstance(data, str) and data.endswith(".npz")):
        if not Path(data).is_file():
            raise FileNotFoundError(f"pixel dataset file {data} does not exist")
        return PixelDataset.load(data), {"source": str(data)}
    if isinstance(data, str) or hasattr(data, "step"):
        name = data if isinstance(data, str) else getattr(getattr(data, "spec", None), "id", type(data).__name__)
        start = time.perf_counter()
        dataset = collect_pixel_dataset(
            data, n_steps, seed=seed, episode_length=episode_length, progress=progress, **collect_kwargs
        )
        return dataset, {"source": name, "collect_seconds": time.perf_counter() - start}
    if hasattr(data, "next_observations"):
        return PixelDataset.from_transitions(data), {"source": type(data).__name__}
    raise TypeError(
        f"expected a PixelDataset, transition dataset, .npz path, Gymnasium env or env id, got {type(data).__name__}"
    )


def _batch_images(frames: np.ndarray, index: np.ndarray) -> Tensor:
    """uint8 frames at ``index`` (any shape) -> float tensor ``[*index.shape, H, W, C]`` in [0, 1]."""
    return torch.from_numpy(frames[index.reshape(-1)]).float().div_(255.0).reshape(*index.shape, *frames.shape[1:])


def _background_image(frames: np.ndarray, rng: np.random.Generator, sample: int = 512) -> Tensor:
    """Per-pixel median of a frame sample, float ``[H, W, C]`` in [0, 1]: the static scene."""
    index = np.sort(rng.choice(len(frames), size=min(sample, len(frames)), replace=False))
    return torch.from_numpy(np.median(frames[index], axis=0).astype(np.float32) / 255.0)


MINARI_HINT = "pip install 'mpc-grasp[minari]'"


def _import_minari() -> tuple[Any, Any]:
    """``(minari, EpisodeBuffer)``, or an ImportError naming the install command."""
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError as error:
        raise ImportError(f"Minari datasets need minari and h5py ({error}); install them with: {MINARI_HINT}") from None
    return minari, EpisodeBuffer


@contextlib.contextmanager
def _minari_root(root: str | os.PathLike[str]) -> Iterator[None]:
    """Point Minari at ``root`` (its datasets folder) for the duration of the block."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
