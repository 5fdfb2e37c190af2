"""Point-Maze from gymnasium-robotics (``PointMaze_UMaze-v3``, ``PointMaze_Medium-v3``) as a GraspMPC task.

:class:`PointMazeAdapter` is a thin wrapper (a ``gymnasium.Env`` that owns the robotics env, so that
``env.unwrapped`` exposes the helpers below and ``gym.make`` can register it):

* observations: a dict with ``observation`` = the env's own ``[x, y, vx, vy]``, ``desired_goal`` =
  ``[gx, gy, 0, 0]`` (the env's goal in the model's state space: at rest on the goal) and
  ``achieved_goal`` = the observation. ``GraspMPC`` plans toward ``desired_goal``;
  ``collect_transitions`` stores ``observation``;
* actions: the env's force ``Box(-1, 1, (2,))``; ``action_repeat=k`` applies each action k times
  (the DINO-WM datasets use 5). One native step is dt = 0.01 s and moves the ball at most
  0.05 cells (speed clip 5): docs/paper_tasks.md has the measured step sizes;
* success: ``info["is_success"]`` is the env's own ``info["success"]`` (ball within
  :data:`SUCCESS_RADIUS` = 0.45 of the goal, in x-y); with ``continuing_task=False`` (the default
  here) the env also terminates on success;
* tasks: ``reset(options={"path_length": k})`` samples a start and goal cell whose shortest path
  (BFS over the maze grid, 4-connected) is k cells; ``{"reset_cell": (i, j), "goal_cell": (i, j)}``
  passes through to the env (both get the env's uniform +-0.25 position noise).

Registered (lazily: nothing of gymnasium-robotics or mujoco is imported until ``gym.make``) as
``mpc_grasp/PointMazeUMaze-v0`` (300 steps) and ``mpc_grasp/PointMazeMedium-v0`` (600 steps), the
step limits of the robotics ids. Needs ``pip install 'mpc-grasp[robotics]'``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "INSTALL_HINT",
    "MAZES",
    "MEDIUM_MAZE",
    "POINT_MAZE_ENV_IDS",
    "SUCCESS_RADIUS",
    "U_MAZE",
    "PointMazeAdapter",
    "bfs_distances",
    "free_cells",
    "import_gymnasium_robotics",
    "make_point_maze",
    "next_cell_toward",
    "waypoint_policy",
    "register_point_maze_envs",
    "sample_start_goal",
    "shortest_path_length",
]

INSTALL_HINT = "pip install 'mpc-grasp[robotics]'"
SUCCESS_RADIUS = 0.45  # gymnasium_robotics.envs.maze.maze_v4.MazeEnv: success iff ||xy - goal|| <= 0.45

# Copies of gymnasium_robotics.envs.maze.maps (1 = wall, 0 = free; row 0 is the top, +y), so path
# lengths can be computed without the package; tests/test_paper_envs.py checks they match.
U_MAZE: tuple[tuple[int, ...], ...] = (
    (1, 1, 1, 1, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 0, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 1, 1),
)
MEDIUM_MAZE: tuple[tuple[int, ...], ...] = (
    (1, 1, 1, 1, 1, 1, 1, 1),
    (1, 0, 0, 1, 1, 0, 0, 1),
    (1, 0, 0, 1, 0, 0, 0, 1),
    (1, 1, 0, 0, 0, 1, 1, 1),
    (1, 0, 0, 1, 0, 0, 0, 1),
    (1, 0, 1, 0, 0, 1, 0, 1),
    (1, 0, 0, 0, 1, 0, 0, 1),
    (1, 1, 1, 1, 1, 1, 1, 1),
)

# maze name -> (gymnasium-robotics id, map, max_episode_steps of that id)
MAZES: dict[str, tuple[str, tuple[tuple[int, ...], ...], int]] = {
    "umaze": ("PointMaze_UMaze-v3", U_MAZE, 300),
    "medium": ("PointMaze_Medium-v3", MEDIUM_MAZE, 600),
}
POINT_MAZE_ENV_IDS: dict[str, str] = {
    "mpc_grasp/PointMazeUMaze-v0": "umaze",
    "mpc_grasp/PointMazeMedium-v0": "medium",
}

Cell = tuple[int, int]


# --------------------------------------------------------------------------- optional dependency


def import_gymnasium_robotics() -> Any:
    """Import gymnasium-robotics (registering its ids) or raise an ImportError naming the install command.
    Without a display MuJoCo renders headless (``MUJOCO_GL=egl``) unless the caller chose otherwise."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        # The package prints a Farama notice about the Adroit envs to stderr on import; keep other output.
        captured = io.StringIO()
        with contextlib.redirect_stderr(captured):
            import gymnasium_robotics
        rest = "".join(line for line in captured.getvalue().splitlines(True) if "AdroitHand" not in line)
        if rest:
            sys.stderr.write(rest)
    except ImportError as error:
        raise ImportError(
            f"Point-Maze needs gymnasium-robotics and mujoco, which are not installed ({error}). Install them with: {INSTALL_HINT}"
        ) from error
    gym.register_envs(gymnasium_robotics)
    return gymnasium_robotics


# --------------------------------------------------------------------------- maze-grid geometry


def _as_map(maze: str | Sequence[Sequence[Any]]) -> tuple[tuple[int, ...], ...]:
    if isinstance(maze, str):
        if maze not in MAZES:
            raise ValueError(f"unknown maze {maze!r}; choose one of {sorted(MAZES)} or pass a maze map")
        return MAZES[maze][1]
    rows = tuple(tuple(1 if cell == 1 else 0 for cell in row) for row in maze)  # 'g'/'r'/'c' cells are free
    if not rows or len({len(row) for row in rows}) != 1:
        raise ValueError("a maze map must be a non-empty rectangular list of rows")
    return rows


def free_cells(maze: str | Sequence[Sequence[Any]]) -> list[Cell]:
    """All free (non-wall) cells ``(row, col)`` of a maze map, in row-major order."""
    grid = _as_map(maze)
    return [(i, j) for i, row in enumerate(grid) for j, cell in enumerate(row) if cell != 1]


def bfs_distances(maze: str | Sequence[Sequence[Any]], start: Sequence[int]) -> dict[Cell, int]:
    """Shortest path length (in cells, 4-connected moves through free cells) from ``start`` to every reachable cell."""
    grid = _as_map(maze)
    start = (int(start[0]), int(start[1]))
    if not (0 <= start[0] < len(grid) and 0 <= start[1] < len(grid[0])) or grid[start[0]][start[1]] == 1:
        raise ValueError(f"start cell {start} is outside the maze or a wall")
    distances = {start: 0}
    queue = deque([start])
    while queue:
        i, j = queue.popleft()
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            cell = (i + di, j + dj)
            if (
                0 <= cell[0] < len(grid)
                and 0 <= cell[1] < len(grid[0])
                and grid[cell[0]][cell[1]] != 1
                and cell not in distances
            ):
                distances[cell] = distances[(i, j)] + 1
                queue.append(cell)
    return distances


def shortest_path_length(maze: str | Sequence[Sequence[Any]], start: Sequence[int], goal: Sequence[int]) -> int | None:
    """BFS path length in cells between two free cells, or None if unreachable."""
    return bfs_distances(maze, start).get((int(goal[0]), int(goal[1])))


def sample_start_goal(
    maze: str | Sequence[Sequence[Any]], path_length: int, rng: np.random.Generator
) -> tuple[Cell, Cell]:
    """A uniformly drawn (start cell, goal cell) pair at BFS path length exactly ``path_length`` cells."""
    pairs = [
        (start, goal)
        for start in free_cells(maze)
        for goal, distance in bfs_distances(maze, start).items()
        if distance == int(path_length)
    ]
    if not pairs:
        longest = max(max(bfs_distances(maze, start).values()) for start in free_cells(maze))
        raise ValueError(
            f"no start/goal cells at path length {path_length} in this maze (longest shortest path: {longest})"
        )
    return pairs[int(rng.integers(len(pairs)))]


def next_cell_toward(maze: str | Sequence[Sequence[Any]], cell: Sequence[int], goal: Sequence[int]) -> Cell:
    """The first cell of a shortest 4-connected path from ``cell`` to ``goal`` (``goal`` itself when adjacent,
    ``cell`` when already there)."""
    to_goal = bfs_distances(maze, goal)
    here = (int(cell[0]), int(cell[1]))
    if here not in to_goal:
        raise ValueError(f"cell {here} cannot reach the goal cell {tuple(goal)}")
    neighbours = [(here[0] + di, here[1] + dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    closer = [n for n in neighbours if to_goal.get(n, 1 << 30) < to_goal[here]]
    return closer[0] if closer else here


def waypoint_policy(
    env: PointMazeAdapter, noise: float = 0.3, random_fraction: float = 0.1, gain: float = 2.0, damping: float = 0.5
) -> Callable[[Any, np.random.Generator], np.ndarray]:
    """A noisy expert for ``env``: a PD controller toward the next cell centre of the shortest path to the env's
    current goal (toward the goal itself in its cell), plus Gaussian ``noise`` on the force; a ``random_fraction``
    of steps take a uniform random force. Reads the true state (``info``-free: from the adapter), so it serves
    data collection, never planning. Signature ``policy(obs, rng) -> action``."""

    def act(observation: Any, rng: np.random.Generator) -> np.ndarray:
        del observation  # the expert reads the true state from the env
        if rng.random() < random_fraction:
            return rng.uniform(-1.0, 1.0, size=2)
        position, velocity = env.ball_state()
        cell, goal_cell = env.cell_of(position), env.cell_of(env.goal)
        target = env.goal if cell == goal_cell else env.cell_center(next_cell_toward(env.maze_map, cell, goal_cell))
        force = gain * (target - position) - damping * velocity + rng.normal(0.0, noise, size=2)
        return np.clip(force, -1.0, 1.0)

    return act


# --------------------------------------------------------------------------- the adapter


class PointMazeAdapter(gym.Env):
    """A gymnasium-robotics Point-Maze with a goal in the model's state space (see the module docstring).

    ``maze``: "umaze", "medium" or a maze map (list of rows, 1 = wall). ``position_noise_range``:
    the uniform noise (in cells) added to start and goal positions (the env's default 0.25).
    ``pixels=True``: ``observation`` is a top-down ``image_size``² RGB frame of the maze and the ball (the goal
    marker hidden), ``desired_goal`` the same frame with the ball at rest on the goal, and ``state`` the true
    ``[x, y, vx, vy]`` (for evaluation and scripted experts only; also ``info["state"]``).
    ``env_kwargs`` go to the robotics env (e.g. ``reward_type``). The step limit is the caller's
    (``gym.make`` of a registered id adds a TimeLimit over *adapter* steps).
    """

    metadata = {"render_modes": ["rgb_array", "depth_array", "human"], "render_fps": 100}

    def __init__(
        self,
        maze: str | Sequence[Sequence[Any]] = "umaze",
        *,
        action_repeat: int = 1,
        continuing_task: bool = False,
        position_noise_range: float | None = None,
        render_mode: str | None = None,
        pixels: bool = False,
        image_size: int = 64,
        **env_kwargs: Any,
    ) -> None:
        if int(action_repeat) != action_repeat or action_repeat < 1:
            raise ValueError(f"action_repeat must be a positive integer, got {action_repeat!r}")
        import_gymnasium_robotics()
        if isinstance(maze, str):
            _as_map(maze)  # validates the name
            robotics_id = MAZES[maze][0]
        else:
            robotics_id = MAZES["umaze"][0]
            env_kwargs["maze_map"] = [list(row) for row in maze]
        self.maze_name = maze if isinstance(maze, str) else "custom"
        self.action_repeat = int(action_repeat)
        self.render_mode = render_mode
        self.pixels = bool(pixels)
        if self.pixels:
            if int(image_size) != image_size or not 16 <= image_size <= 512:
                raise ValueError(f"image_size must be an integer in [16, 512], got {image_size!r}")
            render_mode = "rgb_array"
            env_kwargs.update(width=int(image_size), height=int(image_size))
        # The raw robotics env (no TimeLimit / checker wrappers): the step limit applies to adapter steps.
        # Typed Any: gymnasium-robotics ships no type information, and PointMazeEnv's helpers (maze, goal,
        # point_env, compute_reward, ...) are not on gymnasium.Env.
        self.env: Any = cast(
            Any, gym.make(robotics_id, continuing_task=continuing_task, render_mode=render_mode, **env_kwargs).unwrapped
        )
        if (
            position_noise_range is not None
        ):  # not a constructor argument of PointMazeEnv (its kwargs also reach MujocoEnv)
            if not 0.0 <= position_noise_range <= 0.5:
                raise ValueError(f"position_noise_range must be in [0, 0.5] cells, got {position_noise_range}")
            self.env.position_noise_range = float(position_noise_range)
        self.maze_map = _as_map(self.env.maze.maze_map)
        self.action_space: spaces.Box = self.env.action_space
        state = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        self.observation_space = spaces.Dict({"observation": state, "achieved_goal": state, "desired_goal": state})
        self._last_raw: dict[str, np.ndarray] | None = None
        self._goal_frame: np.ndarray | None = None
        if self.pixels:
            self._top_down_camera()
            image = spaces.Box(0, 255, shape=(int(image_size), int(image_size), 3), dtype=np.uint8)
            self.observation_space = spaces.Dict({"observation": image, "desired_goal": image, "state": state})

    # -- gym API -------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        path_length = options.pop("path_length", None)
        if path_length is not None:
            if "reset_cell" in options or "goal_cell" in options:
                raise ValueError("give path_length or reset_cell/goal_cell, not both")
            start, goal = sample_start_goal(self.maze_map, int(path_length), self.np_random)
            options.update(reset_cell=np.array(start), goal_cell=np.array(goal))
        for key in ("reset_cell", "goal_cell"):
            if options.get(key) is not None:
                options[key] = np.asarray(options[key], dtype=np.int64)
        unknown = set(options) - {"reset_cell", "goal_cell"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: path_length, reset_cell, goal_cell")
        raw, info = self.env.reset(seed=seed, options=options or None)
        self._goal_frame = None
        return self._observe(raw), self._info(info)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float32), self.action_space.low, self.action_space.high)
        total = 0.0
        terminated = truncated = False
        for _ in range(self.action_repeat):
            raw, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return self._observe(raw), total, bool(terminated), bool(truncated), self._info(info)

    def render(self) -> Any:
        return self.env.render()

    def render_at(self, xy: Sequence[float] | np.ndarray) -> np.ndarray:
        """The frame with the ball at rest at ``xy`` (the ball's state is restored afterwards)."""
        point_env = self.env.point_env
        qpos, qvel = point_env.data.qpos.copy(), point_env.data.qvel.copy()
        point_env.set_state(np.asarray(xy, dtype=np.float64), np.zeros(2))
        frame = np.asarray(self.env.render()).copy()
        point_env.set_state(qpos, qvel)
        return frame

    def set_goal(self, xy: Sequence[float] | np.ndarray) -> None:
        """Move the env's goal to ``xy`` (its success test and ``desired_goal`` follow)."""
        self.env.goal = np.asarray(xy, dtype=np.float64).copy()
        self.env.update_target_site_pos()
        self._goal_frame = None
        if self.pixels:
            self._hide_goal_marker()

    def ball_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The true ball position and velocity."""
        point_env = self.env.point_env
        return point_env.data.qpos[:2].copy(), point_env.data.qvel[:2].copy()

    def _top_down_camera(self) -> None:
        """Look straight down on the maze (its free cells and half of the outer walls fill the frame) and hide the
        goal marker."""
        rows, cols = len(self.maze_map), len(self.maze_map[0])
        extent = max(rows, cols) - 1.0  # cells across the frame: the outer wall ring is one cell thick
        distance = extent / (2.0 * np.tan(np.radians(22.5)))  # MuJoCo's default fovy is 45 degrees
        camera = {"distance": distance, "elevation": -90.0, "azimuth": 90.0, "lookat": np.zeros(3)}
        self.env.point_env.mujoco_renderer.default_cam_config = camera
        self._hide_goal_marker()

    def _hide_goal_marker(self) -> None:
        self.env.point_env.model.site_rgba[self.env.target_site_id] = (0.0, 0.0, 0.0, 0.0)

    def close(self) -> None:
        self.env.close()

    # -- helpers -------------------------------------------------------------------------------
    @property
    def goal(self) -> np.ndarray:
        """The env's current goal position (x, y)."""
        return np.array(self.env.goal, dtype=np.float64)

    def goal_state(self) -> np.ndarray:
        """The goal in the model's state space: ``[gx, gy, 0, 0]``."""
        return np.concatenate([self.goal, np.zeros(2)])

    def is_success(self, observation: Any) -> bool:
        """The env's criterion: x-y distance to the goal <= :data:`SUCCESS_RADIUS`."""
        state = observation["observation"] if isinstance(observation, dict) else np.asarray(observation)
        return bool(np.linalg.norm(np.asarray(state)[:2] - self.goal) <= SUCCESS_RADIUS)

    def cell_of(self, xy: Sequence[float] | np.ndarray) -> Cell:
        """Maze cell ``(row, col)`` containing position ``xy``."""
        row, col = self.env.maze.cell_xy_to_rowcol(np.asarray(xy, dtype=np.float64))
        return int(row), int(col)

    def cell_center(self, cell: Sequence[int]) -> np.ndarray:
        """Position (x, y) of a cell's centre."""
        return np.asarray(self.env.maze.cell_rowcol_to_xy(np.asarray(cell)), dtype=np.float64)

    def set_ball_state(self, xy: Sequence[float], velocity: Sequence[float] = (0.0, 0.0)) -> dict[str, np.ndarray]:
        """Teleport the ball (scripted tests, evaluation from given states); returns the new observation."""
        point_env = self.env.point_env
        point_env.set_state(np.asarray(xy, dtype=np.float64), np.asarray(velocity, dtype=np.float64))
        raw = self.env._get_obs(np.concatenate([point_env.data.qpos, point_env.data.qvel]).ravel())
        return self._observe(raw)

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        """The env's reward on the x-y part of (batched) achieved/desired goals."""
        return self.env.compute_reward(np.asarray(achieved_goal)[..., :2], np.asarray(desired_goal)[..., :2], info)

    def _observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._last_raw = raw
        state = np.asarray(raw["observation"], dtype=np.float64).copy()
        if self.pixels:
            if self._goal_frame is None:
                self._goal_frame = self.render_at(self.goal)
            frame = np.asarray(self.env.render()).copy()
            return {"observation": frame, "desired_goal": self._goal_frame.copy(), "state": state}
        goal = np.concatenate([np.asarray(raw["desired_goal"], dtype=np.float64), np.zeros(2)])
        return {"observation": state, "achieved_goal": state.copy(), "desired_goal": goal}

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info["is_success"] = bool(info["success"])
        assert self._last_raw is not None
        info["state"] = np.asarray(self._last_raw["observation"], dtype=np.float64).copy()
        assert self._last_raw is not None
        info["distance"] = float(np.linalg.norm(self._last_raw["achieved_goal"] - self._last_raw["desired_goal"]))
        return info


def make_point_maze(
    maze: str | Sequence[Sequence[Any]] = "umaze", max_episode_steps: int | None = None, **kwargs: Any
) -> gym.Env:
    """A :class:`PointMazeAdapter` with a TimeLimit (default: the robotics id's limit, 300 / 600 steps)."""
    env = PointMazeAdapter(maze, **kwargs)
    if max_episode_steps is None:
        max_episode_steps = MAZES[maze][2] if isinstance(maze, str) else 300
    return gym.wrappers.TimeLimit(env, max_episode_steps=int(max_episode_steps))


def register_point_maze_envs() -> tuple[str, ...]:
    """Register ``POINT_MAZE_ENV_IDS`` (cheap: the entry point is only imported by ``gym.make``)."""
    for env_id, maze in POINT_MAZE_ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="mpc_grasp.envs.point_maze:PointMazeAdapter",
                max_episode_steps=MAZES[maze][2],
                kwargs={"maze": maze},
            )
    return tuple(POINT_MAZE_ENV_IDS)
