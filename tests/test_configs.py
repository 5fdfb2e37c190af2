"""Frozen, validated configs of training, collection, pixel training and the MBRL loop; keyword options
build them, so the functions' keyword signatures keep working."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import mpc_grasp
from mpc_grasp.data import CollectionConfig, collect_transitions
from mpc_grasp.models import PixelTrainingConfig, TrainingConfig, train_world_model
from mpc_grasp.models.training import torch_threads
from mpc_grasp.rl.mbrl import MBRLConfig


def test_configs_are_frozen_and_exported() -> None:
    assert {"TrainingConfig", "CollectionConfig"} <= set(mpc_grasp.__all__)
    for config in (TrainingConfig(), CollectionConfig(), PixelTrainingConfig(), MBRLConfig()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, dataclasses.fields(config)[0].name, None)


@pytest.mark.parametrize(
    ("config_class", "options", "message"),
    [
        (TrainingConfig, {"epochs": 0}, "epochs must be a positive integer"),
        (TrainingConfig, {"hidden_sizes": (8, 0)}, "hidden_sizes must be"),
        (TrainingConfig, {"loss": "huber"}, "unknown loss"),
        (TrainingConfig, {"activation": "sine"}, "unknown activation"),
        (TrainingConfig, {"lr": 0.0}, "lr must be > 0"),
        (TrainingConfig, {"val_fraction": 1.0}, "val_fraction must be in"),
        (TrainingConfig, {"patience": 0}, "patience must be"),
        (TrainingConfig, {"max_time_s": -1.0}, "max_time_s must be"),
        (TrainingConfig, {"reward_hidden_sizes": ()}, "reward_hidden_sizes must be"),
        (CollectionConfig, {"num_envs": 0}, "num_envs must be"),
        (CollectionConfig, {"exploration": "levy"}, "unknown exploration"),
        (CollectionConfig, {"correlation": 1.0}, "correlation must be in"),
        (CollectionConfig, {"noise_scale": 0.0}, "noise_scale must be > 0"),
        (CollectionConfig, {"info_keys": ("a", "a")}, "info_keys must be distinct"),
        (PixelTrainingConfig, {"rollout_steps": 0}, "rollout_steps must be"),
        (PixelTrainingConfig, {"foreground_weight": -1.0}, "foreground_weight must be >= 0"),
        (MBRLConfig, {"hidden_sizes": ()}, "hidden_sizes must be"),
        (MBRLConfig, {"lr": 0.0}, "lr must be > 0"),
    ],
)
def test_a_bad_value_is_named_in_one_error(config_class: type, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_class(**options)


def test_sequences_are_stored_as_tuples() -> None:
    assert TrainingConfig(hidden_sizes=[8, 8]).hidden_sizes == (8, 8)
    assert CollectionConfig(info_keys=["state"]).info_keys == ("state",)
    assert MBRLConfig(hidden_sizes=[16]).hidden_sizes == (16,)


def test_options_override_the_config_and_unknown_ones_are_refused() -> None:
    data = collect_transitions("Pendulum-v1", 300, seed=0, progress=False)
    config = TrainingConfig(hidden_sizes=(8,), epochs=2, seed=1)
    by_config = train_world_model(data, config, progress=False)
    by_options = train_world_model(data, hidden_sizes=(8,), epochs=2, seed=1, progress=False)
    overridden = train_world_model(data, config, epochs=1, progress=False)
    for (name, a), (_, b) in zip(by_config.state_dict().items(), by_options.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert len(overridden.training_history["epoch"]) == 1 and config.epochs == 2
    with pytest.raises(TypeError, match="unknown option.*'epoch'.*valid"):
        train_world_model(data, epoch=3, progress=False)
    with pytest.raises(TypeError, match="config must be a TrainingConfig"):
        train_world_model(data, CollectionConfig(), progress=False)


def test_collection_config_and_options_collect_the_same_data() -> None:
    config = CollectionConfig(num_envs=2, exploration="random")
    a = collect_transitions("Pendulum-v1", 120, seed=3, config=config, progress=False)
    b = collect_transitions("Pendulum-v1", 120, seed=3, num_envs=2, exploration="random", progress=False)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert a.metadata["num_envs"] == 2 and a.metadata["exploration"] == "random"


def test_torch_threads_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads"), torch_threads(0):
        pass


def test_reward_formulas_live_beside_their_envs_and_stay_importable_from_mbrl() -> None:
    from mpc_grasp.envs import alive_bonus_reward, cartpole_swingup_reward, pendulum_reward

    from mpc_grasp.rl import mbrl

    assert mbrl.cartpole_swingup_reward is cartpole_swingup_reward
    assert mbrl.pendulum_reward is pendulum_reward
    assert mbrl.alive_bonus_reward is alive_bonus_reward
    assert mbrl.KNOWN_REWARDS["Pendulum-v1"] is pendulum_reward
