"""Transition data: the dataset type and its ``.npz`` files (``dataset``), and collection from envs (``collection``)."""

from mpc_grasp.data.collection import (
    EXPLORATIONS,
    CollectionConfig,
    collect_transitions,
    collect_transitions_parallel,
    make_env,
    shard_seeds,
    space_description,
)
from mpc_grasp.data.dataset import (
    DATASET_FORMAT,
    DATASET_VERSION,
    DatasetError,
    Trajectory,
    TransitionDataset,
    concatenate_datasets,
    load_dataset,
)

__all__ = [
    "DATASET_FORMAT",
    "DATASET_VERSION",
    "EXPLORATIONS",
    "CollectionConfig",
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
