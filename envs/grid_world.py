"""Continuous 2-D point agent on a grid map with walls (a goal-conditioned Gymnasium env).

One ~630-line file on purpose: the layouts, the wall geometry, the exact collision physics and the task
sampler are the single source of truth that the analytic model, the benchmarks and the pixel env share.

Geometry conventions (``LAYOUTS`` + :func:`wall_boxes` are the single source of truth):

* A layout is a tuple of equal-length strings: ``'#'`` is a wall cell, ``'.'`` a free cell.
* Every cell is a 1x1 square. World coordinates have their origin at the map's bottom-left
  corner, **x to the right and y up**. The first string of a layout is therefore the *top*
  row: cell (row ``r``, column ``c``) covers ``x in [c, c+1]`` and ``y in [H-1-r, H-r]``.
* The agent is an axis-aligned square of half-width ``agent_radius`` (default 0.1). Its centre
  (the observed position) therefore always stays at least ``agent_radius`` away from every wall
  (in the L-infinity sense) and from the map border. ``wall_boxes(layout, inflate=r)`` gives
  exactly the boxes the centre must stay out of.
* Motion is resolved per axis (x first, then y) with an exact swept test, so the agent slides
  along walls, stops flush against them and can never tunnel through them, whatever the
  step size.

All built-in maps are 9x9 cells including a one-cell border wall (free interior 7x7).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "LAYOUTS",
    "ACROSS_REGIONS",
    "GridWorldEnv",
    "get_layout",
    "map_size",
    "wall_boxes",
    "free_space_bounds",
    "segment_hits_wall",
    "sample_task",
]

LAYOUTS: dict[str, tuple[str, ...]] = {
    # Empty room.
    "open": (
        "#########",
        "#.......#",
        "#.......#",
        "#.......#",
        "#.......#",
        "#.......#",
        "#.......#",
        "#.......#",
        "#########",
    ),
    # Vertical wall at x in [4, 5] with a single door cell at x in [4, 5], y in [6, 7].
    "wall": (
        "#########",
        "#...#...#",
        "#.......#",
        "#...#...#",
        "#...#...#",
        "#...#...#",
        "#...#...#",
        "#...#...#",
        "#########",
    ),
    # Central block x in [3, 6], y in [1, 6]; arms are x in [1, 3] and x in [6, 8], joined at
    # the top (y in [6, 8]).
    "umaze": (
        "#########",
        "#.......#",
        "#.......#",
        "#..###..#",
        "#..###..#",
        "#..###..#",
        "#..###..#",
        "#..###..#",
        "#########",
    ),
    # One-cell-wide corridors with a loop and a dead end.
    "maze": (
        "#########",
        "#.....#.#",
        "#.###.#.#",
        "#.#...#.#",
        "#.#.###.#",
        "#.#.....#",
        "#.#####.#",
        "#.......#",
        "#########",
    ),
}

# Default regions (xmin, ymin, xmax, ymax) for the non-greedy "across" task: the start is
# drawn from one region and the goal from the other (which is which is random). For layouts
# with interior walls every segment between the two regions crosses a wall. Layouts without
# an entry (e.g. "maze") use geodesically far-apart cells instead.
ACROSS_REGIONS: dict[str, tuple[tuple[float, float, float, float], tuple[float, float, float, float]]] = {
    "open": ((1.0, 1.0, 3.0, 3.0), (6.0, 6.0, 8.0, 8.0)),  # opposite corners (nothing to block)
    "wall": ((1.0, 1.0, 4.0, 5.0), (5.0, 1.0, 8.0, 5.0)),  # left room vs right room, below the door
    "umaze": ((1.0, 1.0, 3.0, 4.0), (6.0, 1.0, 8.0, 4.0)),  # bottoms of the two arms
}

AGENT_COLOR = np.array([220, 40, 40], dtype=np.uint8)
GOAL_COLOR = np.array([40, 180, 40], dtype=np.uint8)
WALL_COLOR = np.array([60, 60, 60], dtype=np.uint8)
FREE_COLOR = np.array([235, 235, 235], dtype=np.uint8)


# --------------------------------------------------------------------------- geometry helpers


def get_layout(layout: str | Sequence[str]) -> tuple[str, ...]:
    """Resolve a layout name (key of ``LAYOUTS``) or an explicit char grid, and validate it."""
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; valid layouts: {sorted(LAYOUTS)}")
        rows = LAYOUTS[layout]
    else:
        rows = tuple(layout)
    if not rows or not rows[0]:
        raise ValueError("layout must be a non-empty sequence of non-empty strings")
    if any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("all layout rows must have the same length")
    bad = set("".join(rows)) - {"#", "."}
    if bad:
        raise ValueError(f"layout may only contain '#' and '.', found {sorted(bad)}")
    if "." not in "".join(rows):
        raise ValueError("layout has no free cell")
    return rows


def map_size(layout: str | Sequence[str]) -> tuple[int, int]:
    """Return ``(width, height)`` of the map in world units (= cells)."""
    rows = get_layout(layout)
    return len(rows[0]), len(rows)


def free_space_bounds(layout: str | Sequence[str]) -> tuple[float, float, float, float]:
    """Bounding box ``(xmin, ymin, xmax, ymax)`` of the free cells (the agent's reachable area)."""
    rows = get_layout(layout)
    height = len(rows)
    cells = [(c, height - 1 - r) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "."]
    xs = [c for c, _ in cells]
    ys = [y for _, y in cells]
    return float(min(xs)), float(min(ys)), float(max(xs) + 1), float(max(ys) + 1)


def wall_boxes(layout: str | Sequence[str], inflate: float = 0.0) -> np.ndarray:
    """Wall rectangles as a float64 array ``[K, 4]`` of ``(xmin, ymin, xmax, ymax)``.

    Horizontal runs of wall cells are merged, then identical runs in consecutive rows are
    merged vertically; the union of the boxes is exactly the set of wall cells. ``inflate``
    grows every box by that margin on all sides (use ``inflate=agent_radius`` for the region
    the agent's centre can never enter).
    """
    rows = get_layout(layout)
    height = len(rows)
    open_boxes: dict[tuple[int, int], list[int]] = {}  # (c0, c1) -> [c0, y_lo, c1, y_hi]
    done: list[list[int]] = []
    for r, row in enumerate(rows):
        y_lo = height - 1 - r
        runs: list[tuple[int, int]] = []
        c = 0
        while c < len(row):
            if row[c] == "#":
                c0 = c
                while c < len(row) and row[c] == "#":
                    c += 1
                runs.append((c0, c))
            else:
                c += 1
        still_open: dict[tuple[int, int], list[int]] = {}
        for run in runs:
            if run in open_boxes:  # extend the box from the row above downward
                box = open_boxes.pop(run)
                box[1] = y_lo
            else:
                box = [run[0], y_lo, run[1], y_lo + 1]
            still_open[run] = box
        done.extend(open_boxes.values())
        open_boxes = still_open
    done.extend(open_boxes.values())
    boxes = np.asarray(sorted(done), dtype=np.float64).reshape(-1, 4)
    if inflate:
        boxes = boxes + np.array([-inflate, -inflate, inflate, inflate])
    return boxes


def _segments_hit_boxes(p: np.ndarray, q: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """For segments p->q ``[N, 2]``, whether each passes through the open interior of any box."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))[:, None, :]  # [N,1,2]
    d = np.atleast_2d(np.asarray(q, dtype=np.float64))[:, None, :] - p
    lo, hi = boxes[None, :, :2], boxes[None, :, 2:]  # [1,K,2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - p) / d
        t2 = (hi - p) / d
    parallel = d == 0
    inside_slab = (lo < p) & (p < hi)
    t_enter = np.where(parallel, np.where(inside_slab, -np.inf, np.inf), np.minimum(t1, t2))
    t_exit = np.where(parallel, np.where(inside_slab, np.inf, -np.inf), np.maximum(t1, t2))
    t_in = np.max(t_enter, axis=-1)
    t_out = np.min(t_exit, axis=-1)
    hit = (t_in < t_out) & (t_in < 1.0) & (t_out > 0.0)
    return hit.any(axis=-1)


def segment_hits_wall(layout: str | Sequence[str], start: Sequence[float], end: Sequence[float]) -> bool:
    """Whether the straight segment ``start -> end`` passes through the interior of a wall."""
    return bool(_segments_hit_boxes(np.asarray(start), np.asarray(end), wall_boxes(layout))[0])


_FACE_TO_BOX_COLUMN = np.array([0, 2, 1, 3])


class _Geometry:
    """Precomputed collision data for one layout and agent radius (shared by env and samplers)."""

    def __init__(self, layout: str | Sequence[str], agent_radius: float) -> None:
        if not 0.0 < agent_radius < 0.5:
            raise ValueError(
                f"agent_radius must be in (0, 0.5), got {agent_radius} (a zero radius would let a "
                "point slip between touching wall boxes; >= 0.5 closes one-cell corridors)"
            )
        self.rows = get_layout(layout)
        self.width, self.height = map_size(self.rows)
        self.radius = float(agent_radius)
        self.walls = wall_boxes(self.rows)
        self.boxes = wall_boxes(self.rows, inflate=self.radius)  # forbidden open region for the centre
        self.lo = np.array([self.radius, self.radius])
        self.hi = np.array([self.width - self.radius, self.height - self.radius])

    # -- queries ------------------------------------------------------------------------------
    def in_map(self, pos: np.ndarray) -> np.ndarray:
        return np.all((pos >= 0.0) & (pos <= np.array([self.width, self.height])), axis=-1)

    def in_wall(self, pos: np.ndarray) -> np.ndarray:
        """Strictly inside a wall cell (the boundary itself counts as free)."""
        return _strictly_inside(pos, self.walls)

    def valid(self, pos: np.ndarray) -> np.ndarray:
        """Whether the agent's centre may be at ``pos`` (not in any inflated wall, inside map)."""
        inside = np.all((pos >= self.lo) & (pos <= self.hi), axis=-1)
        return inside & ~_strictly_inside(pos, self.boxes)

    def project(self, pos: np.ndarray) -> np.ndarray:
        """Push positions lying within ``agent_radius`` of a wall out to the nearest valid face.

        Used for user-given starts and float32 round-off; positions deep inside walls are pushed
        out too (callers that must reject those check :meth:`in_wall` first).
        """
        pos = np.clip(np.array(pos, dtype=np.float64), self.lo, self.hi)
        flat = pos.reshape(-1, 2)
        for _ in range(8):
            inside = _strictly_inside_matrix(flat, self.boxes)  # [N, K]
            rows = np.flatnonzero(inside.any(axis=1))
            if rows.size == 0:
                break
            k = inside[rows].argmax(axis=1)
            b = self.boxes[k]
            p = flat[rows]
            pen = np.stack([p[:, 0] - b[:, 0], b[:, 2] - p[:, 0], p[:, 1] - b[:, 1], b[:, 3] - p[:, 1]], axis=1)
            face = pen.argmin(axis=1)
            # faces are ordered (left, right, bottom, top); box columns are (xmin, ymin, xmax, ymax)
            target = b[np.arange(len(rows)), _FACE_TO_BOX_COLUMN[face]]
            axis = face // 2
            p[np.arange(len(rows)), axis] = target
            flat[rows] = np.clip(p, self.lo, self.hi)
        return flat.reshape(pos.shape)

    def move(self, pos: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Exact per-axis swept move of valid positions ``[N, 2]`` by ``delta`` ``[N, 2]``."""
        pos = pos.copy()
        for ax in (0, 1):
            other = 1 - ax
            d = delta[:, ax]
            x = pos[:, ax]
            target = x + d
            # boxes overlapping the agent's current line of travel (strict, so sliding works)
            row = (self.boxes[None, :, other] < pos[:, other, None]) & (
                pos[:, other, None] < self.boxes[None, :, other + 2]
            )
            lo_face = self.boxes[None, :, ax]
            hi_face = self.boxes[None, :, ax + 2]
            fwd = row & (lo_face >= x[:, None]) & (lo_face < target[:, None])
            bwd = row & (hi_face <= x[:, None]) & (hi_face > target[:, None])
            stop_fwd = np.where(fwd, lo_face, np.inf).min(axis=1)
            stop_bwd = np.where(bwd, hi_face, -np.inf).max(axis=1)
            new = np.where(d > 0, np.minimum(target, stop_fwd), np.where(d < 0, np.maximum(target, stop_bwd), x))
            pos[:, ax] = np.clip(new, self.lo[ax], self.hi[ax])
        return pos

    # -- sampling -----------------------------------------------------------------------------
    def sample_in(
        self, rng: np.random.Generator, region: Sequence[float] | None = None, max_tries: int = 10_000
    ) -> np.ndarray:
        """Uniform valid position in ``region`` (xmin, ymin, xmax, ymax), default the whole map."""
        x0, y0, x1, y1 = region if region is not None else (0.0, 0.0, float(self.width), float(self.height))
        for _ in range(max_tries):
            p = rng.uniform([x0, y0], [x1, y1])
            if self.valid(p):
                return p
        raise RuntimeError(f"could not sample a free position in region {(x0, y0, x1, y1)}")

    def free_cells(self) -> list[tuple[int, int]]:
        """Free cells as (col, row) index pairs."""
        return [(c, r) for r, row in enumerate(self.rows) for c, ch in enumerate(row) if ch == "."]

    def geodesic(self, start: tuple[int, int]) -> dict[tuple[int, int], int]:
        """BFS distance (4-connected, in cells) from a free cell to every reachable free cell."""
        dist = {start: 0}
        queue = deque([start])
        while queue:
            c, r = queue.popleft()
            for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                n = (c + dc, r + dr)
                if (
                    0 <= n[1] < self.height
                    and 0 <= n[0] < self.width
                    and self.rows[n[1]][n[0]] == "."
                    and n not in dist
                ):
                    dist[n] = dist[(c, r)] + 1
                    queue.append(n)
        return dist


def _strictly_inside_matrix(pos: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 2)
    return (
        (boxes[None, :, 0] < pos[:, 0, None])
        & (pos[:, 0, None] < boxes[None, :, 2])
        & (boxes[None, :, 1] < pos[:, 1, None])
        & (pos[:, 1, None] < boxes[None, :, 3])
    )


def _strictly_inside(pos: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    pos = np.asarray(pos, dtype=np.float64)
    return cast(
        np.ndarray, _strictly_inside_matrix(pos, boxes).any(axis=1).reshape(pos.shape[:-1])
    )  # 2-D .any(axis=1): an array


def sample_task(
    layout: str | Sequence[str],
    rng: np.random.Generator,
    agent_radius: float = 0.1,
    max_tries: int = 1_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample a non-greedy ``(start, goal)`` pair whose straight segment is blocked by a wall.

    Layouts in ``ACROSS_REGIONS`` draw one point in each region (random order). Others (e.g.
    ``maze``) draw two free cells at least 60% of the layout's geodesic diameter apart. The
    pair is rejected until the straight segment crosses a wall, unless the layout has no
    interior walls (``open``), where only the regions apply.
    """
    key = layout if isinstance(layout, str) else get_layout(layout)
    geo = _geometry(key, float(agent_radius))
    has_obstacles = _has_interior_walls(geo)
    regions = ACROSS_REGIONS.get(key) if isinstance(key, str) else None
    far_pairs = _far_cell_pairs(key) if regions is None else []
    for _ in range(max_tries):
        if regions is not None:
            a, b = geo.sample_in(rng, regions[0]), geo.sample_in(rng, regions[1])
            if rng.random() < 0.5:
                a, b = b, a
        else:
            (ca, ra), (cb, rb) = far_pairs[rng.integers(len(far_pairs))]
            a = geo.sample_in(rng, (ca, geo.height - 1 - ra, ca + 1, geo.height - ra))
            b = geo.sample_in(rng, (cb, geo.height - 1 - rb, cb + 1, geo.height - rb))
        if not has_obstacles or _segments_hit_boxes(a, b, geo.walls)[0]:
            return a, b
    raise RuntimeError("could not sample an 'across' task whose straight line is blocked")


@lru_cache(maxsize=64)
def _geometry(layout: str | tuple[str, ...], agent_radius: float) -> _Geometry:
    return _Geometry(layout, agent_radius)


@lru_cache(maxsize=64)
def _far_cell_pairs(layout: str | tuple[str, ...]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Ordered pairs of free cells (col, row) at least 60% of the geodesic diameter apart."""
    geo = _geometry(layout, 0.1)
    dists = {c: geo.geodesic(c) for c in geo.free_cells()}
    diameter = max(max(d.values()) for d in dists.values())
    if diameter == 0:
        raise ValueError("layout has a single free cell; cannot sample far-apart start/goal cells")
    threshold = max(1, int(np.ceil(0.6 * diameter)))
    return [(a, b) for a, d in dists.items() for b, db in d.items() if db >= threshold]


def _has_interior_walls(geo: _Geometry) -> bool:
    """Whether any wall cell lies strictly inside the map's border ring."""
    inner = [row[1:-1] for row in geo.rows[1:-1]]
    return any("#" in row for row in inner)


# --------------------------------------------------------------------------- environment


class GridWorldEnv(gym.Env):
    """Goal-conditioned continuous point agent on a walled grid map.

    * Action: ``Box(-1, 1, (2,), float32)`` velocity; displacement = ``clip(a, -1, 1) * step_size``
      (out-of-range actions are clipped, non-finite ones raise ``ValueError``).
    * Observation (GoalEnv convention, float32 world positions): ``{"observation": pos,
      "achieved_goal": pos, "desired_goal": goal}``.
    * Reward: dense ``-||pos - goal||`` after the move; ``terminated`` once within
      ``goal_radius``. Truncation is left to the ``TimeLimit`` wrapper (100 steps when made
      through ``gymnasium.make``).
    * ``reset(options={"start": xy, "goal": xy, "task": "random" | "across"})``; missing start /
      goal are sampled with ``self.np_random`` (uniform over free space, at least
      ``min_goal_distance`` apart, or via :func:`sample_task` for ``"across"``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    TASKS = ("random", "across")

    def __init__(
        self,
        layout: str | Sequence[str] = "wall",
        step_size: float = 0.25,
        goal_radius: float = 0.3,
        agent_radius: float = 0.1,
        min_goal_distance: float = 1.5,
        task: str = "random",
        render_mode: str | None = None,
        render_size: int = 64,
    ) -> None:
        if step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if goal_radius <= 0:
            raise ValueError(f"goal_radius must be > 0, got {goal_radius}")
        if min_goal_distance < 0:
            raise ValueError(f"min_goal_distance must be >= 0, got {min_goal_distance}")
        if task not in self.TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {list(self.TASKS)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: {self.metadata['render_modes']}")
        if int(render_size) < 8:
            raise ValueError(f"render_size must be >= 8 pixels, got {render_size}")
        self.layout_name = layout if isinstance(layout, str) else None
        self.layout = layout if isinstance(layout, str) else get_layout(layout)
        self._geo = _geometry(self.layout, float(agent_radius))
        self.width, self.height = self._geo.width, self._geo.height
        self.step_size = float(step_size)
        self.goal_radius = float(goal_radius)
        self.agent_radius = float(agent_radius)
        self.min_goal_distance = float(min_goal_distance)
        self.task = task
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.agent_draw_radius = 0.3  # world units; drawn larger than the physical radius for pixels

        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        pos_space = spaces.Box(
            low=np.zeros(2, dtype=np.float32),
            high=np.array([self.width, self.height], dtype=np.float32),
            dtype=np.float32,
        )
        self.observation_space = spaces.Dict(
            {"observation": pos_space, "achieved_goal": pos_space, "desired_goal": pos_space}
        )
        self._pos = np.zeros(2)
        self._goal = np.zeros(2)
        self._bg_cache: dict[int, np.ndarray] = {}
        self._grid_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ---------------------------------------------------------------------- properties / helpers
    @property
    def position(self) -> np.ndarray:
        """Current agent position (float64 copy)."""
        return self._pos.copy()

    @property
    def goal(self) -> np.ndarray:
        """Current goal position (float64 copy)."""
        return self._goal.copy()

    @property
    def wall_boxes(self) -> np.ndarray:
        """The layout's wall rectangles ``[K, 4]`` (see :func:`wall_boxes`)."""
        return self._geo.walls.copy()

    def is_valid_position(self, position: Sequence[float] | np.ndarray) -> np.ndarray:
        """Whether the agent's centre may be at ``position`` (``[..., 2]``)."""
        return self._geo.valid(np.asarray(position, dtype=np.float64))

    def transition(self, position: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Batched single-step physics (same as :meth:`step`) for ``[..., 2]`` arrays.

        Actions are clipped to [-1, 1]; positions within ``agent_radius`` of a wall (e.g. from
        float32 round-off) are first pushed out to the nearest valid face.
        """
        position = np.asarray(position, dtype=np.float64)
        action = np.asarray(action, dtype=np.float64)
        if position.shape[-1:] != (2,) or action.shape[-1:] != (2,):
            raise ValueError(
                f"position and action must end in a dimension of 2, got {position.shape} and {action.shape}"
            )
        shape = np.broadcast_shapes(position.shape, action.shape)
        pos = self._geo.project(np.broadcast_to(position, shape).reshape(-1, 2))
        delta = np.clip(np.broadcast_to(action, shape).reshape(-1, 2), -1.0, 1.0) * self.step_size
        return self._geo.move(pos, delta).reshape(shape)

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None
    ) -> np.ndarray | float:
        """Dense reward ``-||achieved - desired||`` (vectorised over leading dims, for HER)."""
        d = np.linalg.norm(
            np.asarray(achieved_goal, dtype=np.float64) - np.asarray(desired_goal, dtype=np.float64), axis=-1
        )
        return -d if np.ndim(d) else float(-d)

    def compute_terminated(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None
    ) -> np.ndarray | bool:
        """Success test ``||achieved - desired|| <= goal_radius`` (vectorised)."""
        d = np.linalg.norm(
            np.asarray(achieved_goal, dtype=np.float64) - np.asarray(desired_goal, dtype=np.float64), axis=-1
        )
        return d <= self.goal_radius if np.ndim(d) else bool(d <= self.goal_radius)

    def _obs(self) -> dict[str, np.ndarray]:
        pos = self._pos.astype(np.float32)
        return {"observation": pos, "achieved_goal": pos.copy(), "desired_goal": self._goal.astype(np.float32)}

    def _info(self) -> dict[str, Any]:
        # distance of the float32 observed positions, so compute_reward(obs...) reproduces rewards
        # exactly (HER relabelling, SB3's GoalEnv check)
        dist = float(np.linalg.norm(self._pos.astype(np.float32).astype(np.float64) - self._goal.astype(np.float32)))
        return {
            "is_success": bool(dist <= self.goal_radius),
            "distance": dist,
            "goal": self._goal.copy(),
            "position": self._pos.copy(),
        }

    def _check_point(self, name: str, value: Any) -> np.ndarray:
        p = np.asarray(value, dtype=np.float64)
        if p.shape != (2,) or not np.all(np.isfinite(p)):
            raise ValueError(f"{name} must be a finite (x, y) pair, got {value!r}")
        if not self._geo.in_map(p):
            raise ValueError(f"{name} {p.tolist()} is outside the map [0, {self.width}] x [0, {self.height}]")
        if self._geo.in_wall(p):
            raise ValueError(f"{name} {p.tolist()} is inside a wall of layout {self.layout_name or 'custom'!r}")
        # the agent's centre keeps agent_radius from walls; allow only that much slack
        nearest = self._geo.project(p)
        if not self._geo.valid(nearest) or np.max(np.abs(nearest - p)) > self.agent_radius + 1e-9:
            raise ValueError(
                f"{name} {p.tolist()} is on a wall boundary the agent cannot reach "
                f"(its centre stays agent_radius={self.agent_radius} away from walls)"
            )
        return p

    # ---------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"start", "goal", "task"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: ['goal', 'start', 'task']")
        task = options.get("task", self.task)
        if task not in self.TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {list(self.TASKS)}")

        start = self._check_point("start", options["start"]) if options.get("start") is not None else None
        goal = self._check_point("goal", options["goal"]) if options.get("goal") is not None else None
        if start is not None:
            start = self._geo.project(start)  # within agent_radius of a wall -> flush with it

        if task == "across" and (start is None or goal is None):
            s, g = sample_task(self.layout, self.np_random, self.agent_radius)
            start = s if start is None else start
            goal = g if goal is None else goal
        if start is None:
            start = self._sample_away(goal)
        if goal is None:
            goal = self._sample_away(start)
        self._pos, self._goal = np.asarray(start, dtype=np.float64), np.asarray(goal, dtype=np.float64)
        return self._obs(), self._info()

    def _sample_away(self, other: np.ndarray | None) -> np.ndarray:
        """Uniform free position at least ``min_goal_distance`` from ``other`` (if given)."""
        for _ in range(10_000):
            p = self._geo.sample_in(self.np_random)
            if other is None or np.linalg.norm(p - other) >= self.min_goal_distance:
                return p
        raise RuntimeError(f"no free position at least {self.min_goal_distance} from {other}")

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be 2 finite numbers, got {action!r}")
        self._pos = self._geo.move(self._pos[None], np.clip(a, -1.0, 1.0)[None] * self.step_size)[0]
        info = self._info()
        return self._obs(), -info["distance"], info["is_success"], False, info

    # ---------------------------------------------------------------------- rendering
    def render(self) -> np.ndarray | None:
        """``rgb_array``: ``[S, S, 3]`` uint8 image with walls, goal (green) and agent (red)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return self.render_position(self._pos, self._goal)

    def _pixel_grid(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates (x, y) of the pixel centres of a ``size x size`` image."""
        if size not in self._grid_cache:
            j = (np.arange(size) + 0.5) * (self.width / size)
            i = self.height - (np.arange(size) + 0.5) * (self.height / size)
            self._grid_cache[size] = (j[None, :].repeat(size, 0), i[:, None].repeat(size, 1))
        return self._grid_cache[size]

    def _background(self, size: int) -> np.ndarray:
        if size not in self._bg_cache:
            xs, ys = self._pixel_grid(size)
            walls = _strictly_inside(np.stack([xs, ys], axis=-1).reshape(-1, 2), self._geo.walls).reshape(size, size)
            img = np.empty((size, size, 3), dtype=np.uint8)
            img[:] = FREE_COLOR
            img[walls] = WALL_COLOR
            self._bg_cache[size] = img
        return self._bg_cache[size]

    def _draw_disc(self, img: np.ndarray, center: np.ndarray, radius: float, color: np.ndarray) -> None:
        size = img.shape[0]
        xs, ys = self._pixel_grid(size)
        px = min(size / self.width, size / self.height)
        r = max(radius, 1.5 / px)  # never thinner than ~3 pixels
        mask = (xs - center[0]) ** 2 + (ys - center[1]) ** 2 <= r * r
        img[mask] = color

    def render_position(
        self,
        position: Sequence[float] | np.ndarray,
        goal: Sequence[float] | np.ndarray | None = None,
        size: int | None = None,
    ) -> np.ndarray:
        """Draw the map with the agent at ``position`` and, if given, the goal marker.

        Pass ``goal=None`` for pixel observations and goal images (no goal marker). The agent is a
        red disc of radius ``agent_draw_radius`` (0.3 units, >= 1.5 px), the goal a green disc of
        radius ``goal_radius`` drawn underneath it.
        """
        size = self.render_size if size is None else int(size)
        if size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {size}")
        img = self._background(size).copy()
        if goal is not None:
            self._draw_disc(img, np.asarray(goal, dtype=np.float64), self.goal_radius, GOAL_COLOR)
        self._draw_disc(img, np.asarray(position, dtype=np.float64), self.agent_draw_radius, AGENT_COLOR)
        return img
