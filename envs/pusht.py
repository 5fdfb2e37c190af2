"""Push-T from ``gym-pusht`` (state observations) as a GraspMPC task.

:class:`PushTAdapter` is a thin wrapper (a ``gymnasium.Env`` that owns gym-pusht's ``PushTEnv`` with
``obs_type="state"``, so ``env.unwrapped`` exposes the helpers below and ``gym.make`` can register it):

* observations: a dict with ``observation`` = 8 normalised state features
  ``[agent_x, agent_y, agent_vx, agent_vy, block_x, block_y, cos(angle), sin(angle)]`` from the
  env's state ``[agent_x, agent_y, block_x, block_y, block_angle]`` (positions ``(p - 256) / 256``,
  so the 512-pixel workspace maps to [-1, 1]) plus the agent's velocity from the env's
  ``info["vel_agent"]`` (/ 1000 px/s): the env's PD controller carries velocity across steps, so
  the 5-D state alone is not Markov. The angle as (cos, sin) keeps goal distances continuous
  across 0 / 2 pi. ``desired_goal`` is the goal in the same features (agent at the goal's agent
  position, at rest); ``achieved_goal`` = the observation. ``state_from_features`` inverts the map;
* actions: ``Box(-1, 1, (2,))``, the env's absolute target position ``256 + 256 * a`` pixels
  (the env's action is a PD set point in [0, 512]^2; 10 control steps per second);
* success: ``info["is_success"]`` is the env's own flag: the block covers more than 95% of the goal
  T (shapely intersection area / goal area, ``info["coverage"]``); the env terminates on success.
  Custom goals work by setting the env's ``goal_pose``, which its coverage test and rendering read;
* tasks: the env's own reset (random agent and block, the fixed goal T at (256, 256, pi/4)), or
  ``reset(options={"block_distance": d, "block_rotation": r})``: a random goal block pose and a
  start block ``d`` pixels away, rotated by +-``r`` radians (:func:`sample_pusht_task`), or
  ``{"state": [ax, ay, bx, by, angle], "goal": [bx, by, angle] or [ax, ay, bx, by, angle]}``, optionally with
  ``"velocity": [vx, vy]`` (the agent's, px/s; default at rest) (the
  block then starts exactly at that pose, as observed: gym-pusht's own ``reset_to_state`` moves it
  by its centre-of-gravity offset when the angle is not 0, which the adapter compensates).

* pixels (``pixels=True``): ``observation`` is an ``image_size``² RGB frame of the agent and the block drawn as the
  env draws them (the goal T left out: the goal is an image; ``agent_radius`` draws the agent bigger, in pixels
  of the 512-pixel workspace, where its own 15 would be too small to see at the frame's resolution), ``desired_goal`` the same frame at the goal state,
  ``state`` the 8 features (evaluation and scripted experts only; also ``info["state"]``);
* ``action_repeat=k`` applies each action k times (the field's frameskip 5); ``continuing_task=True`` never
  terminates (data collection: the coverage test would end an expert's trajectory early).

Registered lazily (gym-pusht is imported only by ``gym.make``) as ``mpc_grasp/PushT-v0``
(300 steps, as ``gym_pusht/PushT-v0``). Needs ``pip install 'mpc-grasp[pusht]'`` followed by
``pip install --no-deps gym-pusht`` (gym-pusht requires ``pygame``, which would overwrite the
``pygame-ce`` that gymnasium's classic-control rendering uses; pygame-ce provides everything
gym-pusht calls). ``scripts/setup.sh`` does both when ``EXTRAS`` contains ``pusht``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "DEFAULT_GOAL",
    "INSTALL_HINT",
    "PUSHT_ENV_IDS",
    "PushTAdapter",
    "features_from_state",
    "import_gym_pusht",
    "pusher_policy",
    "register_pusht_envs",
    "sample_pusht_task",
    "state_from_features",
]

INSTALL_HINT = "pip install 'mpc-grasp[pusht]' && pip install --no-deps 'gym-pusht>=0.1.5,<0.2'"
PUSHT_ENV_IDS: tuple[str, ...] = ("mpc_grasp/PushT-v0",)
MAX_EPISODE_STEPS = 300  # gym_pusht/PushT-v0's limit
CENTER = 256.0  # workspace is [0, 512]^2 pixels
POSITION_SCALE = 256.0
VELOCITY_SCALE = 1000.0  # px/s; random targets give |v| ~ 500 on average, < 1550 at most (measured)
HOME = (256.0, 400.0)  # the agent's position after the env's _setup
DEFAULT_GOAL = np.array([HOME[0], HOME[1], 256.0, 256.0, np.pi / 4])  # the env's fixed goal T, agent at home
SAFE_TARGETS = (40.0, 472.0)  # pixels: the walls are at 5 and 506, the agent's radius is 15
CLEARANCE = 140.0  # agent (radius 15) centre farther than this from the block origin cannot touch the T (reach 121)


def import_gym_pusht() -> Any:
    """Import gym-pusht or raise an ImportError naming the install command."""
    try:
        import gym_pusht.envs
    except ImportError as error:
        raise ImportError(
            f"Push-T needs gym-pusht (with pymunk<7, shapely, opencv and pygame-ce), which is not installed ({error}). "
            f"Install it with: {INSTALL_HINT}   (--no-deps keeps pygame-ce; or EXTRAS=test,pusht bash scripts/setup.sh)"
        ) from error
    return gym_pusht.envs


def features_from_state(state: Any, velocity: Any = (0.0, 0.0)) -> np.ndarray:
    """Env state ``[ax, ay, bx, by, angle]`` (+ agent velocity, px/s) -> the 8 normalised features."""
    state = np.asarray(state, dtype=np.float64)
    velocity = np.broadcast_to(np.asarray(velocity, dtype=np.float64), state.shape[:-1] + (2,))
    return np.concatenate(
        [
            (state[..., 0:2] - CENTER) / POSITION_SCALE,
            velocity / VELOCITY_SCALE,
            (state[..., 2:4] - CENTER) / POSITION_SCALE,
            np.cos(state[..., 4:5]),
            np.sin(state[..., 4:5]),
        ],
        axis=-1,
    )


def state_from_features(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`features_from_state`: (env state ``[ax, ay, bx, by, angle in [0, 2pi)]``, velocity px/s)."""
    features = np.asarray(features, dtype=np.float64)
    angle = np.mod(np.arctan2(features[..., 7:8], features[..., 6:7]), 2 * np.pi)
    state = np.concatenate(
        [features[..., 0:2] * POSITION_SCALE + CENTER, features[..., 4:6] * POSITION_SCALE + CENTER, angle], axis=-1
    )
    return state, features[..., 2:4] * VELOCITY_SCALE


def _agent_clear_of(block_xy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    for _ in range(1000):
        agent = rng.uniform(50.0, 462.0, size=2)
        if np.linalg.norm(agent - block_xy) > CLEARANCE:
            return agent
    raise RuntimeError("could not place the agent clear of the block")


def sample_pusht_task(
    rng: np.random.Generator, block_distance: float, block_rotation: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(start state, goal state), each ``[ax, ay, bx, by, angle]`` in env units: the goal block at a
    uniform pose in [150, 362]^2 x [0, 2pi), the start block ``block_distance`` pixels away (uniform
    direction, kept in [120, 392]^2) and rotated by +-``block_rotation`` radians; agents clear of the
    blocks. Path length on Push-T = how far the block must be pushed and turned."""
    if block_distance < 0 or block_distance > 250 or block_rotation < 0:
        raise ValueError(
            f"need 0 <= block_distance <= 250 pixels and block_rotation >= 0, got {block_distance}, {block_rotation}"
        )
    for _ in range(1000):
        goal_block = rng.uniform(150.0, 362.0, size=2)
        direction = rng.uniform(0.0, 2 * np.pi)
        start_block = goal_block + block_distance * np.array([np.cos(direction), np.sin(direction)])
        if np.all(start_block >= 120.0) and np.all(start_block <= 392.0):
            break
    else:
        raise RuntimeError(f"could not place a start block {block_distance} px from a goal block")
    goal_angle = rng.uniform(0.0, 2 * np.pi)
    start_angle = np.mod(goal_angle + rng.choice([-1.0, 1.0]) * block_rotation, 2 * np.pi)
    start = np.concatenate([_agent_clear_of(start_block, rng), start_block, [start_angle]])
    goal = np.concatenate([_agent_clear_of(goal_block, rng), goal_block, [goal_angle]])
    return start, goal


class PushTAdapter(gym.Env):
    """gym-pusht's Push-T with normalised state features and a goal in the model's state space (module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        *,
        render_mode: str | None = "rgb_array",
        action_repeat: int = 1,
        continuing_task: bool = False,
        pixels: bool = False,
        image_size: int = 64,
        agent_radius: float | None = None,
        **env_kwargs: Any,
    ) -> None:
        envs = import_gym_pusht()
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if isinstance(action_repeat, bool) or int(action_repeat) != action_repeat or action_repeat < 1:
            raise ValueError(f"action_repeat must be a positive integer, got {action_repeat!r}")
        if pixels and (int(image_size) != image_size or not 16 <= image_size <= 512):
            raise ValueError(f"image_size must be an integer in [16, 512], got {image_size!r}")
        self.render_mode = render_mode
        self.action_repeat, self.continuing_task = int(action_repeat), bool(continuing_task)
        self.pixels, self.image_size = bool(pixels), int(image_size)
        if agent_radius is not None and not 0 < agent_radius <= 60:
            raise ValueError(f"agent_radius must be in (0, 60] pixels of the 512-pixel workspace, got {agent_radius!r}")
        self.agent_radius = agent_radius
        self.env = envs.PushTEnv(obs_type="state", render_mode="rgb_array", **env_kwargs)
        import pymunk  # a gym-pusht dependency: the T's centre of gravity, from the env's own geometry

        tee, _ = envs.PushTEnv.add_tee(pymunk.Space(), (0, 0), 0)
        cog = env_kwargs.get("block_cog")
        self._block_cog = np.array(tee.center_of_gravity if cog is None else cog, dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        features = spaces.Box(-np.inf, np.inf, shape=(8,), dtype=np.float64)
        self.observation_space = spaces.Dict(
            {"observation": features, "achieved_goal": features, "desired_goal": features}
        )
        if self.pixels:
            image = spaces.Box(0, 255, shape=(self.image_size, self.image_size, 3), dtype=np.uint8)
            self.observation_space = spaces.Dict({"observation": image, "desired_goal": image, "state": features})
        self._goal_state = DEFAULT_GOAL.copy()
        self._goal_frame: np.ndarray | None = None

    # -- gym API -------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"state", "velocity", "goal", "block_distance", "block_rotation"}
        if unknown:
            raise ValueError(
                f"unknown reset options {sorted(unknown)}; valid: state, velocity, goal, block_distance, block_rotation"
            )
        start, goal = options.get("state"), options.get("goal")
        if "block_distance" in options:
            if start is not None or goal is not None:
                raise ValueError("give block_distance/block_rotation or state/goal, not both")
            start, goal = sample_pusht_task(
                self.np_random, float(options["block_distance"]), float(options.get("block_rotation", 0.0))
            )
        env_options = None if start is None else {"reset_to_state": self._legacy_reset_state(start)}
        raw, info = self.env.reset(seed=seed, options=env_options)
        if options.get("velocity") is not None:  # the agent's velocity (px/s): its PD controller carries it
            self.env.agent.velocity = tuple(float(v) for v in np.asarray(options["velocity"]).reshape(2))
            raw, info = self.env.get_obs(), self.env._get_info()
        self.set_goal(DEFAULT_GOAL if goal is None else goal)
        coverage = float(self.env._get_coverage())
        info = dict(info, coverage=coverage, is_success=coverage > self.env.success_threshold)
        observation = self._observe(raw, info)
        return observation, dict(info, state=self._features(raw, info))

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        target, total = self.env_action(action), 0.0
        for _ in range(self.action_repeat):
            raw, reward, terminated, _, info = self.env.step(target)
            total += float(reward)
            if terminated and not self.continuing_task:
                break
        info = dict(info, is_success=bool(info["is_success"]), state=self._features(raw, info))
        terminated = bool(terminated) and not self.continuing_task
        return self._observe(raw, info), total, terminated, False, info

    def render(self) -> Any:
        return None if self.render_mode is None else self.env.render()

    def close(self) -> None:
        self.env.close()

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def env_action(action: Any) -> np.ndarray:
        """Normalised action in [-1, 1]^2 -> the env's target position in pixels."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return CENTER + POSITION_SCALE * action

    @property
    def goal_pose(self) -> np.ndarray:
        """The goal block pose ``[x, y, angle]`` (pixels, radians) the env's coverage test uses."""
        return np.array(self.env.goal_pose, dtype=np.float64)

    def goal_state(self) -> np.ndarray:
        """The goal in the model's state space (8 features; agent at the goal's agent position, at rest)."""
        return features_from_state(self._goal_state)

    def set_goal(self, goal: Any) -> None:
        """Make ``goal`` (a block pose ``[x, y, angle]`` or a state ``[ax, ay, bx, by, angle]``, env units) the
        goal: the env's coverage test, its drawing and ``desired_goal`` follow."""
        self._goal_state = self._as_goal_state(goal)
        self.env.goal_pose = self._goal_state[2:5].copy()
        self._goal_frame = None

    def state(self) -> np.ndarray:
        """The true state ``[ax, ay, bx, by, angle]`` (env units)."""
        angle = float(self.env.block.angle) % (2 * np.pi)
        return np.array([*self.env.agent.position, *self.env.block.position, angle], dtype=np.float64)

    def render_frame(self, state: Any = None) -> np.ndarray:
        """An ``image_size``² RGB frame of the agent and the block (no goal T), at the current state or at
        ``state`` ``[ax, ay, bx, by, angle]`` (the bodies are put back afterwards; nothing is simulated)."""
        import pygame
        import pymunk.pygame_util
        from gym_pusht.envs.pymunk_override import DrawOptions

        saved = None if state is None else self._pose_bodies(np.asarray(state, dtype=np.float64).reshape(-1))
        screen = pygame.Surface((512, 512))
        screen.fill((255, 255, 255))
        self.env.space.debug_draw(DrawOptions(screen))
        if self.agent_radius is not None:  # drawn over the env's own agent (a camera that sees it bigger)
            agent = self.env.agent
            centre = pymunk.pygame_util.to_pygame(agent.position, screen)
            pygame.draw.circle(screen, pygame.Color("RoyalBlue"), centre, round(self.agent_radius))
        if saved is not None:
            self._pose_bodies(saved)
        image = np.transpose(np.array(pygame.surfarray.pixels3d(screen)), (1, 0, 2))
        return _resize(image, self.image_size)

    def _pose_bodies(self, state: np.ndarray) -> np.ndarray:
        """Put the agent and block at ``state`` (angle before position, so the block's origin lands exactly
        there); returns the state they had. Velocities are untouched."""
        if state.shape != (5,):
            raise ValueError(f"state must be [agent_x, agent_y, block_x, block_y, block_angle], got {state.shape}")
        agent, block = self.env.agent, self.env.block
        saved = np.array([*agent.position, *block.position, block.angle], dtype=np.float64)
        agent.position = (float(state[0]), float(state[1]))
        block.angle = float(state[4])
        block.position = (float(state[2]), float(state[3]))
        for body in (agent, block):
            self.env.space.reindex_shapes_for_body(body)
        return saved

    def coverage(self) -> float:
        """The env's coverage of the goal T by the block (success iff > 0.95)."""
        return float(self.env._get_coverage())

    def _legacy_reset_state(self, state: Any) -> np.ndarray:
        """The ``reset_to_state`` input that puts the block at ``state``'s pose: the env sets the block
        position, then the angle, which rotates the body about its centre of gravity and so moves its
        position by ``cog - R(angle) cog`` (gym-pusht's documented legacy behaviour); pre-compensate."""
        state = np.asarray(state, dtype=np.float64).reshape(-1).copy()
        if state.shape != (5,):
            raise ValueError(
                f"state must be [agent_x, agent_y, block_x, block_y, block_angle], got shape {state.shape}"
            )
        cos, sin = np.cos(state[4]), np.sin(state[4])
        rotated = np.array(
            [cos * self._block_cog[0] - sin * self._block_cog[1], sin * self._block_cog[0] + cos * self._block_cog[1]]
        )
        state[2:4] += rotated - self._block_cog
        return state

    def _as_goal_state(self, goal: Any) -> np.ndarray:
        goal = np.asarray(goal, dtype=np.float64).reshape(-1)
        if goal.shape == (3,):
            return np.concatenate([DEFAULT_GOAL[:2], goal])
        if goal.shape == (5,):
            return goal.copy()
        raise ValueError(
            f"goal must be a block pose [x, y, angle] or a state [ax, ay, bx, by, angle], got shape {goal.shape}"
        )

    @staticmethod
    def _features(raw: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return features_from_state(raw, info["vel_agent"])

    def _observe(self, raw: np.ndarray, info: dict[str, Any]) -> dict[str, np.ndarray]:
        state = self._features(raw, info)
        if self.pixels:
            if self._goal_frame is None:
                self._goal_frame = self.render_frame(self._goal_state)
            return {"observation": self.render_frame(), "desired_goal": self._goal_frame.copy(), "state": state}
        return {"observation": state, "achieved_goal": state.copy(), "desired_goal": self.goal_state()}


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2  # a gym-pusht dependency

    return np.ascontiguousarray(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))


def block_centre(pose: Any, cog: Any = (0.0, 45.0)) -> np.ndarray:
    """The T's centre of gravity in pixels from its pose ``[x, y, angle]`` (the body origin and angle)."""
    x, y, angle = np.asarray(pose, dtype=np.float64)[:3]
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([x + cos * cog[0] - sin * cog[1], y + sin * cog[0] + cos * cog[1]])


def pusher_policy(
    env: PushTAdapter,
    noise: float = 10.0,
    random_fraction: float = 0.1,
    reach: float = 90.0,
    max_stride: float = 50.0,
) -> Callable[[Any, np.random.Generator], np.ndarray]:
    """A noisy goal-directed pusher for ``env``: it walks around the T to the side away from the goal (``reach``
    pixels from its centre), then pushes the T's centre toward the goal's; near the goal (within 20 pixels) it
    pokes the T at random. Each target lies at most ``max_stride`` pixels from the agent (slow, deliberate pushes
    like a human demonstrator's), with Gaussian ``noise`` (pixels); a ``random_fraction`` of steps take a random
    target within that stride. Targets stay inside :data:`SAFE_TARGETS` (an agent driven into a wall can tunnel
    through it, which no model can predict). Reads the true state from the env, so it serves data collection,
    never planning.
    Signature ``policy(obs, rng) -> action`` in [-1, 1]^2."""

    def act(observation: Any, rng: np.random.Generator) -> np.ndarray:
        del observation  # the expert reads the true state from the env
        state = env.state()
        centre, goal = block_centre(state[2:5], env._block_cog), block_centre(env.goal_pose, env._block_cog)
        offset = goal - centre
        if rng.random() < random_fraction or np.linalg.norm(offset) < 20.0:
            target = state[:2] + rng.uniform(-max_stride, max_stride, size=2)
        else:
            target = _push_target(state[:2], centre, offset / np.linalg.norm(offset), reach)
        stride = target - state[:2]
        target = state[:2] + stride * min(1.0, max_stride / (np.linalg.norm(stride) + 1e-9))
        target = np.clip(target + rng.normal(0.0, noise, size=2), *SAFE_TARGETS)
        return (target - CENTER) / POSITION_SCALE

    return act


def _push_target(agent: np.ndarray, centre: np.ndarray, direction: np.ndarray, reach: float) -> np.ndarray:
    """Where the pusher aims: through the T when it is behind it, else around it toward the far side."""
    relative = agent - centre
    along, lateral = float(relative @ direction), float(relative @ np.array([-direction[1], direction[0]]))
    if along < 0 and abs(lateral) < 0.4 * reach:
        return centre + 0.6 * reach * direction  # behind the T, roughly in line: push through it
    if along < -0.3 * reach:
        return centre - reach * direction  # behind but off to a side: line up
    side = np.array([-direction[1], direction[0]])
    side = side if lateral >= 0 else -side
    return centre + reach * side - 0.7 * reach * direction  # walk around on the side it is already on


def register_pusht_envs() -> tuple[str, ...]:
    """Register ``PUSHT_ENV_IDS`` (cheap: the entry point is only imported by ``gym.make``)."""
    for env_id in PUSHT_ENV_IDS:
        if env_id not in gym.registry:
            gym.register(
                id=env_id, entry_point="mpc_grasp.envs.pusht:PushTAdapter", max_episode_steps=MAX_EPISODE_STEPS
            )
    return PUSHT_ENV_IDS
