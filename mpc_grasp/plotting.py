"""Matplotlib figures people look at: plans over the grid-world map, optimisation curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mpc_grasp.atomic import atomic_path  # noqa: E402


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
    ax.add_patch(plt.Circle((goal[0], goal[1]), goal_radius, color="tab:green", alpha=0.5))
    ax.plot(*start, "ks", ms=6)
    ax.plot(*goal, "*", color="tab:green", ms=12)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` to exactly ``path`` (format from its suffix, PNG without one; parent folders created),
    atomically, and close it (also when saving fails)."""
    path = Path(path)
    try:
        with atomic_path(path) as temporary:
            fig.savefig(temporary, dpi=120, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    finally:
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
            ax,
            panel["start"],
            panel["goal"],
            planned=panel.get("planned"),
            virtual=panel.get("virtual"),
            executed=panel.get("executed"),
        )
        ax.set_title(panel.get("title", ""), fontsize=10)
    axes[0][0].legend(loc="lower left", fontsize=7, framealpha=0.9)
    if suptitle:
        fig.suptitle(suptitle)
    return save_figure(fig, path)
