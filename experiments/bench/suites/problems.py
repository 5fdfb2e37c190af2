"""The planner gym: planning problems with exact models and known answers (issue 12).

Each :class:`PlanningProblem` holds an exact differentiable model, a horizon, planner arguments
(state weights) and seeded (start, goal) instances, plus a success test on the model rollout (the
models are exact, so success under the model is success in the system). Together they cover what
breaks planners: inertia that needs braking (double integrators), energy pumping (cart-pole and
pendulum swing-up), backing away first (mountain car) and detours (grid-world walls).

Where the answer is known exactly a problem also carries ``min_steps(start, goal)``, a lower bound on
the steps any plan needs (walls: the shortest collision-free path around the walls, computed on a
visibility graph), so the fraction of instances reachable within the horizon bounds every planner's
success from above.

``PROBLEMS`` maps a name to a builder ``(instances, seed, spread=1.0) -> PlanningProblem``; the gym suite
(:mod:`bench.suites.gym`, ``experiments/planner_gym.py``) runs every planner on them and the
robustness suite (:mod:`bench.suites.robustness`) perturbs them.

``spread`` scales how far each start deviates from the problem's nominal start (1: the gym's instances,
unchanged): double integrators draw their start positions in ±spread and start with a velocity
uniform in ±0.1·(spread − 1) per axis (at rest at 1; the system is translation invariant, so only the
velocity changes the task); the swing-ups scale their deviations from hanging at rest, mountain car
its start position's deviation from −0.5. The walls problems take none (their starts already span
a room): any other spread is a ``ValueError``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from mpc_grasp.envs.grid_world import map_size, sample_task, wall_boxes
from torch import Tensor, nn

from mpc_grasp.models.analytic import CartPoleSwingupModel, LinearSystem, PointMassWalls


@dataclass(frozen=True)
class PlanningProblem:
    """A model, a horizon and seeded instances; ``solved(states, goal)`` judges a rollout [T+1, S]."""

    name: str
    model: nn.Module
    horizon: int
    instances: tuple[tuple[np.ndarray, np.ndarray], ...]
    solved: Callable[[np.ndarray, np.ndarray], bool]
    planner_kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    min_steps: Callable[[Any, Any], int] | None = None
    """A lower bound on the steps any plan needs to solve (start, goal); None where none is known."""

    def reachable(self, start: np.ndarray, goal: np.ndarray) -> bool | None:
        """Can some plan of ``horizon`` steps solve (start, goal)? A necessary condition (False: no
        planner can); None where the problem has no ``min_steps``."""
        return None if self.min_steps is None else self.min_steps(start, goal) <= self.horizon

    def closest_distance(self, states: np.ndarray, goal: np.ndarray) -> float:
        """Closest approach of a rollout [T+1, S] to the goal, in the planners' weighted state metric
        (``state_weights``): a continuous tie-break beside the pass/fail ``solved``."""
        weights = np.asarray(self.planner_kwargs.get("state_weights", 1.0), dtype=np.float64)
        return float(np.sqrt((weights * (np.asarray(states, dtype=np.float64) - goal) ** 2).sum(-1)).min())


class PendulumModel(nn.Module):
    """Gymnasium ``Pendulum-v1`` physics on its observation ``[cos, sin, theta_dot]``, torque in [-2, 2]."""

    GRAVITY, MASS, LENGTH, DT, MAX_SPEED, MAX_TORQUE = 10.0, 1.0, 1.0, 0.05, 8.0, 2.0

    def __init__(self) -> None:
        super().__init__()
        self.state_dim, self.action_dim = 3, 1

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        cos, sin, speed = state.unbind(-1)
        theta = torch.atan2(sin, cos)
        torque = action[..., 0].clamp(-self.MAX_TORQUE, self.MAX_TORQUE)
        accel = 3 * self.GRAVITY / (2 * self.LENGTH) * torch.sin(theta) + 3.0 / (self.MASS * self.LENGTH**2) * torque
        speed = (speed + accel * self.DT).clamp(-self.MAX_SPEED, self.MAX_SPEED)
        theta = theta + speed * self.DT
        return torch.stack([torch.cos(theta), torch.sin(theta), speed], dim=-1)


class MountainCarModel(nn.Module):
    """Gymnasium ``MountainCarContinuous-v0`` physics on ``[position, 100 · velocity]`` (velocity scaled
    so both coordinates are of order 1), ``frame_skip`` env steps per action. The car is too weak to
    drive up the right hill: it must back up the left one first (non-greedy by construction)."""

    POWER, MIN_POS, MAX_POS, MAX_SPEED = 0.0015, -1.2, 0.6, 0.07

    def __init__(self, frame_skip: int = 3) -> None:
        super().__init__()
        self.state_dim, self.action_dim, self.frame_skip = 2, 1, int(frame_skip)

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        position, velocity = state[..., 0], state[..., 1] / 100.0
        force = action[..., 0].clamp(-1.0, 1.0)
        for _ in range(self.frame_skip):
            velocity = (velocity + force * self.POWER - 0.0025 * torch.cos(3 * position)).clamp(
                -self.MAX_SPEED, self.MAX_SPEED
            )
            position = (position + velocity).clamp(self.MIN_POS, self.MAX_POS)
            velocity = torch.where((position <= self.MIN_POS) & (velocity < 0), torch.zeros_like(velocity), velocity)
        return torch.stack([position, 100.0 * velocity], dim=-1)


def damped_double_integrator(dims: int, dt: float = 0.1, damping: float = 0.5) -> LinearSystem:
    """Position/velocity per axis with velocity damping: v' = (1 − damping·dt) v + dt a."""
    eye = np.eye(dims)
    state_matrix = np.block([[eye, dt * eye], [np.zeros((dims, dims)), (1 - damping * dt) * eye]])
    action_matrix = np.vstack([0.5 * dt**2 * eye, dt * eye])
    return LinearSystem(state_matrix, action_matrix)


def _double_integrator(dims: int) -> Callable[..., PlanningProblem]:
    def build(instances: int, seed: int, spread: float = 1.0) -> PlanningProblem:
        rng = np.random.default_rng(seed)
        moving = np.random.default_rng([seed, 1])  # start velocities: their own stream, the gym's draws unchanged
        pairs = []
        for _ in range(instances):
            direction = rng.normal(size=dims)
            start = np.zeros(2 * dims, dtype=np.float32)
            start[:dims] = spread * rng.uniform(-1, 1, dims)
            goal = start.copy()
            goal[:dims] += 0.72 * direction / np.linalg.norm(direction)
            start[dims:] += 0.1 * (spread - 1) * moving.uniform(-1, 1, dims)  # +0.0 at spread 1
            pairs.append((start, goal))

        def solved(states: np.ndarray, goal: np.ndarray) -> bool:  # arrive and stop
            return bool(
                np.linalg.norm(states[-1, :dims] - goal[:dims]) < 0.05 and np.linalg.norm(states[-1, dims:]) < 0.1
            )

        return PlanningProblem(
            f"double_integrator_{dims}d",
            damped_double_integrator(dims),
            40,
            tuple(pairs),
            solved,
            description=f"damped {dims}-D double integrator, goal 0.72 away, arrive and stop (H=40)",
        )

    return build


def _cartpole_swingup(instances: int, seed: int, spread: float = 1.0) -> PlanningProblem:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(instances):
        x, x_dot, theta, theta_dot = spread * rng.uniform(-0.05, 0.05, 4)
        theta += math.pi
        start = np.array([x, x_dot, math.cos(theta), math.sin(theta), theta_dot], dtype=np.float32)
        pairs.append((start, np.array([0, 0, 1, 0, 0], dtype=np.float32)))
    return PlanningProblem(
        "cartpole_swingup",
        CartPoleSwingupModel(),
        50,
        tuple(pairs),
        lambda states, goal: bool((states[:, 2] > 0.9).any()),
        planner_kwargs={"state_weights": (0.1, 0.05, 1.0, 1.0, 0.05)},
        description="exact cart-pole from hanging, pole upright (cos > 0.9) at some step (H=50)",
    )


def _pendulum_swingup(instances: int, seed: int, spread: float = 1.0) -> PlanningProblem:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(instances):
        theta, speed = math.pi + spread * rng.uniform(-0.1, 0.1), spread * rng.uniform(-0.1, 0.1)
        pairs.append(
            (
                np.array([math.cos(theta), math.sin(theta), speed], dtype=np.float32),
                np.array([1, 0, 0], dtype=np.float32),
            )
        )
    return PlanningProblem(
        "pendulum_swingup",
        PendulumModel(),
        100,
        tuple(pairs),
        lambda states, goal: bool((states[:, 0] > 0.95).any()),
        planner_kwargs={"state_weights": (1.0, 1.0, 0.01), "action_low": -2.0, "action_high": 2.0},
        description="Gymnasium Pendulum-v1 physics from hanging, torque-limited: pump energy, upright (cos > 0.95) at some step (H=100)",
    )


def _spread(nominal: float, value: float, spread: float) -> float:
    """``value`` moved ``spread`` times as far from ``nominal`` (exactly ``value`` at spread 1)."""
    return value if spread == 1.0 else nominal + spread * (value - nominal)


def _mountain_car(instances: int, seed: int, spread: float = 1.0) -> PlanningProblem:
    rng = np.random.default_rng(seed)
    pairs = [
        (
            np.array([_spread(-0.5, rng.uniform(-0.6, -0.4), spread), 0.0], dtype=np.float32),
            np.array([0.5, 0.0], dtype=np.float32),
        )
        for _ in range(instances)
    ]
    return PlanningProblem(
        "mountain_car",
        MountainCarModel(),
        60,
        tuple(pairs),
        lambda states, goal: bool((states[:, 0] >= 0.45).any()),
        planner_kwargs={"state_weights": (1.0, 0.0)},
        description="MountainCarContinuous physics (3 env steps per action): back up, then reach x >= 0.45 (H=60)",
    )


# ----------------------------------------------------------------------------- shortest paths among the walls

AGENT_RADIUS, STEP_SIZE, WALLS_TOLERANCE = 0.1, 0.25, 0.3
"""Of the walls problems: the agent's half-width, the largest move per step along each axis (|a_i| <= 1)
and the goal distance that counts as solved."""


def _segment_blocked(p: np.ndarray, q: np.ndarray, boxes: np.ndarray) -> bool:
    """Does segment p->q pass through the open interior of any box (slab test)?"""
    d = q - p
    for box in boxes:
        lo_t, hi_t = 0.0, 1.0
        hit = True
        for axis in (0, 1):
            lo, hi = box[axis], box[axis + 2]
            if abs(d[axis]) < 1e-12:
                if not lo < p[axis] < hi:
                    hit = False
                    break
                continue
            a, b = (lo - p[axis]) / d[axis], (hi - p[axis]) / d[axis]
            lo_t, hi_t = max(lo_t, min(a, b)), min(hi_t, max(a, b))
        if hit and (hi_t - lo_t) * float(np.linalg.norm(d)) > 1e-9:
            return True
    return False


def shortest_path_length(
    layout: str,
    start: Sequence[float],
    goal: Sequence[float],
    agent_radius: float = AGENT_RADIUS,
    metric: str = "euclidean",
) -> float:
    """Length of the shortest collision-free path of the agent's centre, in the ``"euclidean"`` or
    ``"chebyshev"`` (L-infinity) metric: a visibility graph over the corners of the wall boxes inflated
    by ``agent_radius`` (in any norm some shortest path among polygonal obstacles bends only there).

    With per-axis action bounds |a_i| <= 1 a step moves at most ``STEP_SIZE`` in L-infinity, so the
    Chebyshev length / STEP_SIZE is a lower bound on the steps any plan needs."""
    order = {"euclidean": 2, "chebyshev": np.inf}[metric]
    boxes = wall_boxes(layout, inflate=agent_radius)
    width, height = map_size(layout)
    eps = 1e-6
    nodes = [np.asarray(start, dtype=float), np.asarray(goal, dtype=float)]
    for xmin, ymin, xmax, ymax in boxes:
        for x, y in (
            (xmin - eps, ymin - eps),
            (xmin - eps, ymax + eps),
            (xmax + eps, ymin - eps),
            (xmax + eps, ymax + eps),
        ):
            if agent_radius <= x <= width - agent_radius and agent_radius <= y <= height - agent_radius:
                inside = (boxes[:, 0] < x) & (x < boxes[:, 2]) & (boxes[:, 1] < y) & (y < boxes[:, 3])
                if not inside.any():
                    nodes.append(np.array([x, y]))
    dist = [math.inf] * len(nodes)
    dist[0] = 0.0
    queue = [(0.0, 0)]
    while queue:
        d, i = heapq.heappop(queue)
        if i == 1:
            return d
        if d > dist[i]:
            continue
        for j in range(len(nodes)):
            if j == i or _segment_blocked(nodes[i], nodes[j], boxes):
                continue
            nd = d + float(np.linalg.norm(nodes[j] - nodes[i], ord=order))
            if nd < dist[j]:
                dist[j] = nd
                heapq.heappush(queue, (nd, j))
    return math.inf


def feasible(task: Mapping[str, Any], horizon: int, tolerance: float, step_size: float = STEP_SIZE) -> bool:
    """Necessary condition for any length-``horizon`` plan to reach the goal region of ``task`` (a dict
    with ``path_length_chebyshev`` or ``path_length``, see :func:`shortest_path_length`).

    A step moves at most ``step_size`` in the L-infinity norm and the goal disc has L-infinity radius
    <= ``tolerance``, so a plan can only succeed if the shortest L-infinity path length minus
    ``tolerance`` is at most H · step_size. The fraction of feasible pairs bounds every planner's
    success rate from above.
    """
    length = task.get("path_length_chebyshev", task["path_length"])
    return length - tolerance <= horizon * step_size + 1e-9


def wall_min_steps(
    start: Sequence[float], goal: Sequence[float], layout: str = "wall", tolerance: float = WALLS_TOLERANCE
) -> int:
    """Fewest steps in which any plan can bring the agent within ``tolerance`` of ``goal`` (see :func:`feasible`)."""
    length = shortest_path_length(layout, start, goal, metric="chebyshev")
    return math.ceil(max(0.0, length - tolerance) / STEP_SIZE - 1e-9) if math.isfinite(length) else 2**31 - 1


def _walls(horizon: int) -> Callable[..., PlanningProblem]:
    def build(instances: int, seed: int, spread: float = 1.0) -> PlanningProblem:
        if spread != 1.0:
            raise ValueError("the walls problems' starts already span a room: they take no start spread")
        rng = np.random.default_rng(seed)
        pairs = tuple(
            tuple(np.asarray(v, dtype=np.float32) for v in sample_task("wall", rng)) for _ in range(instances)
        )
        return PlanningProblem(
            f"walls_across_h{horizon}",
            PointMassWalls.from_layout("wall", agent_radius=AGENT_RADIUS, step_size=STEP_SIZE, smoothing=0.0),
            horizon,
            pairs,  # type: ignore[arg-type]
            lambda states, goal: bool((np.linalg.norm(states - goal, axis=1) < WALLS_TOLERANCE).any()),
            description=f"exact grid-world walls, start and goal in opposite rooms, within 0.3 at some step (H={horizon})",
            min_steps=wall_min_steps,
        )

    return build


PROBLEMS: dict[str, Callable[..., PlanningProblem]] = {
    "double_integrator_2d": _double_integrator(2),
    "double_integrator_3d": _double_integrator(3),
    "cartpole_swingup": _cartpole_swingup,
    "pendulum_swingup": _pendulum_swingup,
    "mountain_car": _mountain_car,
    "walls_across_h50": _walls(50),
    "walls_across_h80": _walls(80),
}


def make_problem(name: str, instances: int = 32, seed: int = 0, spread: float = 1.0) -> PlanningProblem:
    """Build planner-gym problem ``name`` with ``instances`` seeded (start, goal) pairs, the starts'
    deviations from the nominal start scaled by ``spread`` (see the module docstring; 1 = the gym's)."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of {sorted(PROBLEMS)}")
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    if not spread > 0:
        raise ValueError(f"spread must be positive, got {spread!r}")
    return PROBLEMS[name](int(instances), int(seed), spread=float(spread))
