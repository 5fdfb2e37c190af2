"""Tables and figures of the pixel benchmark (:mod:`bench.suites.pixel`): the Markdown report, success vs
horizon, GRASP's gradient norms with and without the detach, and the decoded-plan filmstrips.

Everything reads the report dictionary (or its parts) only, so ``results/pixel_bench.json`` and
``results/pixel_h30/pixel_bench.json`` of earlier runs render with the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mpc_grasp.plotting import save_figure

__all__ = ["markdown", "plot_filmstrips", "plot_grad_norms", "plot_success"]


def _variant_order(rows: Sequence[Mapping[str, Any]], report: Mapping[str, Any]) -> list[str]:
    """The run's variants in the order it ran them, then any other variant of an older report."""
    seen = {r["variant"] for r in rows}
    ran = list(report.get("variants", {}))
    return [v for v in ran if v in seen] + sorted(seen - set(ran))


def _families(report: Mapping[str, Any]) -> list[str]:
    """The run's task families in the order it ran them (the order of the rows for an older report)."""
    families = report.get("args", {}).get("families")
    return list(families) if families else list(dict.fromkeys(r["family"] for r in report["summaries"]))


def plot_success(report: Mapping[str, Any], path: Path) -> Path:
    """Success in the real env (Wilson 95%) vs horizon, one panel per (mode, family)."""
    import matplotlib.pyplot as plt

    rows = report["summaries"]
    order = _variant_order(rows, report)
    panels = sorted(
        {(r["mode"], r["family"]) for r in rows}, key=lambda p: (p[0] != "open_loop", _families(report).index(p[1]))
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (mode, family) in zip(axes[0], panels):
        for variant in order:
            sel = sorted(
                (r for r in rows if (r["mode"], r["family"], r["variant"]) == (mode, family, variant)),
                key=lambda r: r["horizon"],
            )
            if not sel:
                continue
            rate = np.array([r["rate"] for r in sel])
            err = np.array([[r["rate"] - r["ci95"][0], r["ci95"][1] - r["rate"]] for r in sel]).T
            ax.errorbar(
                [r["horizon"] for r in sel],
                rate,
                yerr=err,
                marker="o",
                capsize=3,
                label=variant,
                color=f"C{order.index(variant)}",
            )
        n = max(r["n"] for r in rows if (r["mode"], r["family"]) == (mode, family))
        ax.set(title=f"{mode.replace('_', ' ')}, {family} tasks (n={n})", xlabel="horizon H", ylim=(-0.05, 1.05))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("success in the real env (95% CI)")
    axes[0, 0].legend(fontsize=8)
    return save_figure(fig, path)


def plot_grad_norms(grad: Mapping[str, Any], path: Path) -> Path:
    """Gradient norms w.r.t. virtual states and actions, and the lifted loss terms, over the iterations
    (``grad``: the report's ``grad_norms`` entry)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    labels = {"detached": "GRASP (detach_states=True)", "full": "no detach (full gradients)"}
    for name, hist in grad["histories"].items():
        its = np.arange(1, len(hist["state_grad_norm"]) + 1)
        axes[0].plot(its, hist["state_grad_norm"], label=labels[name])
        axes[1].plot(its, hist["action_grad_norm"], label=labels[name])
        axes[2].plot(its, hist["dynamics_loss"], label=f"{labels[name]}: dynamics")
        axes[2].plot(its, hist["goal_loss"], "--", label=f"{labels[name]}: goal term")
    for ax, title in zip(axes, ("‖∇ virtual states‖ per candidate", "‖∇ actions‖ per candidate", "lifted loss terms")):
        ax.set(yscale="log", xlabel="iteration", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=7)
    fig.suptitle(
        f"GRASP in the pixel model's latent space, H={grad['horizon']}, mean over {grad['problems']} {grad['family']} tasks x "
        f"{grad['num_candidates']} candidates (sync every {grad['sync_every']} it.)",
        fontsize=10,
    )
    return save_figure(fig, path)


def plot_filmstrips(panels: Sequence[tuple[str, list[tuple[str, np.ndarray]]]], path: Path) -> Path:
    """Stack the labelled image rows of :func:`~bench.diagnostics.plan_filmstrip` (one panel per plan)."""
    import matplotlib.pyplot as plt

    rows = [(f"{title}\n{label}", image) for title, strip_rows in panels for label, image in strip_rows]
    width = max(image.shape[1] for _, image in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(width / 60, 1.25 * len(rows)), squeeze=False)
    for ax, (label, image) in zip(axes[:, 0], rows):
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return save_figure(fig, path)


def _cell(r: Mapping[str, Any], mode: str) -> str:
    text = f"{r['successes']}/{r['n']} ({100 * r['ci95'][0]:.0f}–{100 * r['ci95'][1]:.0f}%)"
    if "rate_under_model" in r:
        text += f" \\| model {100 * r['rate_under_model']:.0f}%"
    text += f" \\| {r['median_wall_time']:.2f} s"
    if "median_model_calls" in r:
        text += f" \\| {r['median_model_calls']:.0f} calls"
    if mode == "closed_loop":
        text += f" \\| {r['median_plans']:.0f} plans/ep."
    return text


def markdown(report: Mapping[str, Any]) -> str:
    """The benchmark's tables: success per planner and horizon, per mode and task family, and the gradient norms."""
    model, tolerance = report["model"], report["tolerance"]
    lines = [
        "# Planning from pixels: pixel grid world `wall` (issue 5)",
        "",
        f"Finished {report['finished']}, {report['total_seconds'] / 60:.1f} min, torch threads {report['threads']}.",
        "",
        f"Model: `PixelWorldModel` (latent {model['latent_dim']}), trained once from images and actions ({model['transitions']} transitions) "
        f"in {model['total_training_seconds']:.0f} s (collection {model['collect_seconds'] or 0:.0f} s, image phase {model['train_seconds']:.0f} s, "
        f"dynamics phase {model['dynamics_seconds']:.0f} s); cached at `{model['path']}`. Held-out latent/true distance Spearman "
        f"{model['validation'].get('latent_spearman', float('nan')):.4f}.",
        f"Latent goal tolerance {tolerance['tolerance']:.4f} (slope {tolerance['slope']:.4f} latent units per world unit x goal radius "
        f"{tolerance['goal_radius']}).",
        "",
        "Success = the REAL env agent came within the goal radius at some step <= H (open loop) or within the episode (closed loop). "
        "Cells: success k/n (Wilson 95% interval) | success under the model | median wall time per plan | median model calls.",
        "",
    ]
    for mode in ("open_loop", "closed_loop"):
        for family in _families(report):
            sel = [r for r in report["summaries"] if r["mode"] == mode and r["family"] == family]
            if not sel:
                continue
            horizons = sorted({r["horizon"] for r in sel})
            lines += [
                f"## {mode.replace('_', ' ')}, {family} tasks",
                "",
                "| planner | " + " | ".join(f"H={h}" for h in horizons) + " |",
                "|---|" + "---|" * len(horizons),
            ]
            if mode == "open_loop":
                bound = [
                    next((x["feasible_fraction"] for x in sel if x["horizon"] == h and "feasible_fraction" in x), None)
                    for h in horizons
                ]
                lines.append(
                    "| *feasible at H (upper bound)* | "
                    + " | ".join("—" if b is None else f"{100 * b:.0f}%" for b in bound)
                    + " |"
                )
            for variant in _variant_order(sel, report):
                cells = [
                    next((_cell(x, mode) for x in sel if x["variant"] == variant and x["horizon"] == h), "—")
                    for h in horizons
                ]
                lines.append(f"| {variant} | " + " | ".join(cells) + " |")
            lines.append("")
    g = report["grad_norms"]
    lines += [
        "## Gradient reshaping (pixel_grad_norms.png)",
        "",
        f"GRASP at H={g['horizon']} on {g['problems']} {g['family']} tasks, {g['iterations']} iterations, with and without the stop-gradient "
        "on the model's state input. Median over iterations of the mean per-candidate gradient norm:",
        "",
        "| variant | ‖∇ states‖ | ‖∇ actions‖ | final latent distance (median) |",
        "|---|---|---|---|",
    ]
    for name, stats in g["summary"].items():
        lines.append(
            f"| {name} | {stats['state_grad_norm']:.3g} | {stats['action_grad_norm']:.3g} | {stats['final_distance']:.3f} |"
        )
    budgets = ", ".join(f"{v}: {item['planner']} {item['config']}" for v, item in report["variants"].items())
    lines += ["", f"Budgets: {budgets}."]
    return "\n".join(lines) + "\n"
