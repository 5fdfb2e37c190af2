"""World models: the ``WorldModel`` contract, the MLP dynamics model, training, checkpoints, metrics."""

from __future__ import annotations

from mpc_grasp.models.base import WorldModel, check_world_model, encode_observation, history_length, model_device
from mpc_grasp.models.checkpoint import (
    CheckpointError,
    load_world_model,
    register_model_class,
    save_world_model,
)
from mpc_grasp.models.metrics import multi_step_error, one_step_error, open_loop_rollouts
from mpc_grasp.models.mlp import MLPWorldModel, ValueFunction
from mpc_grasp.models.pixel import (
    PixelDataset,
    PixelTrainingConfig,
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
from mpc_grasp.models.training import TrainingConfig, train_value_function, train_world_model

__all__ = [
    "CheckpointError",
    "MLPWorldModel",
    "PixelDataset",
    "PixelTrainingConfig",
    "PixelWorldModel",
    "collect_pixel_dataset",
    "decode_latent_strip",
    "evaluate_pixel_world_model",
    "latent_distance_correlation",
    "load_or_train_pixel_world_model",
    "load_pixel_world_model",
    "save_pixel_world_model",
    "train_pixel_world_model",
    "TrainingConfig",
    "train_value_function",
    "ValueFunction",
    "WorldModel",
    "check_world_model",
    "encode_observation",
    "history_length",
    "load_world_model",
    "model_device",
    "multi_step_error",
    "one_step_error",
    "open_loop_rollouts",
    "register_model_class",
    "save_world_model",
    "train_world_model",
]
