"""Test-wide settings (one torch thread: small ops are faster and timings steadier on 2 cores) and the
shared learned grid-world model (trained once per session)."""

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering (pixel Point-Maze)

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def wall_dataset():
    """20k transitions of correlated random exploration in grid world `wall`, split (train, held out)."""
    from mpc_grasp.data import collect_transitions

    data = collect_transitions(
        "mpc_grasp/GridWorld-v0", 20000, seed=0, num_envs=8, progress=False, env_kwargs={"layout": "wall"}
    )
    return data.split(0.1, seed=1)


@pytest.fixture(scope="session")
def wall_model_and_held_out(wall_dataset):
    """A LEARNED model of grid world `wall` at a small budget: 60 epochs of a 3x256 MLP on
    ``wall_dataset`` (~10-20 s of CPU), plus the held-out split."""
    from mpc_grasp.models import train_world_model

    train, test = wall_dataset
    model = train_world_model(
        train, hidden_sizes=(256, 256, 256), epochs=60, batch_size=512, lr=3e-3, seed=0, progress=False, num_threads=1
    )
    return model, test
