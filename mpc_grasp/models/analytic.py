"""Analytic, differentiable world models with known answers, for tests and planner benchmarks.

- ``LinearSystem``: s' = A s + B a (every planner must solve it).
- ``PointMassWalls``: the grid world's 2-D point mass, s' = s + step·a, with walls as a smooth
  push-out in the dynamics (the agent stops at walls). Straight-line plans through a wall fail,
  so it separates non-greedy planners from greedy ones.
- ``CartPoleSwingupModel``: the cart-pole envs' physics on their observation
  ``[x, x_dot, cos, sin, theta_dot]``, to tell planner failures from model failures on swing-up.
All implement the ``WorldModel`` interface (``state_dim``, ``action_dim``, ``forward``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mpc_grasp.envs.cartpole import FORCE_MAG, euler_step
from mpc_grasp.validation import as_float_tensor


class LinearSystem(nn.Module):
    """Linear dynamics ``s' = A s + B a``, batched over any leading shape."""

    state_matrix: Tensor  # buffers (register_buffer)
    action_matrix: Tensor

    def __init__(self, state_matrix: Any, action_matrix: Any) -> None:
        super().__init__()
        state_matrix = as_float_tensor(state_matrix, "state_matrix", allowed_ndims=(2,))
        action_matrix = as_float_tensor(action_matrix, "action_matrix", allowed_ndims=(2,))
        if state_matrix.shape[0] != state_matrix.shape[1] or action_matrix.shape[0] != state_matrix.shape[0]:
            raise ValueError(
                f"need A [S, S] and B [S, A], got {tuple(state_matrix.shape)} and {tuple(action_matrix.shape)}"
            )
        self.register_buffer("state_matrix", state_matrix)
        self.register_buffer("action_matrix", action_matrix)
        self.state_dim = int(state_matrix.shape[0])
        self.action_dim = int(action_matrix.shape[1])

    @classmethod
    def double_integrator(cls, dt: float = 0.1, dims: int = 2) -> LinearSystem:
        """Position/velocity per axis, force input: state [p_1..p_d, v_1..v_d], action [f_1..f_d]."""
        eye = np.eye(dims)
        state_matrix = np.block([[eye, dt * eye], [np.zeros((dims, dims)), eye]])
        action_matrix = np.vstack([0.5 * dt**2 * eye, dt * eye])
        return cls(state_matrix, action_matrix)

    @classmethod
    def point(cls, step_size: float = 0.25, dims: int = 2) -> LinearSystem:
        """Velocity-controlled point: s' = s + step_size · a."""
        return cls(np.eye(dims), step_size * np.eye(dims))

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        return state @ self.state_matrix.T + action @ self.action_matrix.T


class PointMassWalls(nn.Module):
    """2-D velocity-controlled point among axis-aligned wall boxes, differentiable.

    Like the env, motion is resolved per axis (x, then y): after each sub-step the position is
    pushed out of the wall it penetrates deepest, back along the axis it moved on, through the
    nearest *open* face of that axis (faces shared with another wall cell are closed, so there is
    no seam to slip through). Pushing along the motion axis only is what makes a corner block the
    agent as in the env, instead of popping it round the corner into a door. The push is exact
    projection (piecewise linear, differentiable almost everywhere; ``smoothing > 0`` replaces it
    by a softplus cushion of that width). In contact the normal component of the action has no
    effect — the local minimum that traps greedy planners.
    """

    # buffers (register_buffer): declared so type checkers see Tensors, not ``Tensor | Module``
    boxes: Tensor
    closed_penalty: Tensor
    directions: Tensor
    axis_masks: Tensor
    axis_face_penalty: Tensor

    CONTACT_TOLERANCE = 1e-4
    """Penetrations below this are float round-off of an earlier push (a point resting on a face)."""

    def __init__(
        self, boxes: Any, open_faces: Any = None, step_size: float = 0.25, smoothing: float = 0.02, passes: int = 2
    ) -> None:
        super().__init__()
        boxes_t = as_float_tensor(boxes, "boxes", allowed_ndims=(2,), trailing_shape=(4,))
        if bool((boxes_t[:, 2] <= boxes_t[:, 0]).any() or (boxes_t[:, 3] <= boxes_t[:, 1]).any()):
            raise ValueError("every box must be (xmin, ymin, xmax, ymax) with xmax > xmin and ymax > ymin")
        if step_size <= 0 or smoothing < 0 or passes < 1:
            raise ValueError(f"need step_size > 0, smoothing >= 0, passes >= 1, got {step_size}, {smoothing}, {passes}")
        faces = (
            torch.ones(len(boxes_t), 4, dtype=torch.bool)
            if open_faces is None
            else torch.as_tensor(np.asarray(open_faces), dtype=torch.bool)
        )
        if faces.shape != (len(boxes_t), 4):
            raise ValueError(f"open_faces must have shape ({len(boxes_t)}, 4), got {tuple(faces.shape)}")
        # a box with no open face (e.g. where a wall meets the border) can still be clipped at a corner:
        # let it push out along any face; later passes then push out of the neighbour it lands in
        faces = torch.where(faces.any(dim=1, keepdim=True), faces, torch.ones_like(faces))
        self.register_buffer("boxes", boxes_t)
        self.max_depth = float(torch.maximum(boxes_t[:, 2] - boxes_t[:, 0], boxes_t[:, 3] - boxes_t[:, 1]).max())
        # closed faces get a huge penetration so they are never chosen as the way out
        self.register_buffer("closed_penalty", (~faces).float() * 1e4)
        # push-out directions for the faces (left, right, bottom, top)
        self.register_buffer("directions", torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]))
        self.register_buffer("axis_masks", torch.eye(2))
        # a sub-step along x may leave a wall only through its left/right faces, along y through bottom/top
        self.register_buffer("axis_face_penalty", torch.tensor([[0.0, 0.0, 1e4, 1e4], [1e4, 1e4, 0.0, 0.0]]))
        self.step_size = float(step_size)
        self.smoothing = float(smoothing)
        self.passes = int(passes)
        self.state_dim = 2
        self.action_dim = 2

    @classmethod
    def from_grid(cls, rows: Any, agent_radius: float = 0.1, **kwargs: Any) -> PointMassWalls:
        """Walls from a char grid (``'#'`` wall), in the grid world's coordinates: unit cells, y up,
        first row on top; each wall cell inflated by ``agent_radius`` (the agent's half-width)."""
        grid = np.array([list(row) for row in rows]) == "#"
        height, width = grid.shape

        def free(r: int, c: int) -> bool:
            return 0 <= r < height and 0 <= c < width and not bool(grid[r, c])

        boxes, open_faces = [], []
        for row in range(height):  # merge runs of wall cells whose top/bottom faces agree (fewer boxes, same walls)
            col = 0
            while col < width:
                if not grid[row, col]:
                    col += 1
                    continue
                vertical = (free(row + 1, col), free(row - 1, col))  # (bottom open, top open)
                end = col
                while (
                    end + 1 < width
                    and grid[row, end + 1]
                    and (free(row + 1, end + 1), free(row - 1, end + 1)) == vertical
                ):
                    end += 1
                y0 = height - 1 - row
                boxes.append([col - agent_radius, y0 - agent_radius, end + 1 + agent_radius, y0 + 1 + agent_radius])
                open_faces.append([free(row, col - 1), free(row, end + 1), *vertical])
                col = end + 1
        return cls(np.array(boxes, dtype=np.float32), np.array(open_faces), **kwargs)

    @classmethod
    def from_layout(cls, layout: str, agent_radius: float = 0.1, **kwargs: Any) -> PointMassWalls:
        """The walls of grid-world layout ``layout`` (same geometry as ``mpc_grasp/GridWorld-v0``)."""
        from mpc_grasp.envs.grid_world import get_layout

        return cls.from_grid(get_layout(layout), agent_radius=agent_radius, **kwargs)

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        displacement = self.step_size * action.clamp(-1.0, 1.0)
        position = state
        for axis in (0, 1):  # move along x, resolve contacts, then along y: the env's sliding physics
            position = position + displacement * self.axis_masks[axis]
            for _ in range(self.passes):  # later passes resolve concave corners (two walls at once)
                position = position + self.push_out(position, axis)
        return position

    def push_out(self, position: Tensor, axis: int | None = None) -> Tensor:
        """Displacement that moves ``position`` [..., 2] out of the wall it is deepest inside
        (along ``axis`` only, if given: the axis of the sub-step that moved it in)."""
        x, y = position[..., None, 0], position[..., None, 1]  # [..., 1]
        xmin, ymin, xmax, ymax = self.boxes.unbind(-1)  # [K]
        penetration = torch.stack([x - xmin, xmax - x, y - ymin, ymax - y], dim=-1)  # [..., K, 4]
        inside = penetration.min(dim=-1).values  # signed depth, > 0 inside the box: [..., K]
        penalty = self.closed_penalty
        if axis is not None:  # faces of the other axis only for round-off contacts (a point left on a face)
            penalty = penalty + torch.where(penetration < self.CONTACT_TOLERANCE, 0.0, self.axis_face_penalty[axis])
        exit_depth, face = (penetration + penalty).min(dim=-1)  # nearest open face (of the motion axis)
        deepest = inside.argmax(dim=-1, keepdim=True)  # one wall per pass: no double pushes
        inside, exit_depth = inside.gather(-1, deepest)[..., 0], exit_depth.gather(-1, deepest)[..., 0]
        face = face.gather(-1, deepest)[..., 0]
        tau = self.smoothing
        if tau > 0:  # smooth: a softplus cushion of width tau at the face, soft inside-gate
            magnitude = (
                tau
                * nn.functional.softplus(exit_depth.clamp_max(self.max_depth) / tau)
                * torch.sigmoid(4 * inside / tau)
            )
        else:  # exact projection onto the face
            magnitude = torch.where(inside > 0, exit_depth.clamp(0.0, self.max_depth), torch.zeros_like(exit_depth))
        return magnitude[..., None] * self.directions[face]

    def inside_wall(self, position: Tensor, margin: float = 0.0) -> Tensor:
        """Boolean [...]: is ``position`` more than ``margin`` inside any wall box?"""
        x, y = position[..., None, 0], position[..., None, 1]
        xmin, ymin, xmax, ymax = self.boxes.unbind(-1)
        inside = (x > xmin + margin) & (x < xmax - margin) & (y > ymin + margin) & (y < ymax - margin)
        return inside.any(-1)


class CartPoleSwingupModel(nn.Module):
    """Gymnasium's cart-pole physics (explicit Euler, ``frame_skip`` steps of ``tau``) on the
    observation ``[x, x_dot, cos(theta), sin(theta), theta_dot]``, action in [-1, 1] (x 10 N).

    Matches ``mpc_grasp/CartPoleSwingup-v0`` (``frame_skip=2``) and ``CartPoleBalance-v0``
    (``frame_skip=1``) up to float32 round-off; differentiable in state and action.
    """

    def __init__(self, frame_skip: int = 2) -> None:
        super().__init__()
        if int(frame_skip) != frame_skip or frame_skip < 1:
            raise ValueError(f"frame_skip must be a positive integer, got {frame_skip}")
        self.frame_skip = int(frame_skip)
        self.state_dim = 5
        self.action_dim = 1

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        x, x_dot, cos, sin, theta_dot = state.unbind(-1)
        theta = torch.atan2(sin, cos)
        force = FORCE_MAG * action[..., 0].clamp(-1.0, 1.0)
        for _ in range(self.frame_skip):  # the env's own physics step, on tensors
            x, x_dot, theta, theta_dot = euler_step(x, x_dot, theta, theta_dot, force, torch.cos, torch.sin)
        return torch.stack([x, x_dot, torch.cos(theta), torch.sin(theta), theta_dot], dim=-1)
