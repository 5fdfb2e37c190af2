"""Diagnostics of GRASP plans in a learned latent space.

* :func:`gradient_reshaping_histories` runs the same GRASP problem twice, with and without the
  stop-gradient on the model's state input (``GraspConfig.detach_states``), and returns the
  per-iteration gradient norms w.r.t. the virtual states and the actions (plus the loss split):
  the direct way to see what the gradient reshaping changes.
* :func:`plan_filmstrip` turns a plan into labelled image rows: the decoded virtual states, the
  decoded model rollout and (optionally) the frames the real environment showed when the plan's
  actions were executed, for models with a ``decode(latent) -> image`` method such as
  :class:`~mpc_grasp.models.pixel.PixelWorldModel`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mpc_grasp.models.pixel import image_strip
from mpc_grasp.planners import PlanResult, make_planner

__all__ = ["HISTORY_KEYS", "gradient_reshaping_histories", "plan_filmstrip"]

HISTORY_KEYS = ("state_grad_norm", "action_grad_norm", "loss", "dynamics_loss", "goal_loss")
"""Per-iteration GRASP histories (``PlanResult.info``) collected by :func:`gradient_reshaping_histories`."""


def gradient_reshaping_histories(
    model: Any,
    starts: Any,
    goals: Any,
    horizon: int,
    *,
    iterations: int = 200,
    action_low: Any = -1.0,
    action_high: Any = 1.0,
    **grasp_options: Any,
) -> dict[str, dict[str, np.ndarray]]:
    """Gradient norms of GRASP with (``"detached"``) and without (``"full"``) the stop-gradient.

    ``starts`` / ``goals``: model states ``[N, S]`` (or one ``[S]`` each). Both variants run exactly
    ``iterations`` iterations (no early stop) from the same seed and initialisation;
    ``grasp_options`` go to both (e.g. ``num_candidates``, ``sync_every``). Returns, per variant,
    the arrays of :data:`HISTORY_KEYS` (each ``[iterations]``, averaged over problems and
    candidates) plus ``final_distance`` (``[N]``, model-rollout distance to the goal).
    """
    if "detach_states" in grasp_options or "goal_tolerance" in grasp_options:
        raise ValueError("detach_states and goal_tolerance are set by gradient_reshaping_histories itself")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    start = torch.as_tensor(starts, dtype=torch.float32)
    goal = torch.as_tensor(goals, dtype=torch.float32)
    if start.ndim == 1:
        start, goal = start[None], goal[None]
    if start.shape != goal.shape or start.ndim != 2:
        raise ValueError(
            f"starts and goals must both be [S] or [N, S] of one shape, got {tuple(start.shape)} and {tuple(goal.shape)}"
        )
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, detach in (("detached", True), ("full", False)):
        planner = make_planner(
            "grasp",
            model,
            horizon,
            action_low=action_low,
            action_high=action_high,
            iterations=int(iterations),
            detach_states=detach,
            goal_tolerance=None,
            **grasp_options,
        )
        result = planner.plan_batch(start, goal)
        missing = [key for key in HISTORY_KEYS if key not in result.info]
        if missing:  # pragma: no cover - GRASP always records them
            raise RuntimeError(f"GRASP result lacks the histories {missing}")
        out[name] = {key: np.asarray(result.info[key], dtype=np.float64) for key in HISTORY_KEYS}
        out[name]["final_distance"] = np.asarray(result.info["final_distance"], dtype=np.float64)
    return out


@torch.no_grad()
def plan_filmstrip(
    model: Any,
    plan: PlanResult,
    goal: Any,
    real_frames: Any = None,
    *,
    every: int = 1,
    gap: int = 2,
) -> list[tuple[str, np.ndarray]]:
    """Labelled uint8 image rows of one (unbatched) plan, time steps 0, every, 2·every, ..., T.

    Rows: ``"virtual states (decoded)"`` — s_0, GRASP's virtual states s_1..s_{T-1}, then the goal
    s_T := g (only when ``plan.virtual_states`` exists); ``"model rollout (decoded)"`` — the plan's
    model rollout; ``"real env"`` — ``real_frames`` (``[T'+1, H, W, C]`` uint8 observations, e.g.
    from executing the actions; an episode that ended early is padded with its last frame).
    Stacked-frame images show their most recent frame.
    """
    if not hasattr(model, "decode"):
        raise TypeError(f"{type(model).__name__} has no decode(latent) method; a filmstrip needs a decoder")
    if plan.states.ndim != 2:
        raise ValueError(
            f"plan_filmstrip needs an unbatched plan (states [T+1, S]), got states of shape {tuple(plan.states.shape)}"
        )
    if int(every) != every or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    horizon = plan.horizon
    steps = np.unique(np.r_[np.arange(0, horizon + 1, every), horizon])
    goal_t = torch.as_tensor(goal, dtype=torch.float32).reshape(1, -1)

    def decoded(latents: torch.Tensor) -> np.ndarray:
        images = model.decode(latents[steps])[..., -3:].clamp(0, 1)
        return (images * 255.0).round().to(torch.uint8).cpu().numpy()

    rows: list[tuple[str, np.ndarray]] = []
    if plan.virtual_states is not None:
        lifted = torch.cat(
            [plan.states[:1], plan.virtual_states.reshape(-1, plan.states.shape[-1]), goal_t.to(plan.states)]
        )
        rows.append(("virtual states (decoded)", image_strip(decoded(lifted), gap)))
    rows.append(("model rollout (decoded)", image_strip(decoded(plan.states), gap)))
    if real_frames is not None:
        frames = np.asarray(real_frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) == 0:
            raise ValueError(f"real_frames must be uint8 images [T+1, H, W, C], got {frames.dtype} {frames.shape}")
        if len(frames) > horizon + 1:
            raise ValueError(f"got {len(frames)} real frames for a plan of horizon {horizon} (at most {horizon + 1})")
        padded = np.concatenate([frames, np.repeat(frames[-1:], horizon + 1 - len(frames), axis=0)])
        rows.append(("real env", image_strip(np.ascontiguousarray(padded[steps][..., -3:]), gap)))
    return rows
