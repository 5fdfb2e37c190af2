"""Matplotlib figures people look at: plans over the grid-world map, optimisation curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def draw_layout(ax: Any, layout: str) -> None:
    """Draw the walls of grid-world ``layout`` (unit cells, y up) on ``ax``."""
    from mpc_grasp.envs.grid_world import map_size, wall_boxes

    for xmin, ymin, xmax, ymax in wall_boxes(layout):
        ax.add_patch(plt.Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, color="0.3", lw=0))
    width, height = map_size(layout)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_paths(
    ax: Any,
    start: Sequence[float],
    goal: Sequence[float],
    *,
    planned: Any = None,
    virtual: Any = None,
    executed: Any = None,
    goal_radius: float = 0.3,
) -> None:
    """Overlay the model rollout (planned), GRASP's virtual states and the executed path."""
    if virtual is not None:
        virtual = np.asarray(virtual)
        ax.plot(virtual[:, 0], virtual[:, 1], "o", ms=3, color="tab:orange", alpha=0.7, label="virtual states")
    if planned is not None:
        planned = np.asarray(planned)
        ax.plot(planned[:, 0], planned[:, 1], "-", color="tab:blue", lw=1.5, label="planned (model rollout)")
    if executed is not None:
        executed = np.asarray(executed)
        ax.plot(executed[:, 0], executed[:, 1], "-", color="tab:red", lw=2, label="executed (real env)")
    ax.add_patch(plt.Circle(tuple(goal), goal_radius, color="tab:green", alpha=0.5))
    ax.plot(*start, "ks", ms=6)
    ax.plot(*goal, "*", color="tab:green", ms=12)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` (creating parent folders) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_plans_on_layout(
    layout: str,
    panels: Sequence[dict[str, Any]],
    path: str | Path,
    suptitle: str | None = None,
) -> Path:
    """One map panel per entry of ``panels`` (keys: title, start, goal, planned, virtual, executed)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        draw_layout(ax, layout)
        draw_paths(
            ax, panel["start"], panel["goal"], planned=panel.get("planned"), virtual=panel.get("virtual"),
            executed=panel.get("executed"),
        )
        ax.set_title(panel.get("title", ""), fontsize=10)
    axes[0][0].legend(loc="lower left", fontsize=7, framealpha=0.9)
    if suptitle:
        fig.suptitle(suptitle)
    return save_figure(fig, path)


def plot_state_trajectories(
    executed: Any,
    plans: Sequence[tuple[int, Any, Any]],
    path: str | Path,
    goal: Any = None,
    dim_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """State dimensions vs time: the executed states, each plan's model rollout from its step, virtual states.

    ``plans`` holds ``(step, rollout states [T+1, S], virtual states [T-1, S] or None)``; the first
    plan is drawn bold, later ones thin. For envs without a map (cart-pole, ...).
    """
    executed = np.asarray(executed, dtype=np.float64)
    if executed.ndim != 2:
        raise ValueError(f"executed must be [steps+1, S], got shape {executed.shape}")
    dims = executed.shape[1]
    names = list(dim_names) if dim_names is not None else [f"state[{i}]" for i in range(dims)]
    fig, axes = plt.subplots(dims, 1, figsize=(8, 1.6 * dims + 0.8), sharex=True, squeeze=False)
    for d, ax in enumerate(axes[:, 0]):
        for k, (step, states, virtual) in enumerate(plans):
            states = np.asarray(states)
            t = step + np.arange(len(states))
            ax.plot(t, states[:, d], "-", color="tab:blue", lw=1.5 if k == 0 else 0.6, alpha=1.0 if k == 0 else 0.35,
                    label="planned (model rollout)" if k == 0 else None)
            if k == 0 and virtual is not None:
                virtual = np.asarray(virtual)
                ax.plot(step + 1 + np.arange(len(virtual)), virtual[:, d], "o", ms=2.5, color="tab:orange", alpha=0.7,
                        label="virtual states (first plan)")
        ax.plot(np.arange(len(executed)), executed[:, d], "-", color="tab:red", lw=2, label="executed (real env)")
        if goal is not None:
            ax.axhline(float(np.asarray(goal)[d]), color="tab:green", ls="--", lw=1, label="goal")
        ax.set_ylabel(names[d] if d < len(names) else f"state[{d}]", fontsize=8)
    axes[-1, 0].set_xlabel("control step")
    axes[0, 0].legend(loc="upper right", fontsize=7, framealpha=0.9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
