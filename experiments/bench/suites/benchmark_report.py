"""Tables and plots of :mod:`bench.suites.benchmark`: CSV rows (one per env x model x planner x H x mode),
markdown tables and two plots, written by the one report writer (:func:`bench.report.write_report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import ci_cell, pct, write_report

__all__ = [
    "CSV_COLUMNS",
    "csv_rows",
    "markdown_report",
    "plot_success_vs_horizon",
    "plot_success_vs_time",
    "write_outputs",
]

CSV_COLUMNS = (
    "env",
    "model",
    "mode",
    "planner",
    "horizon",
    "n",
    "successes",
    "success_rate",
    "success_ci95_low",
    "success_ci95_high",
    "success_model_rate",
    "success_model_ci95_low",
    "success_model_ci95_high",
    "median_wall_time_per_plan",
    "median_time_to_success",
    "median_steps_to_success",
    "median_model_calls",
    "median_model_transitions",
    "median_iterations",
)
COLORS = {"grasp": "tab:orange", "cem": "tab:blue", "mppi": "tab:purple", "gd": "tab:red"}
ABLATION_STYLES = {"grasp_no_detach": ":", "grasp_no_noise": "--", "grasp_no_goal": "-.", "grasp_no_sync": (0, (1, 3))}


def _fmt(value: Any, digits: int = 3) -> Any:
    return "" if value is None else (round(value, digits) if isinstance(value, float) else value)


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per benchmark cell, plus the RL baseline rows (mode ``closed_loop_rl``, no horizon)."""
    rows = []
    for cell in report["cells"]:
        s = cell["summary"]
        ci = s.get("success_ci95") or [None, None]
        model_ci = s.get("success_model_ci95") or [None, None]
        row = {key: cell[key] for key in ("env", "model", "mode", "planner", "horizon")}
        row.update(
            {
                "n": s["n"],
                "successes": s["successes"],
                "success_rate": s["success_rate"],
                "success_ci95_low": ci[0],
                "success_ci95_high": ci[1],
                "success_model_rate": s.get("success_model_rate"),
                "success_model_ci95_low": model_ci[0],
                "success_model_ci95_high": model_ci[1],
            }
        )
        for key in CSV_COLUMNS[13:]:
            row[key] = s.get(key)
        rows.append(row)
    for rl in report["rl_baselines"]["rows"]:
        ci = rl["success_ci95"]
        rows.append(
            {
                "env": rl["env"],
                "model": "none (model-free)",
                "mode": "closed_loop_rl",
                "planner": rl["planner"],
                "horizon": None,
                "n": rl["n"],
                "successes": round(rl["success_rate"] * rl["n"]),
                "success_rate": rl["success_rate"],
                "success_ci95_low": ci[0],
                "success_ci95_high": ci[1],
                "median_steps_to_success": rl["median_steps_to_success"],
            }
        )
    return rows


# ----------------------------------------------------------------------------- markdown


def _ci(summary: dict[str, Any], key: str = "success") -> str:
    return ci_cell(summary.get(f"{key}_rate"), summary.get(f"{key}_ci95"))


def _seconds(value: float | None) -> str:
    return "–" if value is None else (f"{value:.2f}" if value < 10 else f"{value:.0f}")


def _groups(report: dict[str, Any]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for cell in report["cells"]:
        groups.setdefault((cell["env"], cell["model"], cell["mode"]), []).append(cell)
    return groups


def headline_table(report: dict[str, Any], mode: str = "open_loop") -> list[str]:
    """Compact table: one row per (planner, model), one column per (env, H); cell = real env / model / s per plan."""
    cells = [c for c in report["cells"] if c["mode"] == mode]
    columns = list(dict.fromkeys((c["env"], c["horizon"]) for c in cells))
    rows = list(dict.fromkeys((c["planner"], c["model"]) for c in cells))
    by = {(c["planner"], c["model"], c["env"], c["horizon"]): c["summary"] for c in cells}
    lines = [
        "| planner | model | " + " | ".join(f"{env} H={h}" for env, h in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for planner, model in rows:
        texts = []
        for env, h in columns:
            s = by.get((planner, model, env, h))
            texts.append(
                "–"
                if s is None
                else f"{pct(s['success_rate'])} / {pct(s.get('success_model_rate'))} / {_seconds(s['median_wall_time_per_plan'])} s"
            )
        lines.append(f"| {planner} | {model} | " + " | ".join(texts) + " |")
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    """Tables per (env, model, mode): success in the real env [95% Wilson] / under the model / s per plan."""
    config = report["config"]
    lines = [
        "# Benchmark: GRASP vs CEM vs MPPI vs GD (+ GRASP ablations, RL) in the real environments",
        "",
        *(
            [
                "**Smoke run (`--quick`)**: a few pairs and a short model training, to check the pipeline; its rates "
                "are not measurements.",
                "",
            ]
            if config.get("quick")
            else []
        ),
        f"Command: `{report['command']}`  ",
        f"Commit: `{report['git_commit'] or 'none'}`  ",
        f"Finished: {report['timestamp']}, {report['total_seconds']:.0f} s ({report['units_reused_from_log']} work units reused from the resume log); "
        "2-core CPU shared with other jobs, `torch.set_num_threads(1)`.",
        "",
        f"Open loop: {config['pairs']} fixed start/goal pairs per cell (the same for every planner, model and horizon), one plan "
        f"per pair, planned in chunks of {config['batch_size']} with `plan_batch`; the actions are executed in the real env. "
        "Success = inside the env's goal region at any step <= H (grid: within the goal radius 0.3; cart-pole swing-up: "
        "|theta| < 0.2, |theta_dot| < 1, |x| < 1). *Model* = the same test on the model's rollout. Time = wall time of the "
        "chunk / chunk size (median over pairs); every planner early-stops at the env's goal tolerance (0.3), which in a "
        "chunk needs every pair to arrive. Calls = model calls of the chunk; transitions = model transitions per plan.",
        "",
        f"Closed loop: {config['closed_loop_pairs']} GraspMPC episodes per cell (first reset seeded {config['eval_seed']}, "
        "later ones continue the env RNG — the start/goal sequence of the RL baselines' evaluation); success = goal reached "
        "at any step; time = median wall time per (re)plan; calls/transitions = median per plan.",
        "",
    ]
    for key, info in report["models"].items():
        desc = ", ".join(
            f"{k}={v}"
            for k, v in info.items()
            if k in ("class", "hidden", "data_steps", "one_step_rmse", "path", "layout")
        )
        lines.append(f"- model `{key}`: {desc}")
    for name, env in report.get("envs", {}).items():
        horizons = report["config"]["horizons"].get(name)
        extra = f"; every planner also gets {dict(env['planner_options'])}" if env.get("planner_options") else ""
        lines.append(
            f"- env `{name}`: `{env['env_id']}`, horizons {horizons}, learned-model data {report['config']['data_steps'].get(name)} transitions{extra}"
        )
    lines.append("")
    if any(c["mode"] == "open_loop" for c in report["cells"]):
        lines += ["## Headline (open loop): success in the real env / under the model / median s per plan", ""]
        lines += headline_table(report) + [""]
    for (env, model, mode), cells in _groups(report).items():
        horizons = sorted({c["horizon"] for c in cells})
        planners = list(dict.fromkeys(c["planner"] for c in cells))
        by = {(c["planner"], c["horizon"]): c["summary"] for c in cells}
        n = cells[0]["summary"]["n"]
        lines += [
            f"## {env}, {model} model, {mode.replace('_', ' ')} ({n} {'pairs' if mode == 'open_loop' else 'episodes'} per cell)",
            "",
        ]
        lines += ["Success in the real env [95% CI] / under the model / median s per plan:", ""]
        lines += ["| planner | " + " | ".join(f"H={h}" for h in horizons) + " |", "|---|" + "---|" * len(horizons)]
        for name in planners:
            cells_text = []
            for h in horizons:
                s = by.get((name, h))
                cells_text.append(
                    "–"
                    if s is None
                    else f"{_ci(s)} / {pct(s.get('success_model_rate'))} / {_seconds(s['median_wall_time_per_plan'])} s"
                )
            lines.append(f"| {name} | " + " | ".join(cells_text) + " |")
        if mode == "closed_loop":
            for rl in report["rl_baselines"]["rows"]:
                if rl["env"] == env:
                    lines.append(
                        f"| {rl['planner']} (RL, {rl['n']} episodes, seed {rl['eval_seed']}) | "
                        + " | ".join([_ci(rl)] * len(horizons))
                        + " |"
                    )
        lines += [
            "",
            "Median time to success (s per successful plan; closed loop: s per successful episode) / steps to success / model calls / model transitions / iterations:",
            "",
        ]
        lines += ["| planner | " + " | ".join(f"H={h}" for h in horizons) + " |", "|---|" + "---|" * len(horizons)]
        for name in planners:
            cells_text = []
            for h in horizons:
                s = by.get((name, h))
                if s is None:
                    cells_text.append("–")
                    continue
                parts = [
                    _seconds(s.get("median_time_to_success")),
                    _fmt_num(s.get("median_steps_to_success")),
                    _fmt_num(s.get("median_model_calls")),
                    _fmt_num(s.get("median_model_transitions")),
                    _fmt_num(s.get("median_iterations")),
                ]
                cells_text.append(" / ".join(parts))
            lines.append(f"| {name} | " + " | ".join(cells_text) + " |")
        lines.append("")
    lines += ["## Planner options per row", "", "```json", json.dumps(report["budgets"], indent=1), "```", ""]
    notes = list(report.get("skipped", []))
    if report.get("source_changed_during_run"):
        notes.append(f"WARNING: source files changed during the run: {report['source_changed_during_run']}")
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def _fmt_num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:.1f}"


# ----------------------------------------------------------------------------- plots


def _footer(fig: Any, report: dict[str, Any]) -> None:
    fig.text(
        0.01,
        0.002,
        f"{report['command']}  (commit {str(report['git_commit'])[:12]})",
        fontsize=7,
        color="0.4",
        ha="left",
        va="bottom",
    )


def _style(name: str) -> dict[str, Any]:
    base = name if name in COLORS else "grasp"
    return {
        "color": COLORS[base],
        "linestyle": ABLATION_STYLES.get(name, "-"),
        "lw": 1.2 if name in ABLATION_STYLES else 2.0,
    }


def plot_success_vs_horizon(report: dict[str, Any], path: Path) -> Path:
    """Open-loop success in the real env (with 95% CI) vs H, one panel per (env, model); closed loop dotted markers."""
    from mpc_grasp.plotting import plt, save_figure

    panels = [(env, model) for env, model, mode in _groups(report) if mode == "open_loop"]
    panels = list(dict.fromkeys(panels)) or list(dict.fromkeys((env, model) for env, model, _ in _groups(report)))
    cols = min(3, max(1, len(panels)))
    rows = int(np.ceil(len(panels) / cols)) if panels else 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.8 * rows + 0.4), squeeze=False)
    groups = _groups(report)
    for ax, (env, model) in zip(axes.flat, panels):
        for mode, marker in (("open_loop", "o"), ("closed_loop", "s")):
            cells = groups.get((env, model, mode), [])
            for name in dict.fromkeys(c["planner"] for c in cells):
                mine = sorted((c for c in cells if c["planner"] == name), key=lambda c: c["horizon"])
                h = np.array([c["horizon"] for c in mine], dtype=float)
                rate = np.array([c["summary"]["success_rate"] for c in mine])
                ci = np.array([c["summary"]["success_ci95"] for c in mine])
                style = _style(name)
                if mode == "open_loop":
                    ax.errorbar(
                        h,
                        100 * rate,
                        yerr=100 * np.abs(np.stack([rate - ci[:, 0], ci[:, 1] - rate])),
                        marker=marker,
                        capsize=2,
                        label=name,
                        ms=4,
                        **style,
                    )
                else:
                    ax.plot(
                        h,
                        100 * rate,
                        marker=marker,
                        ls="none",
                        color=style["color"],
                        mfc="none",
                        ms=7,
                        label=f"{name} (closed loop)",
                    )
        ax.set_title(f"{env}, {model} model")
        ax.set_xlabel("horizon H")
        ax.set_ylabel("success in the real env (%)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("Open-loop success vs horizon (95% Wilson CI); hollow squares: closed loop")
    _footer(fig, report)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_figure(fig, path)


def plot_success_vs_time(report: dict[str, Any], path: Path) -> Path:
    """Open-loop success in the real env vs median wall time per plan; one point per cell, colour = planner."""
    from mpc_grasp.plotting import plt, save_figure

    panels = list(dict.fromkeys((env, model) for env, model, mode in _groups(report) if mode == "open_loop"))
    cols = min(3, max(1, len(panels)))
    rows = int(np.ceil(len(panels) / cols)) if panels else 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.8 * rows + 0.4), squeeze=False)
    markers = ["o", "s", "^", "D", "v"]
    groups = _groups(report)
    for ax, (env, model) in zip(axes.flat, panels):
        cells = groups[(env, model, "open_loop")]
        horizons = sorted({c["horizon"] for c in cells})
        for cell in cells:
            s = cell["summary"]
            if s["median_wall_time_per_plan"] is None:
                continue
            style = _style(cell["planner"])
            filled = cell["planner"] in COLORS
            ax.plot(
                s["median_wall_time_per_plan"],
                100 * s["success_rate"],
                marker=markers[horizons.index(cell["horizon"]) % len(markers)],
                color=style["color"],
                mfc=style["color"] if filled else "none",
                ls="none",
                ms=7,
            )
        for name, color in COLORS.items():
            ax.plot([], [], "o", color=color, label=name)
        ax.plot([], [], "o", color="tab:orange", mfc="none", label="GRASP ablations")
        for i, h in enumerate(horizons):
            ax.plot([], [], markers[i % len(markers)], color="0.3", label=f"H={h}")
        ax.set_xscale("log")
        ax.set_title(f"{env}, {model} model")
        ax.set_xlabel("median wall time per plan (s, log)")
        ax.set_ylabel("success in the real env (%)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("Open-loop success vs compute (one point per planner x horizon)")
    _footer(fig, report)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_figure(fig, path)


def write_outputs(report: dict[str, Any], out_dir: Path, prefix: str) -> list[Path]:
    """``{prefix}.json``, ``.csv``, ``.md``, ``_success_vs_horizon.png``, ``_success_vs_time.png``."""
    report.setdefault("commit", report.get("git_commit"))
    plots = {}
    if report["cells"]:
        plots["success_vs_horizon"] = plot_success_vs_horizon
        if any(c["mode"] == "open_loop" for c in report["cells"]):
            plots["success_vs_time"] = plot_success_vs_time

    def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
        return [{key: _fmt(row.get(key), 4) for key in CSV_COLUMNS} for row in csv_rows(report)]

    return list(write_report(out_dir, prefix, report, markdown_report, csv_rows=rows, plots=plots).values())
