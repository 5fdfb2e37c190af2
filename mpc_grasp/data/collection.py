"""Collecting transitions from Gymnasium envs: random, temporally correlated or (noisy) scripted
exploration, optionally over vectorised envs or parallel shards (``collect_transitions_parallel``)."""

from __future__ import annotations

import datetime as _dt
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from tqdm.auto import tqdm

from mpc_grasp.data.dataset import TransitionDataset, concatenate_datasets
from mpc_grasp.options import config_from_options

__all__ = [
    "EXPLORATIONS",
    "CollectionConfig",
    "collect_transitions",
    "collect_transitions_parallel",
    "make_env",
    "shard_seeds",
    "space_description",
]

EXPLORATIONS = ("random", "correlated")

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


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class CollectionConfig:
    """How :func:`collect_transitions` explores and records: vector envs, exploration noise, stored keys.

    What is collected (env, step count, policy, seed, reset options) are arguments of ``collect_transitions``.
    """

    num_envs: int = 1
    """Sub-envs of a ``SyncVectorEnv`` (next-step autoreset) stepped together."""
    exploration: str = "correlated"
    """``"random"``: i.i.d. uniform actions; ``"correlated"``: Ornstein-Uhlenbeck noise (long straight
    pushes that cover mazes and hit walls). Ignored when a policy is given."""
    obs_key: str = "observation"
    """Dict observations are stored as ``obs[obs_key]``."""
    policy_noise: float = 0.1
    """Std of the Gaussian noise added to a policy's actions, in action half-ranges."""
    correlation: float = 0.9
    """Per-step correlation of the ``"correlated"`` noise, in [0, 1)."""
    noise_scale: float = 0.8
    """Stationary std of the ``"correlated"`` noise, in action half-ranges (clipped to the bounds)."""
    info_keys: tuple[str, ...] = ()
    """``info[key]`` kept per row as ``dataset.extras[key]`` / ``extras["next_" + key]`` (every step must report it)."""

    def __post_init__(self) -> None:
        if isinstance(self.num_envs, bool) or not isinstance(self.num_envs, (int, np.integer)) or self.num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {self.num_envs!r}")
        if self.exploration not in EXPLORATIONS:
            raise ValueError(
                f"unknown exploration {self.exploration!r}; valid: {list(EXPLORATIONS)} or pass policy=callable"
            )
        if not isinstance(self.obs_key, str):
            raise ValueError(f"obs_key must be a string, got {self.obs_key!r}")
        if not self.policy_noise >= 0:
            raise ValueError(f"policy_noise must be >= 0, got {self.policy_noise!r}")
        if not 0.0 <= self.correlation < 1.0:
            raise ValueError(f"correlation must be in [0, 1), got {self.correlation}")
        if not self.noise_scale > 0:
            raise ValueError(f"noise_scale must be > 0, got {self.noise_scale!r}")
        keys = (self.info_keys,) if isinstance(self.info_keys, str) else tuple(self.info_keys)
        if not all(isinstance(key, str) and key for key in keys) or len(set(keys)) != len(keys):
            raise ValueError(f"info_keys must be distinct non-empty strings, got {self.info_keys!r}")
        object.__setattr__(self, "num_envs", int(self.num_envs))
        object.__setattr__(self, "info_keys", keys)


# --------------------------------------------------------------------------- exploration


class _Explorer:
    """Per-sub-env action generator: i.i.d. uniform, Ornstein-Uhlenbeck, or noisy scripted ``policy``."""

    def __init__(
        self,
        action_space: spaces.Box,
        rng: np.random.Generator,
        config: CollectionConfig,
        policy: Callable[[Any], Any] | None,
    ) -> None:
        self.low = np.asarray(action_space.low, dtype=np.float64)
        self.high = np.asarray(action_space.high, dtype=np.float64)
        self.half = (self.high - self.low) / 2.0
        self.mid = (self.high + self.low) / 2.0
        self.dtype = action_space.dtype
        self.num_envs, self.rng = config.num_envs, rng
        self.exploration = policy if policy is not None else config.exploration
        self.policy_noise = float(config.policy_noise)
        self.rho, self.sigma = float(config.correlation), float(config.noise_scale)
        self.state = self._stationary(self.num_envs)  # OU state in normalised [-1, 1] coordinates

    def _stationary(self, n: int) -> np.ndarray:
        return self.rng.normal(0.0, self.sigma, size=(n, self.low.size))

    def episode_started(self, env_index: int) -> None:
        """A fresh episode: redraw the correlated noise from its stationary law (no carry-over)."""
        self.state[env_index] = self._stationary(1)[0]

    def actions(self, per_env_obs: list[Any]) -> np.ndarray:
        """One action per sub-env ``[num_envs, A]`` in the action space's dtype, within its bounds."""
        shape = (self.num_envs, self.low.size)
        if self.exploration == "random":
            normalised = self.rng.uniform(-1.0, 1.0, size=shape)
        elif self.exploration == "correlated":
            innovation = self.rng.normal(0.0, self.sigma, size=shape)
            self.state = self.rho * self.state + np.sqrt(1.0 - self.rho**2) * innovation
            normalised = np.clip(self.state, -1.0, 1.0)
        else:
            normalised = self._policy_actions(per_env_obs, shape)
        return (self.mid + normalised * self.half).astype(self.dtype)

    def _policy_actions(self, per_env_obs: list[Any], shape: tuple[int, int]) -> np.ndarray:
        """The policy's actions in normalised [-1, 1] coordinates, plus ``policy_noise``, clipped."""
        policy: Any = self.exploration  # a callable or a stable-baselines3 model
        act = getattr(policy, "predict", None)  # stable-baselines3 models
        raw = [
            np.asarray(act(o, deterministic=True)[0] if act is not None else policy(o), dtype=np.float64)
            for o in per_env_obs
        ]
        try:
            stacked = np.stack([r.reshape(self.low.shape) for r in raw])
        except ValueError as error:
            raise ValueError(f"policy returned actions of shape {raw[0].shape}, expected {self.low.shape}") from error
        normalised = (stacked - self.mid) / np.where(self.half > 0, self.half, 1.0)
        if self.policy_noise > 0:
            normalised = normalised + self.rng.normal(0.0, self.policy_noise, size=shape)
        return np.clip(normalised, -1.0, 1.0)


# --------------------------------------------------------------------------- collection


def collect_transitions(
    env: str | gym.Env | Callable[..., gym.Env],
    n_steps: int,
    policy: Callable[[Any], Any] | None = None,
    seed: int = 0,
    config: CollectionConfig | None = None,
    *,
    progress: bool = True,
    env_kwargs: Mapping[str, Any] | None = None,
    reset_options: Callable[[np.random.Generator], Mapping[str, Any] | None] | None = None,
    **options: Any,
) -> TransitionDataset:
    """Run exploration in ``env`` and return ``n_steps`` transitions.

    ``config`` (default ``CollectionConfig()``) with any :class:`CollectionConfig` field given as a keyword
    option replaced, e.g. ``collect_transitions(env_id, 10_000, num_envs=4, exploration="random")``.
    ``env`` is a Gymnasium id (with ``env_kwargs``), a factory, or an env instance (``num_envs=1``).
    ``policy(obs) -> action`` (a callable or a stable-baselines3 model) overrides the exploration noise,
    with ``policy_noise`` added. With ``num_envs > 1`` the reset step a vector env inserts after each
    episode is not a transition and is skipped, so the last ``next_observations`` of an episode is its true
    final observation. ``reset_options(rng)`` supplies the reset options of every episode (also the
    automatic resets of vector envs), drawn with a generator seeded by ``seed``. Deterministic given ``seed``.
    """
    config = config_from_options(CollectionConfig, config, options)
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    n_steps = int(n_steps)
    if policy is not None and not (callable(policy) or hasattr(policy, "predict")):
        raise TypeError(f"policy must be callable obs -> action or have .predict, got {type(policy).__name__}")
    if reset_options is not None and not callable(reset_options):
        raise TypeError(f"reset_options must be callable rng -> options dict, got {type(reset_options).__name__}")
    env_kwargs = dict(env_kwargs or {})
    factories, env_id, owned = _env_factories(env, env_kwargs, config.num_envs)
    if reset_options is not None:
        factories = [
            _with_reset_options(make, reset_options, np.random.default_rng([seed, i]))
            for i, make in enumerate(factories)
        ]
    vec = gym.vector.SyncVectorEnv(factories, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    try:
        action_space, state_space = _spaces(vec, config.obs_key)
        buffers = _Buffers(n_steps, state_space, action_space, config.info_keys)
        explorer = _Explorer(action_space, np.random.default_rng(seed), config, policy)
        with tqdm(total=n_steps, desc=f"collect {env_id}", unit="step", disable=not progress, leave=False) as bar:
            _rollout(vec, explorer, buffers, seed, config, bar)
        full_observation_space = vec.single_observation_space
    finally:
        if owned:
            vec.close()
    metadata = {
        **_env_metadata(env, env_id, env_kwargs, full_observation_space, state_space, action_space, config.obs_key),
        **_run_metadata(seed, n_steps, config, policy, reset_options),
    }
    return buffers.dataset(metadata)


def _spaces(vec: gym.vector.VectorEnv, obs_key: str) -> tuple[spaces.Box, gym.Space]:
    """The bounded Box action space and the space of the stored state (``obs[obs_key]`` of a dict observation)."""
    action_space = vec.single_action_space
    if (
        not isinstance(action_space, spaces.Box)
        or not np.all(np.isfinite(action_space.low))
        or not np.all(np.isfinite(action_space.high))
    ):
        raise ValueError(f"collect_transitions needs a bounded Box action space, got {action_space}")
    obs_space = vec.single_observation_space
    if isinstance(obs_space, spaces.Dict):
        if obs_key not in obs_space.spaces:
            raise ValueError(f"obs_key {obs_key!r} not in the dict observation keys {list(obs_space.spaces)}")
        state_space = obs_space[obs_key]
    else:
        state_space = obs_space
    if not tuple(state_space.shape or ()):
        raise ValueError(f"observations must be arrays, got space {state_space}")
    return action_space, state_space


class _VectorStep(NamedTuple):
    """One vector-env step: per sub-env start and end states, actions, rewards, flags, recorded infos."""

    states: np.ndarray
    next_states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: dict[str, tuple[np.ndarray, np.ndarray]]


class _Buffers:
    """Preallocated arrays for ``n_steps`` transitions, filled one row at a time by :func:`_rollout`."""

    def __init__(
        self, n_steps: int, state_space: gym.Space, action_space: spaces.Box, info_keys: Sequence[str]
    ) -> None:
        self.n_steps, self.count = n_steps, 0
        self.observations = np.empty((n_steps, *tuple(state_space.shape or ())), dtype=state_space.dtype)
        self.next_observations = np.empty_like(self.observations)
        self.actions = np.empty((n_steps, *action_space.shape), dtype=np.float32)
        self.terminated = np.empty(n_steps, dtype=bool)
        self.truncated = np.empty(n_steps, dtype=bool)
        self.rewards = np.empty(n_steps, dtype=np.float32)
        self.episode_ids = np.empty(n_steps, dtype=np.int64)
        self.step_ids = np.empty(n_steps, dtype=np.int64)
        self.extras: dict[str, list[Any]] = {name: [] for key in info_keys for name in (key, "next_" + key)}

    @property
    def full(self) -> bool:
        return self.count >= self.n_steps

    def add(self, step: _VectorStep, i: int, episode: int, step_id: int) -> None:
        """Store sub-env ``i``'s transition of ``step`` as the next row."""
        row = self.count
        self.observations[row], self.next_observations[row] = step.states[i], step.next_states[i]
        self.actions[row], self.rewards[row] = step.actions[i], step.rewards[i]
        self.terminated[row], self.truncated[row] = step.terminated[i], step.truncated[i]
        self.episode_ids[row], self.step_ids[row] = episode, step_id
        for key, (before, after) in step.infos.items():
            self.extras[key].append(before[i].copy())
            self.extras["next_" + key].append(after[i].copy())
        self.count += 1

    def dataset(self, metadata: dict[str, Any]) -> TransitionDataset:
        return TransitionDataset(
            observations=self.observations,
            actions=self.actions,
            next_observations=self.next_observations,
            terminated=self.terminated,
            episode_ids=self.episode_ids,
            step_ids=self.step_ids,
            metadata=metadata,
            truncated=self.truncated,
            rewards=self.rewards,
            extras={name: np.stack(values) for name, values in self.extras.items()},
        )


def _rollout(
    vec: gym.vector.VectorEnv, explorer: _Explorer, buffers: _Buffers, seed: int, config: CollectionConfig, bar: Any
) -> None:
    """Step ``vec`` with ``explorer``'s actions until ``buffers`` is full, numbering episodes and steps.

    With next-step autoreset, the step after a sub-env's episode ends only resets it: that step is skipped
    (``resetting``) and the sub-env starts a new episode id (and fresh exploration noise)."""
    num_envs = config.num_envs
    obs, infos = vec.reset(seed=seed)
    episode = np.arange(num_envs, dtype=np.int64)
    next_episode = num_envs
    step = np.zeros(num_envs, dtype=np.int64)
    resetting = np.zeros(num_envs, dtype=bool)  # this vector step is an autoreset, not a transition
    while not buffers.full:
        actions = explorer.actions(_per_env(obs, num_envs))
        next_obs, rewards, terminated, truncated, next_infos = vec.step(actions)
        recorded = {key: (_info_values(infos, key), _info_values(next_infos, key)) for key in config.info_keys}
        states, next_states = _states(obs, config.obs_key), _states(next_obs, config.obs_key)
        transition = _VectorStep(states, next_states, actions, rewards, terminated, truncated, recorded)
        for i in range(num_envs):
            if resetting[i]:  # obs[i] was a final obs; next_obs[i] is the new episode's first obs
                continue
            if not buffers.full:
                buffers.add(transition, i, episode[i], step[i])
                bar.update(1)
            step[i] += 1
        for i in range(num_envs):
            if resetting[i]:
                episode[i], step[i] = next_episode, 0
                next_episode += 1
                explorer.episode_started(i)
        resetting = np.logical_or(terminated, truncated)
        obs, infos = next_obs, next_infos


def _info_values(infos: Mapping[str, Any], key: str) -> np.ndarray:
    """``infos[key]`` of a vector step, required from every sub-env."""
    values, present = infos.get(key), infos.get("_" + key)
    if values is None or present is None or not np.all(present):
        raise ValueError(
            f"info_keys: the env did not report info[{key!r}] at every step (info keys: {sorted(k for k in infos if not k.startswith('_'))})"
        )
    return np.asarray(values)


def _states(obs: Any, obs_key: str) -> np.ndarray:
    """The stored state of a (dict) vector observation, ``[num_envs, *state_shape]``."""
    return np.asarray(obs[obs_key] if isinstance(obs, Mapping) else obs)


def _per_env(obs: Any, num_envs: int) -> list[Any]:
    """A vector observation split into each sub-env's observation (what a policy sees)."""
    if isinstance(obs, Mapping):
        return [{k: v[i] for k, v in obs.items()} for i in range(num_envs)]
    return [obs[i] for i in range(num_envs)]


def _env_metadata(
    env: Any,
    env_id: str,
    env_kwargs: dict[str, Any],
    obs_space: gym.Space,
    state_space: gym.Space,
    action_space: spaces.Box,
    obs_key: str,
) -> dict[str, Any]:
    """The env half of a collected dataset's metadata: id, kwargs, episode limit, spaces."""
    spec = gym.spec(env_id) if isinstance(env, str) else None
    return {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "max_episode_steps": getattr(spec, "max_episode_steps", None),
        "observation_space": space_description(state_space),
        "full_observation_space": str(obs_space),
        "obs_key": obs_key if isinstance(obs_space, spaces.Dict) else None,
        "action_space": space_description(action_space),
    }


def _run_metadata(
    seed: int,
    n_steps: int,
    config: CollectionConfig,
    policy: Callable[[Any], Any] | None,
    reset_options: Callable[..., Any] | None,
) -> dict[str, Any]:
    """The collection half of a dataset's metadata: seed, sizes, exploration, versions, creation time."""
    from mpc_grasp import __version__ as package_version  # late import: mpc_grasp imports this module

    if policy is None:
        exploration = config.exploration
        params = {"correlation": config.correlation, "noise_scale": config.noise_scale}
        exploration_params = params if config.exploration == "correlated" else {}
    else:
        exploration = f"policy:{getattr(policy, '__name__', type(policy).__name__)}"
        exploration_params = {"policy_noise": config.policy_noise}
    return {
        "seed": int(seed),
        "n_steps": n_steps,
        "num_envs": config.num_envs,
        "exploration": exploration,
        "exploration_params": exploration_params,
        "info_keys": list(config.info_keys),
        "reset_options": None
        if reset_options is None
        else getattr(reset_options, "__name__", type(reset_options).__name__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": package_version,
        "gymnasium_version": gym.__version__,
    }


class _ResetOptionsWrapper(gym.Wrapper):
    """Calls ``reset`` with ``options_fn(rng)`` whenever no options are given (incl. vector autoresets)."""

    def __init__(
        self,
        env: gym.Env,
        options_fn: Callable[[np.random.Generator], Mapping[str, Any] | None],
        rng: np.random.Generator,
    ) -> None:
        super().__init__(env)
        self._options_fn, self._rng = options_fn, rng

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if options is None:
            drawn = self._options_fn(self._rng)
            options = None if drawn is None else dict(drawn)
        return self.env.reset(seed=seed, options=options)


def _with_reset_options(
    make: Callable[[], gym.Env],
    options_fn: Callable[[np.random.Generator], Mapping[str, Any] | None],
    rng: np.random.Generator,
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


def _shard_sizes(n_steps: int, shards: int) -> list[int]:
    """``n_steps`` split into ``shards`` near-equal sizes (the first ``n_steps % shards`` one larger)."""
    if int(shards) != shards or shards < 1:
        raise ValueError(f"shards must be a positive integer, got {shards!r}")
    if int(n_steps) != n_steps or n_steps < shards:
        raise ValueError(f"n_steps must be an integer >= shards ({shards}), got {n_steps!r}")
    n_steps, shards = int(n_steps), int(shards)
    return [n_steps // shards + (1 if index < n_steps % shards else 0) for index in range(shards)]


def shard_seeds(seed: int, shards: int) -> list[int]:
    """Independent per-shard seeds derived from ``seed`` (``numpy.random.SeedSequence.spawn``):
    shard k's stream depends only on ``(seed, k)``, never on which worker runs it or when."""
    return [
        int(child.generate_state(1, dtype=np.uint32)[0])
        for child in np.random.SeedSequence(int(seed)).spawn(int(shards))
    ]


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
    if "progress" in collect_options or "seed" in collect_options:
        raise TypeError("pass seed and progress directly, not inside collect_options")
    sizes, seeds = _shard_sizes(n_steps, shards), shard_seeds(seed, shards)
    if isinstance(env, str):  # fail fast on a bad id, here not in a worker
        _env_factories(env, dict(collect_options.get("env_kwargs") or {}), 1)
    tasks = [
        _Shard(env=env, n_steps=size, seed=shard_seed, options=dict(collect_options))
        for size, shard_seed in zip(sizes, seeds)
    ]
    parts = run_tasks(
        _collect_shard,
        tasks,
        backend=backend,
        address=address,
        num_workers=num_workers,
        progress=progress,
        desc="collect shards",
    )
    metadata = {
        **parts[0].metadata,
        "seed": int(seed),
        "n_steps": sum(sizes),
        "shards": len(sizes),
        "shard_seeds": seeds,
        "shard_steps": sizes,
        "collection_backend": backend,
    }
    return concatenate_datasets(parts, metadata)
