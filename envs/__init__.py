"""Gymnasium environments of ``mpc_grasp`` (grid world with walls, continuous cart-pole).

Importing this package registers the ids in ``ENV_IDS`` under the ``mpc_grasp`` namespace
(idempotently: ids already in ``gymnasium.registry`` are left alone), and the pixel variants in
``PIXEL_ENV_IDS`` (``envs/pixels.py``). Depends only on numpy and gymnasium. The differentiable reward
formulas (``cartpole_swingup_reward``; Gymnasium's Pendulum ones in ``envs/rewards.py``) take torch tensors
but use only their methods, so torch is not imported here.
"""

from __future__ import annotations

import gymnasium

from .cartpole import (
    GOAL_OBS,
    ContinuousCartPoleEnv,
    cartpole_physics_step,
    cartpole_swingup_reward,
    obs_to_state,
    state_to_obs,
)
from .grid_world import (
    ACROSS_REGIONS,
    LAYOUTS,
    GridWorldEnv,
    free_space_bounds,
    get_layout,
    map_size,
    sample_task,
    segment_hits_wall,
    wall_boxes,
)
from .pixels import PIXEL_ENV_IDS, PixelCartPoleEnv, PixelGridWorldEnv, register_pixel_envs
from .rewards import alive_bonus_reward, inverted_double_pendulum_reward, pendulum_reward, reacher_reward

_GRID = "mpc_grasp.envs.grid_world:GridWorldEnv"
_CARTPOLE = "mpc_grasp.envs.cartpole:ContinuousCartPoleEnv"

# id -> (entry point, max_episode_steps, default kwargs)
_SPECS: dict[str, tuple[str, int, dict[str, object]]] = {
    "mpc_grasp/GridWorld-v0": (_GRID, 100, {"layout": "wall"}),
    "mpc_grasp/GridWorldOpen-v0": (_GRID, 100, {"layout": "open"}),
    "mpc_grasp/GridWorldWall-v0": (_GRID, 100, {"layout": "wall"}),
    "mpc_grasp/GridWorldUMaze-v0": (_GRID, 100, {"layout": "umaze"}),
    "mpc_grasp/GridWorldMaze-v0": (_GRID, 100, {"layout": "maze"}),
    "mpc_grasp/CartPoleBalance-v0": (_CARTPOLE, 200, {"task": "balance"}),
    "mpc_grasp/CartPoleSwingup-v0": (_CARTPOLE, 250, {"task": "swingup"}),
}
ENV_IDS: tuple[str, ...] = tuple(_SPECS)


def register_envs() -> tuple[str, ...]:
    """Register every id in ``ENV_IDS`` that is not registered yet; safe to call repeatedly."""
    for env_id, (entry_point, max_steps, kwargs) in _SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps, kwargs=dict(kwargs))
    return ENV_IDS


register_envs()
register_pixel_envs()  # pixel variants: separate PIXEL_ENV_IDS (see envs/pixels.py)
from .point_maze import register_point_maze_envs  # noqa: E402  paper tasks: ids only, the extras load at gym.make
from .pusht import register_pusht_envs  # noqa: E402

register_point_maze_envs(), register_pusht_envs()

__all__ = [
    "ACROSS_REGIONS",
    "ENV_IDS",
    "GOAL_OBS",
    "LAYOUTS",
    "PIXEL_ENV_IDS",
    "ContinuousCartPoleEnv",
    "GridWorldEnv",
    "PixelCartPoleEnv",
    "PixelGridWorldEnv",
    "alive_bonus_reward",
    "cartpole_physics_step",
    "cartpole_swingup_reward",
    "free_space_bounds",
    "get_layout",
    "inverted_double_pendulum_reward",
    "map_size",
    "obs_to_state",
    "pendulum_reward",
    "reacher_reward",
    "register_envs",
    "register_pixel_envs",
    "sample_task",
    "segment_hits_wall",
    "state_to_obs",
    "wall_boxes",
]
