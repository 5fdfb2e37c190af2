"""Pictures of recorded episodes: ``plans.png`` (executed path vs labelled plans and GRASP's virtual
states) and the episode GIF with the path so far and the current plan drawn on each frame.

Used by ``mpc-grasp run`` and the demo; :mod:`mpc_grasp.control.episodes` records what they draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from mpc_grasp.atomic import atomic_path
from mpc_grasp.cli.commands import plural

if TYPE_CHECKING:  # evaluation imports nothing from here at run time: no cycle
    from mpc_grasp.control.episodes import EpisodeRecord, PlanSnapshot

__all__ = ["annotate_frames", "draw_trail_and_plan", "episodes_figure", "plot_episodes", "save_gif"]

TRAIL_COLOR = (190, 30, 30)
"""Executed path so far (GIF) / executed path (plots: tab:red)."""
PLAN_COLOR = (31, 119, 180)
"""Current plan's predicted states (matplotlib's tab:blue)."""
VIRTUAL_COLOR = (255, 127, 14)
"""GRASP's virtual states (matplotlib's tab:orange)."""


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10, min_size: int = 256) -> Path:
    """Write RGB frames ``[H, W, 3]`` as a looping GIF (Pillow) to ``path``, atomically; small renders are
    upscaled (nearest).

    Frames are quantised with Pillow's fast octree (no dithering): several times faster than Pillow's
    default, and flat env renders keep their colours. See docs/decisions.md#save_gif-quantiser.
    """
    from PIL import Image

    if not frames:
        raise ValueError("no frames to write")
    images = [
        Image.fromarray(_upscale(frame, min_size)).quantize(
            255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        for frame in frames
    ]
    path = Path(path)
    duration = max(20, int(round(1000 / max(1, fps))))
    with atomic_path(path) as temporary:
        images[0].save(temporary, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


def _upscale(frame: np.ndarray, min_size: int) -> np.ndarray:
    """An RGB uint8 copy of ``frame`` (alpha dropped), repeated (nearest) until its long side is >= ``min_size``."""
    array = np.asarray(frame, dtype=np.uint8)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"frames must be [H, W, 3] RGB arrays, got shape {array.shape}")
    scale = max(1, int(np.ceil(min_size / max(array.shape[:2]))))
    array = array[..., :3]
    return array.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else array.copy()


def annotate_frames(env: gym.Env, record: EpisodeRecord, min_size: int = 256) -> list[np.ndarray]:
    """``record.frames`` upscaled to ``min_size`` with the path so far and the current plan drawn on.

    Frame t shows the executed states 0..t (dark red line), the predicted states of the plan in
    force at step t from step t on (blue line and dots; GRASP's virtual states ahead in orange) and
    a caption naming the step and the plan's step. Drawing needs states that are positions in the
    render: grid worlds with position observations. Other envs (cart-pole, Pendulum, pixel
    observations) get their plain upscaled renders, as the env draws them.
    """
    frames = [_upscale(frame, min_size) for frame in record.frames]
    to_pixels = _render_positions(env, record)
    if to_pixels is None:
        return frames
    annotated = []
    for t, frame in enumerate(frames):
        plan = _plan_in_force(record.plans, t)
        planned = virtual = None
        caption = f"step {t}"
        if plan is not None:
            ahead = min(t - plan.step, len(plan.states) - 1)
            planned = to_pixels(plan.states[ahead:], frame.shape)
            if plan.virtual_states is not None:
                virtual = to_pixels(plan.virtual_states[max(0, ahead - 1) :], frame.shape)
            caption += f" | plan made at step {plan.step}"
        trail = to_pixels(record.states[: t + 1], frame.shape)
        annotated.append(draw_trail_and_plan(frame, trail, planned, virtual, caption))
    return annotated


def draw_trail_and_plan(
    frame: np.ndarray,
    trail: np.ndarray,
    planned: np.ndarray | None = None,
    virtual: np.ndarray | None = None,
    caption: str | None = None,
) -> np.ndarray:
    """A copy of ``frame`` with the path so far, a plan and virtual states drawn (pixel (col, row) arrays
    ``[N, 2]``), a caption at the top and a colour key at the bottom."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    width = max(2, image.width // 128)  # line width and dot radius: 2 px at 256 px
    if virtual is not None:
        for col, row in np.asarray(virtual, dtype=np.float64):
            draw.ellipse((col - width, row - width, col + width, row + width), fill=VIRTUAL_COLOR)
    if planned is not None and len(planned):
        points = [tuple(p) for p in np.asarray(planned, dtype=np.float64)]
        draw.line(points, fill=PLAN_COLOR, width=width)
        for col, row in points:
            draw.ellipse((col - width, row - width, col + width, row + width), outline=PLAN_COLOR, width=1)
    points = [tuple(p) for p in np.asarray(trail, dtype=np.float64)]
    if len(points) > 1:
        draw.line(points, fill=TRAIL_COLOR, width=width, joint="curve")
    font = ImageFont.load_default()
    if caption:
        box = draw.textbbox((3, 2), caption, font=font)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(255, 255, 255))
        draw.text((3, 2), caption, fill=(0, 0, 0), font=font)
    key = [("path so far", TRAIL_COLOR), ("plan", PLAN_COLOR)] + (
        [("virtual states", VIRTUAL_COLOR)] if virtual is not None else []
    )
    x: float = 3  # PIL's textbbox is annotated to return floats
    y = image.height - 14
    for text, color in key:
        box = draw.textbbox((x, y), text, font=font)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(255, 255, 255))
        draw.text((x, y), text, fill=color, font=font)
        x = box[2] + 8
    return np.asarray(image)


def _plan_in_force(plans: Sequence[PlanSnapshot], step: int) -> PlanSnapshot | None:
    """The newest plan made at or before ``step`` (the one whose actions are executed there)."""
    current = None
    for plan in plans:
        if plan.step > step:
            break
        current = plan
    return current


PixelMap = Callable[[np.ndarray, tuple[int, ...]], np.ndarray]
"""``to_pixels(states [N, 2], frame_shape) -> [N, 2]`` (col, row) pixel coordinates in a frame."""


def _render_positions(env: gym.Env, record: EpisodeRecord) -> PixelMap | None:
    """The :data:`PixelMap` of a grid world whose states are (x, y) positions (y up, pixel centres as
    ``GridWorldEnv._pixel_grid`` draws them); None for any other env or observation."""
    from mpc_grasp.envs.grid_world import GridWorldEnv

    unwrapped = env.unwrapped
    if not isinstance(unwrapped, GridWorldEnv) or record.states.ndim != 2 or record.states.shape[1] != 2:
        return None
    world_width, world_height = float(unwrapped.width), float(unwrapped.height)

    def to_pixels(states: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        states = np.asarray(states, dtype=np.float64).reshape(-1, 2)
        cols = states[:, 0] / world_width * shape[1] - 0.5
        rows = (world_height - states[:, 1]) / world_height * shape[0] - 0.5
        return np.stack([cols, rows], axis=-1)

    return to_pixels


MAX_PLANS_DRAWN = 4
"""Plans labelled in plans.png: the first and every k-th after it (k chosen so at most this many)."""


def _plan_stride(count: int) -> int:
    """k such that the first and every k-th of ``count`` plans are at most :data:`MAX_PLANS_DRAWN`."""
    return max(1, int(np.ceil(count / MAX_PLANS_DRAWN)))


def _plans_to_show(plans: Sequence[PlanSnapshot]) -> list[PlanSnapshot]:
    """The first plan and every k-th after it (see :func:`_plan_stride`), each drawn with its step."""
    return list(plans[:: _plan_stride(len(plans))])


def _outcome(record: EpisodeRecord) -> str:
    """One phrase for a panel title: reached the goal at step k, did not reach it, or (success unknown) the return."""
    if record.success_any is None:
        return f"return {record.episode_return:.1f} in {plural(record.steps, 'step')}"
    if record.success_any:
        return f"reached the goal at step {record.first_success_step} of {record.steps}"
    return f"did not reach the goal in {plural(record.steps, 'step')}"


def _shown_note(plans: Sequence[PlanSnapshot]) -> str:
    """Which plans a panel draws, e.g. ``all 3 plans drawn`` or ``4 of 12 plans drawn (the first and every 3rd)``."""
    stride = _plan_stride(len(plans))
    if not plans:
        return "no plans recorded"
    if stride == 1:
        return f"all {plural(len(plans), 'plan')} drawn" if len(plans) > 1 else "1 plan, drawn"
    suffix = "th" if 10 <= stride % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(stride % 10, "th")
    return f"{len(plans[::stride])} of {len(plans)} plans drawn (the first and every {stride}{suffix})"


def episodes_figure(
    env: gym.Env,
    records: Sequence[EpisodeRecord],
    title: str | None = None,
    max_panels: int = 3,
    goal: Any = None,
) -> Any:
    """The figure :func:`plot_episodes` saves (returned open, e.g. to inspect its legends).

    Grid worlds with position states: one map panel per episode (up to ``max_panels``). Other envs:
    state dimensions vs control step for the first episode. Both draw the start, the goal, the
    executed path and the first plan plus every k-th (at most 4, each labelled with the step it was
    made at; in the time plot the others are faint), and GRASP's virtual states of the first plan
    drawn. ``goal`` is used for records whose env announced none (e.g. ``mpc-grasp run --goal``).
    """
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    from mpc_grasp.envs.cartpole import ContinuousCartPoleEnv

    if not records:
        raise ValueError("no episodes to plot")
    fallback_goal = None if goal is None else np.asarray(goal, dtype=np.float64)
    unwrapped = env.unwrapped
    if _render_positions(env, records[0]) is not None:
        return _map_figure(unwrapped, records[:max_panels], fallback_goal, title)
    names: tuple[str, ...] | None = None
    if isinstance(unwrapped, ContinuousCartPoleEnv):
        names = ("x", "x_dot", "cos theta", "sin theta", "theta_dot")
    elif isinstance(unwrapped, PendulumEnv):
        names = ("cos theta", "sin theta", "theta_dot")
    return _state_figure(records[0], fallback_goal, names, title)


def plot_episodes(
    env: gym.Env,
    records: Sequence[EpisodeRecord],
    path: str | Path,
    title: str | None = None,
    max_panels: int = 3,
    goal: Any = None,
) -> Path:
    """Executed path vs planned rollouts and GRASP's virtual states, saved to ``path`` (see :func:`episodes_figure`)."""
    from mpc_grasp.plotting import save_figure

    return save_figure(episodes_figure(env, records, title=title, max_panels=max_panels, goal=goal), path)


def _plan_colors(count: int) -> list[Any]:
    """Dark to light blues, so the first plan drawn is the darkest."""
    import matplotlib.pyplot as plt

    return [plt.cm.Blues(0.95 - 0.5 * k / max(1, count - 1)) for k in range(count)]


def _map_figure(
    grid_env: Any, records: Sequence[EpisodeRecord], fallback_goal: np.ndarray | None, title: str | None
) -> Any:
    """One grid-world map panel per record, each with its own legend below it."""
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import draw_layout

    fig, axes = plt.subplots(1, len(records), figsize=(4.4 * len(records), 4.8), squeeze=False)
    for ax, record in zip(axes[0], records):
        draw_layout(ax, grid_env.layout)
        shown = _plans_to_show(record.plans)
        for plan, color in zip(shown, _plan_colors(len(shown))):
            ax.plot(
                plan.states[:, 0],
                plan.states[:, 1],
                "-",
                color=color,
                lw=1.5,
                label=f"plan made at step {plan.step} (model rollout)",
            )
        if shown and shown[0].virtual_states is not None:
            virtual = shown[0].virtual_states
            ax.plot(
                virtual[:, 0],
                virtual[:, 1],
                "o",
                ms=3,
                color="tab:orange",
                alpha=0.7,
                label=f"GRASP virtual states (plan at step {shown[0].step})",
            )
        ax.plot(record.states[:, 0], record.states[:, 1], "-", color="tab:red", lw=2, label="executed path (real env)")
        ax.plot(*record.states[0], "ks", ms=6, label="start")
        goal = record.goal if record.goal is not None else fallback_goal
        if goal is not None:
            radius = float(getattr(grid_env, "goal_radius", 0.3))
            ax.add_patch(
                plt.Circle(tuple(goal), radius, color="tab:green", alpha=0.3, label=f"goal region (radius {radius:g})")
            )
            ax.plot(*goal, "*", color="tab:green", ms=12, label="goal")
        ax.set_title(f"episode {record.index}: {_outcome(record)}\n{_shown_note(record.plans)}", fontsize=9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _state_figure(
    record: EpisodeRecord, goal: np.ndarray | None, names: Sequence[str] | None, title: str | None
) -> Any:
    """State dimensions vs control step of one record: executed, labelled plans, faint other plans, virtual states."""
    import matplotlib.pyplot as plt

    executed = np.asarray(record.states, dtype=np.float64)
    if executed.ndim != 2:
        raise ValueError(f"states must be [steps+1, S] vectors to plot, got shape {executed.shape}")
    goal = record.goal if record.goal is not None else goal
    dims = executed.shape[1]
    shown = _plans_to_show(record.plans)
    others = [plan for plan in record.plans if all(plan is not s for s in shown)]
    colors = _plan_colors(len(shown))
    fig, axes = plt.subplots(dims, 1, figsize=(9, 1.6 * dims + 1.0), sharex=True, squeeze=False)
    for d, ax in enumerate(axes[:, 0]):
        for j, plan in enumerate(others):
            ax.plot(
                plan.step + np.arange(len(plan.states)),
                plan.states[:, d],
                "-",
                color="tab:blue",
                lw=0.5,
                alpha=0.25,
                label=f"other plans ({len(others)})" if j == 0 else None,
            )
        for plan, color in zip(shown, colors):
            ax.plot(
                plan.step + np.arange(len(plan.states)),
                plan.states[:, d],
                "-",
                color=color,
                lw=1.5,
                label=f"plan made at step {plan.step} (model rollout)",
            )
        if shown and shown[0].virtual_states is not None:
            virtual = shown[0].virtual_states
            ax.plot(
                shown[0].step + 1 + np.arange(len(virtual)),
                virtual[:, d],
                "o",
                ms=2.5,
                color="tab:orange",
                alpha=0.7,
                label=f"GRASP virtual states (plan at step {shown[0].step})",
            )
        ax.plot(np.arange(len(executed)), executed[:, d], "-", color="tab:red", lw=2, label="executed (real env)")
        ax.plot(0, executed[0, d], "ks", ms=5, label="start")
        if goal is not None and d < len(goal):
            ax.axhline(float(goal[d]), color="tab:green", ls="--", lw=1, label="goal")
        ax.set_ylabel(names[d] if names is not None and d < len(names) else f"state[{d}]", fontsize=8)
        ax.margins(y=0.12)  # keep a goal line at the data's edge visible
    axes[-1, 0].set_xlabel("control step")
    axes[0, 0].set_title(f"episode {record.index}: {_outcome(record)}; {_shown_note(record.plans)}", fontsize=9)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.9)
    if title:
        fig.suptitle(title)
    return fig
