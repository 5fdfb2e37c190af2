"""Tasks that end: the world model's learned termination head, termination-aware planning objectives
(the return of an episode that may end) and the model-based RL loop's use of both."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor

from mpc_grasp.data import TransitionDataset
from mpc_grasp.models import MLPWorldModel, load_world_model, save_world_model, train_world_model
from mpc_grasp.models import checkpoint as checkpoint_module
from mpc_grasp.models.analytic import LinearSystem
from mpc_grasp.models.training import MAX_TERMINATION_POS_WEIGHT, TrainingConfig
from mpc_grasp.planners import PLANNERS, make_planner
from mpc_grasp.rl.mbrl import MBRLConfig, fit_models, learns_termination, make_agent

BOUNDARY = 1.0
"""The synthetic tasks end once the next state leaves ``|x'| <= BOUNDARY``."""


def boundary_dataset(rows: int = 1200, seed: int = 0) -> TransitionDataset:
    """1-D point ``x' = x + 0.2 a`` with ``x`` uniform in [-1.5, 1.5]; terminated iff ``|x'| > 1``; reward ``x'``."""
    rng = np.random.default_rng(seed)
    states = rng.uniform(-1.5, 1.5, (rows, 1)).astype(np.float32)
    actions = rng.uniform(-1, 1, (rows, 1)).astype(np.float32)
    next_states = states + 0.2 * actions
    return TransitionDataset(
        observations=states,
        actions=actions,
        next_observations=next_states,
        terminated=np.abs(next_states[:, 0]) > BOUNDARY,
        episode_ids=np.arange(rows) // 10,
        step_ids=np.arange(rows) % 10,
        rewards=next_states[:, 0],
    )


@pytest.fixture(scope="module")
def boundary_model() -> MLPWorldModel:
    return train_world_model(
        boundary_dataset(),
        hidden_sizes=(32, 32),
        epochs=100,
        batch_size=64,
        termination=True,
        seed=0,
        progress=False,
        num_threads=1,
    )


def next_state_reward(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """Moving right pays: the reward is the next position."""
    return next_state[..., 0]


def boundary_termination(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """A known, smooth termination: probability 1/2 at ``x' = 1``, near 1 beyond, near 0 inside."""
    return torch.sigmoid((next_state[..., 0] - BOUNDARY) / 0.05)


def alive_value(state: Tensor) -> Tensor:
    """A constant value of being alive after the horizon (so the last step is not free to end the episode)."""
    return state[..., 0] * 0.0 + 10.0


# --------------------------------------------------------------------------- (a) the head learns a boundary


def test_the_termination_head_learns_a_known_boundary(boundary_model: MLPWorldModel) -> None:
    model = boundary_model
    assert model.has_termination_head and not model.has_reward_head
    states = torch.tensor([[0.0], [0.5], [-0.5], [1.2], [-1.2], [1.4]])
    actions = torch.zeros(len(states), 1)
    probability = model.termination_probability(states, actions, states)
    assert probability.shape == (6,) and bool(((probability >= 0) & (probability <= 1)).all())
    assert probability[:3].max() < 0.2, probability  # inside: the episode goes on
    assert probability[3:].min() > 0.8, probability  # beyond |x'| > 1: it ends
    history = model.training_history
    assert history["config"]["termination"] is True
    assert len(history["val_termination_bce"]) == len(history["epoch"])
    assert history["val_termination_bce"][history["best_epoch"] - 1] < history["val_termination_bce"][0]
    data = boundary_dataset()
    train_fraction = data.terminated.mean()  # about a third of the rows end: a weight near 2
    assert 1.0 < history["termination_pos_weight"] < 2 * (1 - train_fraction) / train_fraction


def test_rare_terminations_are_weighted_up_to_the_cap() -> None:
    data = boundary_dataset(rows=400)
    data.terminated[:] = False
    data.terminated[[5, 305]] = True  # 2 terminal rows: the raw weight would be about 200
    model = train_world_model(data, hidden_sizes=(8,), epochs=1, termination=True, val_fraction=0.0, progress=False)
    assert model.training_history["termination_pos_weight"] == MAX_TERMINATION_POS_WEIGHT
    data.terminated[:] = False  # none at all: no weighting, the head learns that nothing ends
    model = train_world_model(data, hidden_sizes=(8,), epochs=1, termination=True, val_fraction=0.0, progress=False)
    assert model.training_history["termination_pos_weight"] == 1.0


# --------------------------------------------------------------------------- (b) plans avoid the end


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_a_plan_avoids_a_terminating_state_that_a_reward_only_plan_walks_into(name: str) -> None:
    model = LinearSystem.point(step_size=0.25, dims=1)  # x' = x + 0.25 a, a in [-1, 1]
    start = torch.tensor([0.5])
    options = {"reward_fn": next_state_reward, "terminal_value": alive_value, "seed": 0}
    reward_only = make_planner(name, model, 8, **options).plan(start)
    aware = make_planner(name, model, 8, termination_fn=boundary_termination, **options).plan(start)
    assert reward_only.states[:, 0].max() > 2.0  # walks right, across x = 1
    assert aware.states[:, 0].max() <= BOUNDARY, aware.states[:, 0]  # stays inside
    assert float(aware.info["predicted_survival"]) > 0.5 and "predicted_survival" not in reward_only.info


def test_planning_with_the_learned_head_stays_inside(boundary_model: MLPWorldModel) -> None:
    planner = make_planner(
        "cem",
        boundary_model,
        8,
        reward_fn=next_state_reward,
        terminal_value=alive_value,
        termination_fn=boundary_model.termination_probability,
        seed=0,
    )
    result = planner.plan(torch.tensor([0.3]))
    assert result.states[:, 0].max() <= 1.05, result.states[:, 0]  # the learned boundary, a little blurred
    assert result.states[-1, 0] > 0.5  # and it still moves right, where the reward is


# --------------------------------------------------------------------------- (c) no termination_fn: unchanged


def test_without_termination_fn_the_return_is_the_plain_discounted_sum() -> None:
    model = LinearSystem.point(step_size=0.25, dims=1)
    planner = make_planner("cem", model, 4, reward_fn=next_state_reward, terminal_value=alive_value, discount=0.9)
    states = torch.tensor([[[0.0], [0.2], [0.4], [0.6]]])
    next_states = states + 0.2
    actions = torch.zeros(1, 4, 1)
    rewards = next_states[..., 0]
    expected = (rewards * 0.9 ** torch.arange(4.0)).sum(-1) + 0.9**4 * 10.0
    assert torch.allclose(planner.predicted_return(states, actions, next_states, next_states[:, -1]), expected)
    assert planner.survival(states, actions, next_states) is None
    # with a constant probability p of ending per step: alive_t = (1 − p)^t
    ending = make_planner(
        "cem",
        model,
        4,
        reward_fn=next_state_reward,
        terminal_value=alive_value,
        discount=0.9,
        termination_fn=lambda s, a, n: n[..., 0] * 0.0 + 0.1,
    )
    alive = 0.9 ** torch.arange(5.0)
    expected = (rewards * 0.9 ** torch.arange(4.0) * alive[:4]).sum(-1) + 0.9**4 * alive[4] * 10.0
    assert torch.allclose(ending.survival(states, actions, next_states), alive[None])
    assert torch.allclose(ending.predicted_return(states, actions, next_states, next_states[:, -1]), expected)


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_a_termination_fn_that_never_ends_gives_the_same_plan(name: str) -> None:
    model = LinearSystem.point(step_size=0.25, dims=2)
    options = {"reward_fn": lambda s, a, n: -(n - 0.7).square().sum(-1), "discount": 0.95, "seed": 3, "iterations": 5}
    plain = make_planner(name, model, 6, **options).plan(torch.tensor([0.1, -0.2]))
    never = make_planner(name, model, 6, termination_fn=lambda s, a, n: n[..., 0] * 0.0, **options).plan(
        torch.tensor([0.1, -0.2])
    )
    assert torch.equal(plain.actions, never.actions) and torch.equal(plain.cost, never.cost)
    assert torch.equal(plain.info["predicted_return"], never.info["predicted_return"])


# --------------------------------------------------------------------------- (d) checkpoints


def test_a_checkpoint_round_trips_the_head_and_old_checkpoints_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MLPWorldModel(2, 1, hidden_sizes=(8,), reward_hidden_sizes=(4,), termination_hidden_sizes=(6, 6))
    assert model.config["termination_hidden_sizes"] == [6, 6] and "termination_head=[6, 6]" in repr(model)
    loaded = load_world_model(save_world_model(model, tmp_path / "model.pt"))
    assert isinstance(loaded, MLPWorldModel) and loaded.has_termination_head
    s, a = torch.randn(5, 2), torch.randn(5, 1)
    assert torch.equal(model.termination_probability(s, a, s), loaded.termination_probability(s, a, s))
    # a checkpoint written before the head existed: no termination_hidden_sizes in its config, no head weights
    old = MLPWorldModel(2, 1, hidden_sizes=(8,), reward_hidden_sizes=(4,))
    assert "termination_net" not in "".join(old.state_dict())
    path = save_world_model(old, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["termination_hidden_sizes"]
    payload["sha256"] = checkpoint_module._digest(
        payload["model_class"], payload["config"], payload["metadata"], payload["state_dict"]
    )
    torch.save(payload, path)
    restored = load_world_model(path)
    assert isinstance(restored, MLPWorldModel) and not restored.has_termination_head and restored.has_reward_head
    assert torch.equal(restored(s, a), old(s, a))


def test_a_warm_start_keeps_the_termination_head(boundary_model: MLPWorldModel) -> None:
    data = boundary_dataset(rows=300, seed=1)
    warm = train_world_model(data, init_model=boundary_model, epochs=1, progress=False)  # termination: the model's
    assert warm.has_termination_head and warm.training_history["config"]["termination"] is True
    with pytest.raises(ValueError, match="termination=False but init_model has termination head"):
        train_world_model(data, init_model=boundary_model, termination=False, epochs=1, progress=False)


# --------------------------------------------------------------------------- (e) bad input


def test_bad_termination_inputs_get_clear_errors(boundary_model: MLPWorldModel) -> None:
    model = LinearSystem.point(step_size=0.25, dims=1)

    def build(termination_fn, **options):
        options.setdefault("reward_fn", next_state_reward)
        return make_planner("cem", model, 4, termination_fn=termination_fn, iterations=2, **options)

    with pytest.raises(TypeError, match="termination_fn must be callable"):
        build(0.1)
    with pytest.raises(ValueError, match="give reward_fn and/or terminal_value"):
        build(boundary_termination, reward_fn=None, running_cost=lambda n, a: n.square().sum(-1))
    with pytest.raises(ValueError, match=r"termination_fn must return one value per step.*squeeze"):
        build(lambda s, a, n: torch.sigmoid(n))  # [..., 1]
    with pytest.raises(ValueError, match="termination_fn returned NaN or inf on zero inputs"):
        build(lambda s, a, n: n[..., 0] * float("nan"))
    with pytest.raises(ValueError, match=r"termination_fn returned values outside \[0, 1\]"):
        build(lambda s, a, n: n[..., 0] - 0.5)  # a logit, not a probability
    nan_beyond = build(lambda s, a, n: torch.where(n[..., 0] > 0.6, float("nan"), 0.0))
    with pytest.raises(ValueError, match="termination_fn returned NaN or inf for finite states"):
        nan_beyond.plan(torch.tensor([0.5]))
    above_one_beyond = build(lambda s, a, n: torch.where(n[..., 0] > 0.6, 1.5, 0.0))
    with pytest.raises(ValueError, match=r"termination_fn returned values outside \[0, 1\]"):
        above_one_beyond.plan(torch.tensor([0.5]))
    # the model's own method
    with pytest.raises(ValueError, match="no termination head"):
        MLPWorldModel(1, 1, hidden_sizes=(4,)).termination_probability(torch.zeros(1), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="next_state must have the shape of state"):
        boundary_model.termination_probability(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="termination must be True, False or None"):
        TrainingConfig(termination="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="termination_hidden_sizes must be non-empty positive integers"):
        TrainingConfig(termination_hidden_sizes=(0,))
    with pytest.raises(ValueError, match="termination_hidden_sizes must be non-empty positive integers"):
        MLPWorldModel(1, 1, termination_hidden_sizes=())


# --------------------------------------------------------------------------- the model-based RL loop


def test_the_loop_learns_termination_when_the_data_ends_and_plans_with_it() -> None:
    ending, endless = boundary_dataset(rows=300), boundary_dataset(rows=300)
    endless.terminated[:] = False
    config = MBRLConfig(hidden_sizes=(16,), epochs=2, retrain_epochs=1, horizon=3, planner_options={"iterations": 1})
    assert learns_termination(config, ending) and not learns_termination(config, endless)
    assert not learns_termination(dataclasses.replace(config, learn_termination=False), ending)
    assert learns_termination(dataclasses.replace(config, learn_termination=True), endless)
    model, _ = fit_models(ending, config, 0)
    assert model.has_termination_head and learns_termination(config, endless, model)  # decided once, in round 0
    agent = make_agent(model, config, gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
    assert agent.planner.termination_fn == model.termination_probability
    plain, _ = fit_models(endless, config, 0)
    assert not plain.has_termination_head
    assert make_agent(plain, config, gym.spaces.Box(-1.0, 1.0, (1,), np.float32)).planner.termination_fn is None
    with pytest.raises(ValueError, match="learn_termination must be True, False or None"):
        MBRLConfig(learn_termination="auto")  # type: ignore[arg-type]


def test_the_cli_flag_sets_learn_termination() -> None:
    from mpc_grasp.cli.commands import build_parser
    from mpc_grasp.cli.mbrl import config_from_args

    def config(*flags: str) -> MBRLConfig:
        return config_from_args(build_parser().parse_args(["mbrl", "Pendulum-v1", *flags, "--out-dir", "x"]))

    assert config().learn_termination is None
    assert config("--learn-termination").learn_termination is True
    assert config("--no-learn-termination").learn_termination is False
