"""Pixel-observation variants of the grid world and the cart-pole (DESIGN.md §5).

Both envs are small subclasses of the low-dimensional envs (same physics, rewards, termination,
reset options and ``render()``); only the observation changes to goal-conditioned images:

* ``{"observation": uint8 [S, S, C], "desired_goal": uint8 [S, S, C]}`` where the observation is
  the scene rendered **without** a goal marker and the goal image is the same scene with the
  agent (or the pole) at the goal. A pixel world model therefore sees goal images from the same
  distribution as its observations, and the planning cost is a distance between encodings.
* ``info["state"]`` (and ``info["position"]`` for the grid world) keeps the true low-dimensional
  state and ``info["goal_state"]`` the true goal. They are for evaluation only: a pixel world
  model must never be trained on them. There is deliberately no ``info["goal"]`` (the low-dim
  envs have one): the goal of a pixel env is the image ``obs["desired_goal"]``.

The cart-pole stacks the last ``frame_stack`` frames along the channel axis (``C = 3 * k``,
oldest first) so that velocities are observable from a single observation. Depends only on
numpy and gymnasium (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from .cartpole import ContinuousCartPoleEnv
from .grid_world import GridWorldEnv

__all__ = [
    "PIXEL_ENV_IDS",
    "PixelCartPoleEnv",
    "PixelGridWorldEnv",
    "register_pixel_envs",
]


def _image_space(size: int, channels: int) -> spaces.Box:
    """``Box(0, 255, (size, size, channels), uint8)``."""
    return spaces.Box(low=0, high=255, shape=(size, size, channels), dtype=np.uint8)


class PixelGridWorldEnv(GridWorldEnv):
    """:class:`GridWorldEnv` observed through ``render_size``² RGB images (default 64×64).

    Observation ``{"observation": image of the agent, "desired_goal": image of the agent at the
    goal}`` (uint8 HWC, no goal marker in either). ``info`` keeps ``position``, ``state`` (=
    position, float64) and ``goal_state`` for evaluation. Accepts every :class:`GridWorldEnv` argument
    (``layout``, ``task``, ``render_size``, ...); ``render()`` still draws the goal marker.
    """

    def __init__(self, layout: str | Sequence[str] = "wall", render_size: int = 64, **kwargs: Any) -> None:
        super().__init__(layout=layout, render_size=render_size, **kwargs)
        image = _image_space(self.render_size, 3)
        self.observation_space = spaces.Dict({"observation": image, "desired_goal": _image_space(self.render_size, 3)})
        self._goal_image: np.ndarray | None = None

    def goal_image(self, goal: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
        """The image of the agent standing at ``goal`` (default: the current goal), no marker."""
        target = self.goal if goal is None else np.asarray(goal, dtype=np.float64)
        return self.render_position(target, None)

    def _pixel_obs(self) -> dict[str, np.ndarray]:
        if self._goal_image is None:
            self._goal_image = self.goal_image()
        # fresh arrays every call: callers may keep or mutate past observations
        return {"observation": self.render_position(self.position, None), "desired_goal": self._goal_image.copy()}

    @staticmethod
    def _with_state(info: dict[str, Any]) -> dict[str, Any]:
        info["state"] = np.asarray(info["position"], dtype=np.float64).copy()
        # the true goal stays available as "goal_state"; "goal" is removed so that agents reading
        # info["goal"] cannot mix a low-dim goal into latent planning (the goal is the image)
        info["goal_state"] = np.asarray(info.pop("goal"), dtype=np.float64)
        return info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Same options as :meth:`GridWorldEnv.reset` (``start``, ``goal``, ``task``)."""
        _, info = super().reset(seed=seed, options=options)
        self._goal_image = None
        return self._pixel_obs(), self._with_state(info)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        _, reward, terminated, truncated, info = super().step(action)
        return self._pixel_obs(), reward, terminated, truncated, self._with_state(info)


class PixelCartPoleEnv(ContinuousCartPoleEnv):
    """:class:`ContinuousCartPoleEnv` observed through stacked RGB frames.

    ``observation``: the last ``frame_stack`` renders concatenated on the channel axis, oldest
    first (uint8 ``[S, S, 3k]``); after a reset every slot holds the first frame.
    ``desired_goal``: the upright pole at the track centre, at rest (the same frame ``k`` times).
    ``info["state"]`` is the raw ``(x, x_dot, theta, theta_dot)``, ``info["goal_state"]`` the 5-dim
    goal observation ``[0, 0, 1, 0, 0]``.
    """

    def __init__(self, task: str = "swingup", frame_stack: int = 2, render_size: int = 64, **kwargs: Any) -> None:
        super().__init__(task=task, render_size=render_size, **kwargs)
        if int(frame_stack) != frame_stack or frame_stack < 1:
            raise ValueError(f"frame_stack must be a positive integer, got {frame_stack}")
        self.frame_stack = int(frame_stack)
        channels = 3 * self.frame_stack
        self.observation_space = spaces.Dict(
            {
                "observation": _image_space(self.render_size, channels),
                "desired_goal": _image_space(self.render_size, channels),
            }
        )
        self._frames: list[np.ndarray] = []
        self._goal_stack = self.stacked_image([np.zeros(4)] * self.frame_stack)

    def stacked_image(self, states: Sequence[Sequence[float] | np.ndarray]) -> np.ndarray:
        """Stack renders of ``frame_stack`` states (oldest first) into one observation image."""
        if len(states) != self.frame_stack:
            raise ValueError(f"need exactly frame_stack={self.frame_stack} states, got {len(states)}")
        return np.concatenate([self.render_state(s) for s in states], axis=-1)

    def goal_image(self) -> np.ndarray:
        """The upright, centred, resting pole (every stacked slot identical)."""
        return self._goal_stack.copy()

    def _pixel_obs(self) -> dict[str, np.ndarray]:
        return {"observation": np.concatenate(self._frames, axis=-1), "desired_goal": self._goal_stack.copy()}

    # reset/step return image dicts where the base class returns state vectors: a deliberate override
    def reset(  # type: ignore[override]
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Same options as :meth:`ContinuousCartPoleEnv.reset` (``state``)."""
        _, info = super().reset(seed=seed, options=options)
        frame = self.render_state(self.state)
        self._frames = [frame.copy() for _ in range(self.frame_stack)]
        return self._pixel_obs(), self._with_goal_state(info)

    @staticmethod
    def _with_goal_state(info: dict[str, Any]) -> dict[str, Any]:
        # the goal is the image obs["desired_goal"]; the 5-dim goal observation moves to "goal_state"
        info["goal_state"] = np.asarray(info.pop("goal"), dtype=np.float64)
        return info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        if not self._frames:
            raise RuntimeError("call reset() before step()")
        _, reward, terminated, truncated, info = super().step(action)
        self._frames = self._frames[1:] + [self.render_state(self.state)]
        return self._pixel_obs(), reward, terminated, truncated, self._with_goal_state(info)


_GRID = "mpc_grasp.envs.pixels:PixelGridWorldEnv"
_CARTPOLE = "mpc_grasp.envs.pixels:PixelCartPoleEnv"

# id -> (entry point, max_episode_steps, default kwargs); same limits as the state-based ids
_PIXEL_SPECS: dict[str, tuple[str, int, dict[str, object]]] = {
    "mpc_grasp/PixelGridWorld-v0": (_GRID, 100, {"layout": "wall"}),
    "mpc_grasp/PixelGridWorldWall-v0": (_GRID, 100, {"layout": "wall"}),
    "mpc_grasp/PixelCartPoleSwingup-v0": (_CARTPOLE, 250, {"task": "swingup", "frame_stack": 2}),
}
PIXEL_ENV_IDS: tuple[str, ...] = tuple(_PIXEL_SPECS)


def register_pixel_envs() -> tuple[str, ...]:
    """Register every id in ``PIXEL_ENV_IDS`` not registered yet; safe to call repeatedly."""
    for env_id, (entry_point, max_steps, kwargs) in _PIXEL_SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps, kwargs=dict(kwargs))
    return PIXEL_ENV_IDS
