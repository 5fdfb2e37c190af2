"""The model-based RL loop (PETS style): plain functions, no framework.

Round 0 collects random-exploration transitions and trains a world model with a reward head (and, when the
data holds terminations, a termination head: see ``MBRLConfig.learn_termination``). Every later round runs
``GraspMPC`` in the real env, maximising the model's predicted return (no goal; with a termination head, the
return of an episode that may end),
adds those transitions to the dataset, retrains the model warm-started from the previous weights,
and evaluates the new agent on fixed-seed episodes. Each round is checkpointed in its own folder,
so ``run_mbrl(..., resume=True)`` skips the rounds already done. ``mpc-grasp mbrl ENV_ID`` runs it
(the command line is in :mod:`mpc_grasp.cli.mbrl`). The env-specific reward formulas live beside their
envs (``envs/rewards.py``, ``envs/cartpole.py``) and are re-exported here.

Everything reuses the package's helpers: :func:`collect_transitions` (also for the agent's own
episodes: the agent is its ``policy``), :func:`train_world_model` (``reward=True``,
``init_model=``), :func:`train_value_function`, :func:`run_episodes` / :func:`summarize_episodes`,
:func:`concatenate_datasets`, :func:`one_step_error` and the checkpoint functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from mpc_grasp.atomic import atomic_write_text
from mpc_grasp.control.agent import GraspMPC
from mpc_grasp.control.episodes import EpisodeRecord, run_episodes, summarize_episodes
from mpc_grasp.data import TransitionDataset, collect_transitions, concatenate_datasets, load_dataset, make_env
from mpc_grasp.envs.cartpole import cartpole_swingup_reward
from mpc_grasp.envs.rewards import alive_bonus_reward, inverted_double_pendulum_reward, pendulum_reward, reacher_reward
from mpc_grasp.models import (
    MLPWorldModel,
    ValueFunction,
    load_world_model,
    one_step_error,
    save_world_model,
    train_value_function,
    train_world_model,
)
from mpc_grasp.parallel import ray_session, require_ray, run_tasks
from mpc_grasp.planners.base import RewardFn
from mpc_grasp.validation import is_integer_at_least

__all__ = [
    "KNOWN_REWARDS",
    "MBRLConfig",
    "MBRL_RECIPES",
    "RoundRecord",
    "alive_bonus_reward",
    "cartpole_swingup_reward",
    "collect_agent_transitions",
    "evaluate_return",
    "finished_rounds",
    "fit_models",
    "interrupted_phase",
    "inverted_double_pendulum_reward",
    "learns_termination",
    "make_agent",
    "mbrl_recipe",
    "pendulum_reward",
    "plot_learning_curves",
    "reacher_reward",
    "resume_conflicts",
    "reward_error",
    "run_mbrl",
]


KNOWN_REWARDS: dict[str, RewardFn] = {
    "Pendulum-v1": pendulum_reward,
    "InvertedPendulum-v5": alive_bonus_reward,
    "mpc_grasp/CartPoleSwingup-v0": cartpole_swingup_reward,
    "Reacher-v5": reacher_reward,
    "InvertedDoublePendulum-v5": inverted_double_pendulum_reward,
}
"""Envs whose reward is known as a differentiable formula (``MBRLConfig.reward="known"``, for comparison
with the learned reward head). ``InvertedPendulum-v5``'s is its own alive bonus, 1 per step
(:func:`alive_bonus_reward`): it needs the learned termination to plan with."""


@dataclass(frozen=True)
class MBRLConfig:
    """One model-based RL run: data budgets, world model, planner and evaluation.

    Env steps counted are the training steps (random seed data plus the agent's episodes); the
    evaluation episodes are not added to the data and not counted, as for the RL baselines.
    """

    env_id: str = "Pendulum-v1"
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    rounds: int = 10
    """Rounds after the random seed round (round 0); each adds ``steps_per_round`` agent steps."""
    seed_steps: int = 200
    """Random-exploration transitions of round 0 (uniform actions). One Pendulum episode: the model
    then knows only the hanging states, and the loop must learn the rest from the agent's own data."""
    steps_per_round: int = 200
    """Real env steps the agent takes per round (one Pendulum episode): data of the agent's own states."""
    exploration: str = "random"
    """``collect_transitions`` exploration of the seed data: ``"random"`` or ``"correlated"``."""
    policy_noise: float = 0.1
    """Gaussian noise (half action ranges) on the agent's actions while collecting: a little exploration."""
    reward: str = "learned"
    """``"learned"``: plan with the model's reward head; ``"known"``: with ``KNOWN_REWARDS[env_id]``."""
    terminal_value: bool = False
    """Also learn ``V(s)`` by TD(0) on the data and plan with it as the terminal value."""
    learn_termination: bool | None = None
    """Train the model's termination head on the data's ``terminated`` flags and plan with
    ``termination_fn=model.termination_probability``; None = when the round-0 seed data holds a termination
    (decided once: later rounds keep the model's architecture; recorded as ``RoundRecord.learned_termination``)."""
    value_discount: float = 0.95
    """Discount of the terminal value (and then of the planning objective, so the two agree)."""
    value_epochs: int = 60
    """TD epochs of the value's first fit (a third of them for each warm refit)."""
    planner: str = "grasp"
    horizon: int = 30
    """Planning horizon: 30 steps = 1.5 s of Pendulum, enough to see a swing-up pay off."""
    planner_options: Mapping[str, Any] | None = None
    """Options for ``GraspMPC`` / ``make_planner``; None = the planner's defaults (GRASP with a reward: no
    lifted steps, a sampling sync every iteration). See docs/decisions.md#mbrlconfigplanner_options."""
    replan_every: int = 1
    hidden_sizes: tuple[int, ...] = (200, 200)
    """World model (and reward head) hidden layers: small enough to train in seconds on a CPU."""
    ensemble_size: int = 1
    epochs: int = 100
    """Epochs of each fit from scratch (every round's, unless ``warm_start``)."""
    warm_start: bool = False
    """Refit each round from the previous round's weights and normalisers (those of round 0's random data)
    instead of from scratch. See docs/decisions.md#mbrlconfigwarm_start-and-val_fraction."""
    retrain_epochs: int = 40
    """Epochs of each warm-started refit (with ``warm_start``)."""
    val_fraction: float = 0.0
    """Whole episodes held out for early stopping and model selection (``TrainingConfig.val_fraction``); 0: each
    fit runs all its epochs (an early round holds a few episodes, too few to select a model on one of them)."""
    min_train_steps: int = 1000
    """Every fit takes at least this many gradient steps (``TrainingConfig.min_steps``): the early rounds' data
    is one or a few batches per epoch. See docs/decisions.md#mbrlconfigmin_train_steps."""
    rollout_steps: int = 1
    """Each fit also trains on the model's own open-loop rollouts of this many steps (``TrainingConfig.rollout_steps``;
    1 = one-step loss only): plans that look further than a few steps need rollouts that stay on the data."""
    batch_size: int = 256
    lr: float = 1e-3
    eval_episodes: int = 5
    """Fixed-seed evaluation episodes after every round (the same starts every round)."""
    eval_seed: int = 0
    seed: int = 0
    """Seeds data collection, training and planning (round k uses ``seed + k``-derived seeds)."""

    def __post_init__(self) -> None:
        for name in (
            "seed_steps",
            "steps_per_round",
            "horizon",
            "replan_every",
            "eval_episodes",
            "epochs",
            "retrain_epochs",
            "batch_size",
            "ensemble_size",
            "value_epochs",
            "rollout_steps",
        ):
            value = getattr(self, name)
            if not is_integer_at_least(value, 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("min_train_steps", "rounds", "seed", "eval_seed"):
            if not is_integer_at_least(getattr(self, name), 0):
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if self.learn_termination not in (None, True, False):
            raise ValueError(f"learn_termination must be True, False or None, got {self.learn_termination!r}")
        if self.reward not in ("learned", "known"):
            raise ValueError(f"reward must be 'learned' or 'known', got {self.reward!r}")
        if self.reward == "known" and self.env_id not in KNOWN_REWARDS:
            raise ValueError(f"reward='known' needs a formula for {self.env_id!r}; known: {sorted(KNOWN_REWARDS)}")
        if not 0.0 < self.value_discount < 1.0:
            raise ValueError(f"value_discount must be in (0, 1), got {self.value_discount}")
        if not self.policy_noise >= 0:
            raise ValueError(f"policy_noise must be >= 0, got {self.policy_noise!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.exploration not in ("random", "correlated"):
            raise ValueError(f"exploration must be 'random' or 'correlated', got {self.exploration!r}")
        if not isinstance(self.env_kwargs, Mapping):
            raise ValueError(f"env_kwargs must be a mapping, got {type(self.env_kwargs).__name__}")
        if self.planner_options is not None and not isinstance(self.planner_options, Mapping):
            raise ValueError(f"planner_options must be a mapping or None, got {type(self.planner_options).__name__}")
        hidden = tuple(self.hidden_sizes) if isinstance(self.hidden_sizes, (tuple, list)) else ()
        if not hidden or not all(is_integer_at_least(size, 1) for size in hidden):
            raise ValueError(f"hidden_sizes must be non-empty positive integers, got {self.hidden_sizes!r}")
        object.__setattr__(self, "hidden_sizes", hidden)

    @property
    def resolved_planner_options(self) -> dict[str, Any]:
        """The planner options used: ``planner_options``, or none (the planner's defaults)."""
        return {} if self.planner_options is None else dict(self.planner_options)

    def env_steps(self, round_index: int) -> int:
        """Training env steps after ``round_index`` (round 0: the random seed data)."""
        return self.seed_steps + round_index * self.steps_per_round

    def to_json(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        payload["env_kwargs"] = dict(self.env_kwargs)
        payload["hidden_sizes"] = list(self.hidden_sizes)
        payload["planner_options"] = self.resolved_planner_options  # what ran, even if the defaults change
        return json.loads(json.dumps(payload, default=repr))


MBRL_RECIPES: dict[str, dict[str, Any]] = {
    "Pendulum-v1": {},
    "InvertedPendulum-v5": {
        "reward": "known",
        "learn_termination": True,
        "terminal_value": True,
        "horizon": 15,
        "rounds": 9,
        "seed_steps": 200,
        "steps_per_round": 200,
    },
    "InvertedDoublePendulum-v5": {
        "reward": "known",
        "learn_termination": True,
        "seed_steps": 1000,
        "steps_per_round": 1000,
        "rounds": 19,
        "eval_episodes": 3,
    },
    "mpc_grasp/CartPoleSwingup-v0": {
        "planner": "grasp",
        "horizon": 50,
        "seed_steps": 1000,
        "steps_per_round": 1000,
        "rounds": 9,
        "eval_episodes": 3,
    },
}
"""Out-of-the-box ``MBRLConfig`` fields per env id (:func:`mbrl_recipe`); the planner keeps its defaults.

``Pendulum-v1``: the ``MBRLConfig`` defaults. ``InvertedPendulum-v5``: plans with the env's own reward
(:func:`alive_bonus_reward`, 1 per step while alive) and the model's learned termination head (the
probability that the pole falls cuts the predicted return) and a TD value of the same return as the terminal
value (it sees past the 15-step horizon, e.g. a cart drifting to its rail), horizon 15 (0.6 s: longer rollouts
of the early models drift), 200 random seed steps (about 30 short random episodes near the upright state), then
9 rounds of 200 agent steps (2000 env steps in all).

``InvertedDoublePendulum-v5``: the env's own reward formula while alive (:func:`inverted_double_pendulum_reward`)
with the learned termination head, as InvertedPendulum's but no terminal value, horizon 30; 1000 random seed steps
(random episodes are short: many starts), then 19 rounds of 1000 agent steps (20k env steps in all).

``mpc_grasp/CartPoleSwingup-v0``: the learned reward head, horizon 50 (2 s), 1000 random seed steps, then 9
rounds of 1000 agent steps (10k env steps in all), and GRASP at its defaults inside ``GraspMPC``.

Why these values: docs/decisions.md#mbrl_recipes."""


def mbrl_recipe(env_id: str, **overrides: Any) -> MBRLConfig:
    """The ``MBRLConfig`` that works out of the box for ``env_id`` (:data:`MBRL_RECIPES`), with ``overrides``.

    A ``planner`` override other than the recipe's drops the recipe's ``planner_options`` (they belong to its
    own planner) unless ``planner_options`` is overridden too. Raises ``ValueError`` for an env without a
    recipe (``MBRLConfig(env_id=...)`` is the generic start)."""
    if env_id not in MBRL_RECIPES:
        raise ValueError(
            f"no MBRL recipe for {env_id!r}; recipes: {sorted(MBRL_RECIPES)} (or build MBRLConfig(env_id=...) yourself)"
        )
    recipe = dict(MBRL_RECIPES[env_id])
    if overrides.get("planner", recipe.get("planner", "grasp")) != recipe.get("planner", "grasp"):
        recipe.pop("planner_options", None)
    return MBRLConfig(**{"env_id": env_id, **recipe, **overrides})


@dataclass(frozen=True)
class RoundRecord:
    """What one round did and measured (``record.json`` in its folder)."""

    round: int
    env_steps: int
    """Training env steps so far (seed data + the agent's episodes)."""
    mean_return: float
    std_return: float
    episode_returns: list[float]
    model_rmse_before: float | None
    """One-step RMSE of the previous round's model on this round's agent transitions (None in round 0)."""
    model_rmse_after: float | None
    """The same after retraining on them."""
    reward_rmse_before: float | None
    reward_rmse_after: float | None
    agent_return: float | None
    """Mean return of the agent's own (noisy) training episodes this round (None in round 0)."""
    train_time_s: float
    collect_time_s: float
    eval_time_s: float
    median_plan_time_s: float | None
    success_rate: float | None = None
    """Fraction of the evaluation episodes that end with ``info["is_success"]`` (None: the env reports none)."""
    learned_termination: bool = False
    """Whether the model has a learned termination head and the agent planned with it."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- the steps of a round


def fit_models(
    dataset: TransitionDataset,
    config: MBRLConfig,
    round_index: int,
    previous: tuple[MLPWorldModel, ValueFunction | None] | None = None,
) -> tuple[MLPWorldModel, ValueFunction | None]:
    """Train the world model with its reward head and, when :func:`learns_termination`, its termination head
    (from scratch, or warm-started from ``previous`` with ``config.warm_start``) and, with
    ``config.terminal_value``, the value function (warm-started) on ``dataset``."""
    previous_model, previous_value = previous if previous is not None else (None, None)
    init_model = previous_model if config.warm_start else None
    model = train_world_model(
        dataset,
        hidden_sizes=config.hidden_sizes,
        ensemble_size=config.ensemble_size,
        epochs=config.epochs if init_model is None else config.retrain_epochs,
        min_steps=config.min_train_steps,
        rollout_steps=config.rollout_steps,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=config.seed + round_index,
        progress=False,
        reward=True,
        termination=learns_termination(config, dataset, previous_model),
        init_model=init_model,
        val_fraction=config.val_fraction,
    )
    value = None
    if config.terminal_value:
        value = train_value_function(
            dataset,
            model,
            discount=config.value_discount,
            epochs=config.value_epochs if previous_value is None else max(1, config.value_epochs // 3),
            seed=config.seed + round_index,
            init_value=previous_value,
        )
    return model, value


def learns_termination(
    config: MBRLConfig, dataset: TransitionDataset, previous_model: MLPWorldModel | None = None
) -> bool:
    """Whether the loop's model gets a termination head: ``config.learn_termination`` when set, else the previous
    round's model's choice (made once, in round 0), else whether ``dataset`` holds a terminated transition."""
    if config.learn_termination is not None:
        return config.learn_termination
    if previous_model is not None:
        return previous_model.has_termination_head
    return bool(np.any(dataset.terminated))


def make_agent(
    model: MLPWorldModel, config: MBRLConfig, action_space: gym.spaces.Box, value: ValueFunction | None = None
) -> GraspMPC:
    """``GraspMPC`` maximising the predicted return (learned or known reward, optional terminal value; with
    the model's termination head, ``termination_fn=model.termination_probability`` unless ``planner_options``
    gives one), no goal."""
    reward_fn = model.reward if config.reward == "learned" else KNOWN_REWARDS[config.env_id]
    options = config.resolved_planner_options
    if model.has_termination_head:
        options.setdefault("termination_fn", model.termination_probability)
    if value is not None:
        options.setdefault("terminal_value", value)
        options.setdefault("discount", value.discount)
    return GraspMPC(
        model,
        config.planner,
        horizon=config.horizon,
        action_space=action_space,
        replan_every=config.replan_every,
        seed=config.seed,
        reward_fn=reward_fn,
        **options,
    )


class _ResetAgentEachEpisode(gym.Wrapper):
    """Calls ``agent.reset()`` at every env reset, so an agent used as ``collect_transitions``'s policy
    starts each episode without the previous episode's warm start."""

    def __init__(self, env: gym.Env, agent: GraspMPC) -> None:
        super().__init__(env)
        self._agent = agent

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._agent.reset()
        return self.env.reset(**kwargs)


def collect_agent_transitions(agent: GraspMPC, config: MBRLConfig, round_index: int) -> TransitionDataset:
    """``config.steps_per_round`` real env steps of ``agent`` (plus ``policy_noise``), as a dataset."""
    env_kwargs = dict(config.env_kwargs)
    return collect_transitions(
        lambda: _ResetAgentEachEpisode(make_env(config.env_id, **env_kwargs), agent),
        config.steps_per_round,
        policy=agent,
        policy_noise=config.policy_noise,
        seed=config.seed * 1000 + round_index,
        progress=False,
    )


def evaluate_return(agent: GraspMPC, config: MBRLConfig, workers: int = 1) -> dict[str, Any]:
    """Mean return (and the rest of :func:`summarize_episodes`) over ``eval_episodes`` fixed-seed episodes.

    ``workers`` > 1 runs the episodes as that many Ray tasks at a time (``pip install 'mpc-grasp[ray]'``; a Ray
    started by the caller is reused), each episode from the same start as in the one-process run: the env is
    reset with ``eval_seed`` and then once per earlier episode (Gymnasium envs draw their starts at reset).
    """
    if not is_integer_at_least(workers, 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if workers == 1:
        env = make_env(config.env_id, **dict(config.env_kwargs))
        try:
            records = run_episodes(env, agent, config.eval_episodes, seed=config.eval_seed, progress=False)
        finally:
            env.close()
    else:
        tasks = [(agent, config, index) for index in range(config.eval_episodes)]
        records = run_tasks(_evaluation_episode, tasks, backend="ray", num_workers=workers, progress=False)
    return {**summarize_episodes(records), "episode_returns": [record.episode_return for record in records]}


def _evaluation_episode(task: tuple[GraspMPC, MBRLConfig, int]) -> EpisodeRecord:
    """Evaluation episode ``index`` on its own (a Ray task of :func:`evaluate_return`)."""
    agent, config, index = task
    env = make_env(config.env_id, **dict(config.env_kwargs))
    try:
        if index:  # replay the earlier episodes' resets: run_episodes makes this episode's
            env.reset(seed=config.eval_seed)
            for _ in range(index - 1):
                env.reset()
        record = run_episodes(env, agent, 1, seed=None if index else config.eval_seed, progress=False)[0]
    finally:
        env.close()
    return dataclasses.replace(record, index=index)


@torch.no_grad()
def reward_error(model: MLPWorldModel, dataset: TransitionDataset) -> float:
    """RMSE of ``model.reward`` against the dataset's rewards."""
    predicted = model.reward(
        torch.as_tensor(dataset.observations, dtype=torch.float32),
        torch.as_tensor(dataset.actions, dtype=torch.float32),
        torch.as_tensor(dataset.next_observations, dtype=torch.float32),
    )
    return float((predicted - torch.as_tensor(dataset.rewards)).square().mean().sqrt())


# --------------------------------------------------------------------------- the loop


def run_mbrl(
    config: MBRLConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True, eval_workers: int = 1
) -> list[RoundRecord]:
    """Run (or continue) the loop; returns one record per round (round 0 = random seed data).

    ``out_dir`` gets ``config.json``, ``round_XXX/{dataset.npz, model.pt, value.pt, record.json}``,
    ``history.json`` and ``learning_curve.png``. A round runs in three phases (collect, train,
    evaluate), each checkpointed as it ends. With ``resume`` the finished rounds (those with a
    ``record.json``) are loaded, not recomputed, and an interrupted round continues after its last
    finished phase; the config must be the one they were run with (the number of rounds may grow).
    Without it, a folder that already holds rounds is refused. ``progress`` shows the round, phase,
    env steps and a time estimate (a redrawn bar on a terminal, one line per phase in a piped log).
    ``eval_workers`` > 1 runs each round's evaluation episodes in parallel on one Ray started for the run
    (:func:`evaluate_return`; the same episodes and returns as one after another).
    """
    if not is_integer_at_least(eval_workers, 1):
        raise ValueError(f"eval_workers must be a positive integer, got {eval_workers!r}")
    if eval_workers > 1:
        require_ray()  # the install hint before any work
    out = Path(out_dir)
    _prepare_out_dir(out, config, resume)
    records = _finished_records(out) if resume else []
    dataset, models = _load_round(out / _round_name(records[-1].round)) if records else (None, None)
    probe = make_env(config.env_id, **dict(config.env_kwargs))
    action_space = cast(gym.spaces.Box, probe.action_space)  # continuous control
    probe.close()
    report = _PhaseReport(config, first_round=len(records), enabled=progress)
    with ray_session(num_workers=eval_workers) if eval_workers > 1 else contextlib.nullcontext():
        for round_index in range(len(records), config.rounds + 1):
            folder = out / _round_name(round_index)
            dataset, models, record = _run_round(
                config, round_index, action_space, dataset, models, folder, report, eval_workers
            )
            records.append(record)
            report.round_done(record)
    report.close()
    termination = bool(records and records[-1].learned_termination)
    history = {"config": config.to_json(), "learned_termination": termination, "rounds": [r.to_json() for r in records]}
    atomic_write_text(out / "history.json", json.dumps(history, indent=2))
    label = f"GraspMPC ({config.planner}, {config.reward} reward{', learned termination' if termination else ''})"
    plot_learning_curves({label: _curve(records)}, out / "learning_curve.png", title=config.env_id)
    return records


_Models = tuple[MLPWorldModel, ValueFunction | None]
_PHASES = ("collecting", "training", "evaluating")


class _PhaseReport:
    """Progress of the loop: round, phase, env steps and the time left (mean round time of this process
    times the rounds to go). A tqdm bar on a terminal, else one line per phase on stderr."""

    def __init__(self, config: MBRLConfig, first_round: int, enabled: bool) -> None:
        self.config, self.enabled, self.started = config, enabled, time.perf_counter()
        self.rounds_run, self.last_done = 0, self.started
        self.on_terminal = sys.stderr.isatty()
        self.bar = tqdm(
            total=config.rounds + 1,
            initial=first_round,
            desc=f"mbrl {config.env_id}",
            unit="round",
            disable=not (enabled and self.on_terminal),
            dynamic_ncols=True,
        )

    def phase(self, round_index: int, name: str) -> None:
        steps = self.config.env_steps(round_index)
        eta = "" if not self.rounds_run else f", about {_minutes(self._time_left(round_index))} left"
        text = f"round {round_index}/{self.config.rounds}: {name} ({steps} env steps by its end{eta})"
        if self.on_terminal:
            self.bar.set_postfix_str(text)
        elif self.enabled:
            print(f"mbrl {self.config.env_id} {text}", file=sys.stderr, flush=True)

    def round_done(self, record: RoundRecord) -> None:
        self.rounds_run, self.last_done = self.rounds_run + 1, time.perf_counter()
        self.bar.set_postfix(steps=record.env_steps, mean_return=f"{record.mean_return:.0f}", refresh=False)
        self.bar.update(1)
        if self.enabled and not self.on_terminal:
            print(
                f"mbrl {self.config.env_id} round {record.round}/{self.config.rounds}: mean return "
                f"{record.mean_return:.1f} after {record.env_steps} env steps",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        self.bar.close()

    def _time_left(self, round_index: int) -> float:
        """Rounds to go (this one included) at this process's mean round time, less this round's time so far."""
        per_round = (self.last_done - self.started) / self.rounds_run
        to_go = (self.config.rounds + 1 - round_index) * per_round - (time.perf_counter() - self.last_done)
        return max(0.0, to_go)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _run_round(
    config: MBRLConfig,
    round_index: int,
    action_space: gym.spaces.Box,
    dataset: TransitionDataset | None,
    models: _Models | None,
    folder: Path,
    report: _PhaseReport,
    eval_workers: int = 1,
) -> tuple[TransitionDataset, _Models, RoundRecord]:
    """One round: collect (random seed data without ``models``, else the agent's episodes), refit, evaluate.
    Each phase checkpoints into ``folder`` and ``phase.json`` says which ended; a phase that already
    ended there (an interrupted round) is loaded, not rerun. Returns the grown dataset, the refitted
    models and the round's record (``record.json``, written last)."""
    done = _phase_state(folder)
    if not done:
        report.phase(round_index, _PHASES[0])
        dataset, done = _collect_phase(config, round_index, action_space, dataset, models)
        dataset.save(folder / "dataset.npz")
        atomic_write_text(folder / "phase.json", json.dumps(done))
    else:
        dataset = load_dataset(folder / "dataset.npz")
    if "train_time_s" not in done:
        report.phase(round_index, _PHASES[1])
        started = time.perf_counter()
        models = fit_models(dataset, config, round_index, models)
        _save_models(folder, models)
        done = {**done, "train_time_s": time.perf_counter() - started}
        atomic_write_text(folder / "phase.json", json.dumps(done))
    else:
        models = _load_models(folder)
    report.phase(round_index, _PHASES[2])
    started = time.perf_counter()
    evaluation = evaluate_return(make_agent(models[0], config, action_space, models[1]), config, eval_workers)
    agent_data = dataset.subset(slice(-config.steps_per_round, None)) if round_index else None
    record = RoundRecord(
        round=round_index,
        env_steps=config.env_steps(round_index),
        mean_return=evaluation["mean_return"],
        std_return=evaluation["std_return"],
        episode_returns=evaluation["episode_returns"],
        model_rmse_after=None if agent_data is None else one_step_error(models[0], agent_data)["rmse"],
        reward_rmse_after=None if agent_data is None else reward_error(models[0], agent_data),
        eval_time_s=time.perf_counter() - started,
        median_plan_time_s=evaluation["median_plan_time_s"],
        success_rate=evaluation["success_rate"],
        learned_termination=models[0].has_termination_head,
        **done,
    )
    atomic_write_text(folder / "record.json", json.dumps(record.to_json(), indent=2))
    (folder / "phase.json").unlink()
    return dataset, models, record


def _collect_phase(
    config: MBRLConfig,
    round_index: int,
    action_space: gym.spaces.Box,
    dataset: TransitionDataset | None,
    models: _Models | None,
) -> tuple[TransitionDataset, dict[str, Any]]:
    """The grown dataset and the collection's part of the record (its time; the previous models' errors on
    the new data and the agent's own return from round 1 on)."""
    started = time.perf_counter()
    if models is None:
        seed_data = collect_transitions(
            config.env_id,
            config.seed_steps,
            seed=config.seed,
            exploration=config.exploration,
            progress=False,
            env_kwargs=dict(config.env_kwargs),
        )
        nothing_before: dict[str, Any] = {"model_rmse_before": None, "reward_rmse_before": None, "agent_return": None}
        return seed_data, {**nothing_before, "collect_time_s": time.perf_counter() - started}
    assert dataset is not None  # collected in round 0 (or loaded on resume)
    agent_data = collect_agent_transitions(make_agent(models[0], config, action_space, models[1]), config, round_index)
    done: dict[str, Any] = {
        "model_rmse_before": one_step_error(models[0], agent_data)["rmse"],
        "reward_rmse_before": reward_error(models[0], agent_data),
        "agent_return": _mean_episode_return(agent_data),
        "collect_time_s": time.perf_counter() - started,
    }
    return concatenate_datasets([dataset, agent_data]), done


def _phase_state(folder: Path) -> dict[str, Any]:
    """What an interrupted round in ``folder`` finished (``phase.json``); empty for a fresh round."""
    path = folder / "phase.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def interrupted_phase(out_dir: str | Path) -> str | None:
    """The phase a resumed run continues the interrupted round of ``out_dir`` at (``"training"`` or
    ``"evaluating"``), or None when no round stopped after a finished phase. Reads only."""
    state = _phase_state(Path(out_dir) / _round_name(finished_rounds(out_dir)))
    return None if not state else (_PHASES[2] if "train_time_s" in state else _PHASES[1])


def _save_models(folder: Path, models: _Models) -> None:
    save_world_model(models[0], folder / "model.pt")
    if models[1] is not None:
        save_world_model(models[1], folder / "value.pt")


def _load_models(folder: Path) -> _Models:
    model = load_world_model(folder / "model.pt")
    value = load_world_model(folder / "value.pt") if (folder / "value.pt").is_file() else None
    return model, value  # type: ignore[return-value]


def _load_round(folder: Path) -> tuple[TransitionDataset, _Models]:
    """The dataset and models a finished round saved (to resume after it)."""
    return load_dataset(folder / "dataset.npz"), _load_models(folder)


def plot_learning_curves(
    curves: Mapping[
        str, tuple[Sequence[int], Sequence[float]] | tuple[Sequence[int], Sequence[float], Sequence[float]]
    ],
    path: str | Path,
    *,
    title: str = "",
    target: float | None = None,
) -> Path:
    """Mean evaluation return vs training env steps, one line per entry ``name -> (steps, returns[, stds])``."""
    from mpc_grasp.plotting import plt, save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, curve in curves.items():
        steps, returns = np.asarray(curve[0]), np.asarray(curve[1], dtype=float)
        ax.plot(steps, returns, "o-", label=name)
        if len(curve) > 2:
            spread = np.asarray(curve[2], dtype=float)
            ax.fill_between(steps, returns - spread, returns + spread, alpha=0.15)
    if target is not None:
        ax.axhline(target, color="0.4", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("training env steps")
    ax.set_ylabel("mean evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _curve(records: Sequence[RoundRecord]) -> tuple[list[int], list[float], list[float]]:
    return [r.env_steps for r in records], [r.mean_return for r in records], [r.std_return for r in records]


def _mean_episode_return(dataset: TransitionDataset) -> float:
    """Mean summed reward per episode of ``dataset`` (partial episodes count as they are)."""
    episodes = np.unique(dataset.episode_ids)
    assert dataset.rewards is not None  # filled in by TransitionDataset.__post_init__
    return float(np.mean([dataset.rewards[dataset.episode_ids == episode].sum() for episode in episodes]))


def _round_name(round_index: int) -> str:
    return f"round_{round_index:03d}"


def finished_rounds(out_dir: str | Path) -> int:
    """How many consecutive rounds 0, 1, ... of the run in ``out_dir`` finished (have a ``record.json``):
    the round a resumed run starts at. Reads only."""
    out, count = Path(out_dir), 0
    while (out / _round_name(count) / "record.json").is_file():
        count += 1
    return count


def resume_conflicts(out_dir: str | Path, config: MBRLConfig) -> dict[str, tuple[Any, Any]]:
    """``field -> (saved, given)`` for each config field other than ``rounds`` in which ``config`` differs from
    the ``config.json`` in ``out_dir`` (fields added since that run count at what the loop then did:
    :data:`_BEFORE_FIELD`, else their defaults); empty without a saved config."""
    saved_path = Path(out_dir) / "config.json"
    if not saved_path.is_file():
        return {}
    defaults = MBRLConfig(env_id=config.env_id).to_json()
    saved = {**defaults, **_BEFORE_FIELD, **json.loads(saved_path.read_text())}
    current = config.to_json()
    keys = sorted(key for key in set(saved) | set(current) if key != "rounds" and saved.get(key) != current.get(key))
    return {key: (saved.get(key), current.get(key)) for key in keys}


_BEFORE_FIELD = {"warm_start": True, "val_fraction": 0.1}
"""What the loop did before these ``MBRLConfig`` fields existed (a run saved then must not resume as another)."""


def _prepare_out_dir(out: Path, config: MBRLConfig, resume: bool) -> None:
    """Create ``out``, write ``config.json``; on resume check it against the saved one (rounds may grow)."""
    out.mkdir(parents=True, exist_ok=True)
    rounds_done = sorted(out.glob("round_*"))
    if not resume and rounds_done:
        raise ValueError(
            f"{out} already holds {len(rounds_done)} round folder(s): pass resume=True to continue, or use an empty out_dir"
        )
    differing = resume_conflicts(out, config) if resume else {}
    if differing:
        raise ValueError(
            f"cannot resume {out}: its config differs in {sorted(differing)} (saved {[v[0] for v in differing.values()]})"
        )
    atomic_write_text(out / "config.json", json.dumps(config.to_json(), indent=2))


def _finished_records(out: Path) -> list[RoundRecord]:
    """Records of the consecutive finished rounds 0, 1, ... An interrupted round keeps the phases it finished
    (``phase.json``); one that finished none is cleared and rerun."""
    records = [
        RoundRecord(**json.loads((out / _round_name(index) / "record.json").read_text()))
        for index in range(finished_rounds(out))
    ]
    interrupted = out / _round_name(len(records))
    if interrupted.is_dir() and not _phase_state(interrupted):
        shutil.rmtree(interrupted)  # our own partial output of a round that finished no phase
    return records
