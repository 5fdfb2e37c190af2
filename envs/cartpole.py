"""Cart-pole with a continuous force, Gymnasium CartPole physics, balance and swing-up tasks.

The physics (constants, equations, explicit Euler with ``tau = 0.02``) is exactly Gymnasium's
``CartPole-v1``; only the action differs: ``a in [-1, 1]`` gives a force ``a * force_mag``.
Angles follow Gymnasium: ``theta = 0`` is upright, positive ``theta`` leans toward +x.
Observations are ``[x, x_dot, cos(theta), sin(theta), theta_dot]`` (float32) so a learned
model never sees an angle wrap; the goal state is ``[0, 0, 1, 0, 0]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "ContinuousCartPoleEnv",
    "cartpole_physics_step",
    "cartpole_swingup_reward",
    "state_to_obs",
    "obs_to_state",
    "GOAL_OBS",
]

GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSCART + MASSPOLE
LENGTH = 0.5  # half the pole's length, as in Gymnasium
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360

GOAL_OBS = np.array([0.0, 0.0, 1.0, 0.0, 0.0], dtype=np.float32)

BG_COLOR = np.array([255, 255, 255], dtype=np.uint8)
TRACK_COLOR = np.array([150, 150, 150], dtype=np.uint8)
CART_COLOR = np.array([50, 50, 200], dtype=np.uint8)
POLE_COLOR = np.array([220, 120, 40], dtype=np.uint8)


def euler_step(
    x: Any, x_dot: Any, theta: Any, theta_dot: Any, force: Any, cos: Any, sin: Any
) -> tuple[Any, Any, Any, Any]:
    """One explicit-Euler step (``tau``) of Gymnasium's cart-pole on arrays of any library (numpy,
    torch), given its ``cos``/``sin``; the expression order matches Gymnasium (bit-equal in float64)."""
    costheta = cos(theta)
    sintheta = sin(theta)
    temp = (force + POLEMASS_LENGTH * theta_dot**2 * sintheta) / TOTAL_MASS
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * costheta**2 / TOTAL_MASS))
    xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
    return x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc


def cartpole_physics_step(state: np.ndarray, force: np.ndarray | float) -> np.ndarray:
    """One step of :func:`euler_step` on ``state = (x, x_dot, theta, theta_dot)`` ``[..., 4]``
    (float64); ``force`` in newtons. Agrees with Gymnasium bit for bit."""
    x, x_dot, theta, theta_dot = np.moveaxis(np.asarray(state, dtype=np.float64), -1, 0)
    return np.stack(euler_step(x, x_dot, theta, theta_dot, force, np.cos, np.sin), axis=-1)


def state_to_obs(state: np.ndarray) -> np.ndarray:
    """``(x, x_dot, theta, theta_dot)`` -> ``[x, x_dot, cos, sin, theta_dot]`` (float32, batched)."""
    s = np.asarray(state, dtype=np.float64)
    return np.stack([s[..., 0], s[..., 1], np.cos(s[..., 2]), np.sin(s[..., 2]), s[..., 3]], axis=-1).astype(np.float32)


def obs_to_state(obs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`state_to_obs` with ``theta`` wrapped to ``(-pi, pi]`` (float64, batched)."""
    o = np.asarray(obs, dtype=np.float64)
    return np.stack([o[..., 0], o[..., 1], np.arctan2(o[..., 3], o[..., 2]), o[..., 4]], axis=-1)


def cartpole_swingup_reward(state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
    """``mpc_grasp/CartPoleSwingup-v0``'s reward (DeepMind Control's swing-up) on the observation
    ``[x, ẋ, cos θ, sin θ, θ̇]`` of the state reached, differentiable (torch tensors ``[..., 5]``, actions
    ``[..., 1]``): ``upright · centred · small_control · small_velocity`` with Gaussian tolerances (0.1 at
    ``|x| = 2``, ``|θ̇| = 5``), as ``ContinuousCartPoleEnv`` pays it; a planner's ``reward_fn``."""
    del state
    upright = (next_state[..., 2] + 1.0) / 2.0
    centred = (1.0 + 0.1 ** (next_state[..., 0] / 2.0).square()) / 2.0
    force = action[..., 0].clamp(-1.0, 1.0)
    small_control = (4.0 + (1.0 - force.square())) / 5.0
    small_velocity = (1.0 + 0.1 ** (next_state[..., 4] / 5.0).square()) / 2.0
    return upright * centred * small_control * small_velocity


def _wrap(theta: float) -> float:
    """Angle wrapped to ``(-pi, pi]``."""
    return float(math.atan2(math.sin(theta), math.cos(theta)))


def _gaussian_tolerance(x: float, margin: float) -> float:
    """DeepMind Control ``tolerance(x, bounds=(0, 0), margin, sigmoid='gaussian')`` (0.1 at margin)."""
    return float(0.1 ** ((x / margin) ** 2))


class ContinuousCartPoleEnv(gym.Env):
    """Cart-pole with action ``Box(-1, 1, (1,))`` scaled by ``force_mag`` (10 N).

    ``task="balance"``: Gymnasium's task. Start uniform in ±0.05 around upright; terminate when
    ``|x| > 2.4`` or ``|theta| > 12°``; reward +1 per step (including the failing one);
    ``is_success`` = not fallen.

    ``task="swingup"``: start hanging down (``theta = pi`` plus uniform ±0.05 noise on every
    state variable); no angle termination; the episode terminates if ``|x| > 2.4`` (the cart
    leaves the track, no clamping so the dynamics stay smooth). Reward in [0, 1] as in DeepMind
    Control's cartpole swing-up: ``upright * centred * small_control * small_velocity`` with
    ``upright = (cos theta + 1) / 2``, ``centred = (1 + tol(x, 2)) / 2``, ``small_control =
    (4 + 1 - a^2) / 5``, ``small_velocity = (1 + tol(theta_dot, 5)) / 2``, evaluated at the
    state reached. ``is_success`` when ``|wrap(theta)| < 0.2``, ``|theta_dot| < 1`` and ``|x| < 1``.

    ``frame_skip`` physics steps (same action) per env step: default 1 for balance, 2 for
    swing-up (so a 50-step plan covers 2 s).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    TASKS = ("balance", "swingup")

    def __init__(
        self,
        task: str = "balance",
        frame_skip: int | None = None,
        render_mode: str | None = None,
        render_size: int = 64,
    ) -> None:
        if task not in self.TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {list(self.TASKS)}")
        frame_skip = (1 if task == "balance" else 2) if frame_skip is None else frame_skip
        if int(frame_skip) != frame_skip or frame_skip < 1:
            raise ValueError(f"frame_skip must be a positive integer, got {frame_skip}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: {self.metadata['render_modes']}")
        if int(render_size) < 16:
            raise ValueError(f"render_size must be >= 16 pixels, got {render_size}")
        self.task = task
        self.frame_skip = int(frame_skip)
        self.dt = TAU * self.frame_skip
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.metadata = {**type(self).metadata, "render_fps": int(round(1.0 / self.dt))}

        self.gravity, self.masscart, self.masspole, self.length = GRAVITY, MASSCART, MASSPOLE, LENGTH
        self.force_mag, self.tau = FORCE_MAG, TAU
        self.x_threshold, self.theta_threshold_radians = X_THRESHOLD, THETA_THRESHOLD

        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        high = np.array([2 * X_THRESHOLD, np.inf, 1.0, 1.0, np.inf], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.state = np.zeros(4)  # (x, x_dot, theta, theta_dot), float64
        self._grid_cache: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}

    # ---------------------------------------------------------------------- helpers
    def _failed(self) -> bool:
        x, _, theta, _ = (float(v) for v in self.state)
        if abs(x) > X_THRESHOLD:
            return True
        return self.task == "balance" and abs(theta) > THETA_THRESHOLD

    def _success(self) -> bool:
        x, _, theta, theta_dot = (float(v) for v in self.state)
        if self.task == "balance":
            return not self._failed()
        return abs(_wrap(theta)) < 0.2 and abs(theta_dot) < 1.0 and abs(x) < 1.0

    def _swingup_reward(self, a: float) -> float:
        x, _, theta, theta_dot = self.state
        upright = (math.cos(theta) + 1.0) / 2.0
        centred = (1.0 + _gaussian_tolerance(x, 2.0)) / 2.0
        small_control = (4.0 + (1.0 - a * a)) / 5.0
        small_velocity = (1.0 + _gaussian_tolerance(theta_dot, 5.0)) / 2.0
        return float(upright * centred * small_control * small_velocity)

    def _info(self) -> dict[str, Any]:
        return {
            "is_success": self._success(),
            "goal": GOAL_OBS.copy(),
            "theta": _wrap(self.state[2]),
            "state": self.state.copy(),
        }

    # ---------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Sample the start state; ``options={"state": (x, x_dot, theta, theta_dot)}`` sets it."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"state"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: ['state']")
        if options.get("state") is not None:
            s = np.asarray(options["state"], dtype=np.float64)
            if s.shape != (4,) or not np.all(np.isfinite(s)):
                raise ValueError(
                    f"options['state'] must be 4 finite numbers (x, x_dot, theta, theta_dot), got {options['state']!r}"
                )
            self.state = s.copy()
        else:
            self.state = self.np_random.uniform(-0.05, 0.05, size=(4,))
            if self.task == "swingup":
                self.state[2] += math.pi
        return state_to_obs(self.state), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (1,) or not np.isfinite(a[0]):
            raise ValueError(f"action must be a single finite number, got {action!r}")
        u = float(np.clip(a[0], -1.0, 1.0))
        terminated = False
        for _ in range(self.frame_skip):
            self.state = cartpole_physics_step(self.state, u * FORCE_MAG)
            terminated = self._failed()
            if terminated:
                break
        reward = 1.0 if self.task == "balance" else self._swingup_reward(u)
        return state_to_obs(self.state), reward, terminated, False, self._info()

    # ---------------------------------------------------------------------- rendering
    def render(self) -> np.ndarray | None:
        """``rgb_array``: ``[S, S, 3]`` uint8 image of track, cart (blue) and pole (orange)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return self.render_state(self.state)

    def _pixel_grid(self, size: int) -> tuple[np.ndarray, np.ndarray, float]:
        """World coordinates of pixel centres (view x in [-2.8, 2.8], cart axle at y = 0)."""
        if size not in self._grid_cache:
            half = X_THRESHOLD + 0.4
            scale = size / (2 * half)  # pixels per world unit
            xs = (np.arange(size) + 0.5) / scale - half
            ys = half - (np.arange(size) + 0.5) / scale
            self._grid_cache[size] = (
                np.broadcast_to(xs[None, :], (size, size)),
                np.broadcast_to(ys[:, None], (size, size)),
                scale,
            )
        return self._grid_cache[size]

    def render_state(self, state: Sequence[float] | np.ndarray, size: int | None = None) -> np.ndarray:
        """Draw an arbitrary state: a 5-dim observation ``[x, x_dot, cos, sin, theta_dot]`` or a
        4-dim raw state ``(x, x_dot, theta, theta_dot)``. Returns ``[S, S, 3]`` uint8."""
        s = np.asarray(state, dtype=np.float64).reshape(-1)
        if s.shape == (5,):
            x, c, sn = s[0], s[2], s[3]
            norm = math.hypot(c, sn) or 1.0
            c, sn = c / norm, sn / norm
        elif s.shape == (4,):
            x, c, sn = s[0], math.cos(s[2]), math.sin(s[2])
        else:
            raise ValueError(f"state must have 4 (raw) or 5 (observation) entries, got shape {np.shape(state)}")
        size = self.render_size if size is None else int(size)
        if size < 16:
            raise ValueError(f"size must be >= 16 pixels, got {size}")
        xs, ys, scale = self._pixel_grid(size)
        px = 1.0 / scale  # one pixel in world units
        img = np.empty((size, size, 3), dtype=np.uint8)
        img[:] = BG_COLOR
        cart_w, cart_h = 0.5, 0.3
        # track line under the cart and end stops at +-x_threshold
        track_y = -cart_h / 2
        img[np.abs(ys - track_y) <= max(0.02, 0.5 * px)] = TRACK_COLOR
        stop = (np.abs(np.abs(xs) - X_THRESHOLD) <= max(0.03, 0.5 * px)) & (ys <= track_y) & (ys >= track_y - 0.3)
        img[stop] = TRACK_COLOR
        # cart
        img[(np.abs(xs - x) <= max(cart_w / 2, 1.5 * px)) & (np.abs(ys) <= max(cart_h / 2, 1.0 * px))] = CART_COLOR
        # pole: thick segment from the axle (x, 0) to the tip, theta = 0 points up
        tip = np.array([x + 2 * LENGTH * sn, 2 * LENGTH * c])
        d = tip - np.array([x, 0.0])
        t = np.clip(((xs - x) * d[0] + ys * d[1]) / (d @ d), 0.0, 1.0)
        dist2 = (xs - (x + t * d[0])) ** 2 + (ys - t * d[1]) ** 2
        half_thick = max(0.05, 1.0 * px)
        img[dist2 <= half_thick**2] = POLE_COLOR
        return img
