"""How many candidates should a warm-started GRASP plan keep? Closed-loop Point-Maze UMaze (issue 16).

Runs the paper-tasks suite's closed-loop cell (``run_closed_loop_unit``: one ``GraspMPC`` episode per start/goal
pair, the suite's model and pairs) once per ``warm_num_candidates`` value, everything else at GRASP's defaults,
and sets each beside the suite's CEM cell from ``results/paper_tasks.json`` (same pairs, model and horizon).
Writes ``results/warm_candidates.{json,md,png}``.

    python experiments/warm_candidates.py                 # 4, 8, 16 x 50 episodes: ~25 min on 1 thread
    python experiments/warm_candidates.py --rerun-cem     # and CEM's cell in the same run (+25 min)
    python experiments/warm_candidates.py --values 8 --episodes 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from mpc_grasp.bench.report import REPO_ROOT, ci_cell, command_line, number_cell, write_report  # noqa: E402
from mpc_grasp.bench.suites import paper_tasks as pt  # noqa: E402

STEM = "warm_candidates"


def run(
    values: Sequence[int], episodes: int, horizon: int, max_steps: int, model_dir: Path, reference: Path | None, progress: bool = True
) -> dict:
    """One closed-loop UMaze cell per ``warm_num_candidates`` value, and CEM's cell: rerun here when ``reference``
    is None (the same machine load, for time ratios), else read from that report if it has one."""
    pairs = pt.make_pairs(pt.TASKS["umaze"], episodes, 0)[:episodes]

    def cell(planner: str, options: dict[str, Any]) -> dict[str, Any]:
        records = pt.run_closed_loop_unit({
            "task": "umaze", "seed": 0, "model_dir": str(model_dir), "planner": planner, "horizon": horizon, "pairs": pairs,
            "max_steps": max_steps, "options": options,
        })  # fmt: skip
        return {**pt.summarize(records), "records": records}

    runs = [*values, "cem"] if reference is None else list(values)
    rows, cem = [], None
    for value in tqdm(runs, desc="closed-loop cells", disable=not progress):
        if value == "cem":
            cem = {"source": "this run", **cell("cem", {})}
        else:
            rows.append({"warm_num_candidates": value, **cell("grasp", {"warm_num_candidates": value})})
    if reference is not None and reference.is_file():
        for row in json.loads(reference.read_text()).get("rows", []):
            if (row["mode"], row["task"], row["planner"], row["horizon"], row["n"]) == ("closed_loop", "umaze", "cem", horizon, episodes):
                cem = {"source": str(reference.relative_to(REPO_ROOT) if reference.is_relative_to(REPO_ROOT) else reference)}
                cem.update({key: value for key, value in row.items() if key != "records"})
    return {"threads": torch.get_num_threads(), "episodes": episodes, "horizon": horizon, "max_steps": max_steps, "rows": rows, "cem": cem}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# GRASP warm candidates, closed-loop Point-Maze UMaze (H = {report['horizon']}, {report['episodes']} episodes)",
        "",
        "Same start/goal pairs, model and horizon as the paper-tasks suite's closed-loop cell; GRASP defaults except "
        f"`warm_num_candidates`. {report['threads']} torch thread(s). Success = the env's own flag; CI = Wilson 95%.",
        "",
        "| planner | success (95% CI) | by path length 1/2/3 | median s per step | median s to success |",
        "|---|---|---|---:|---:|",
    ]
    cem = report.get("cem")
    for row in [*report["rows"], *([cem] if cem else [])]:
        label = f"GRASP, {row['warm_num_candidates']} warm candidates" if "warm_num_candidates" in row else f"CEM ({row['source']})"
        by = "/".join(f"{rate:.0%}" for rate in row["by_difficulty"].values())
        lines.append(f"| {label} | {ci_cell(row['success_rate'], row['success_ci95'])} | {by} | "
                     f"{number_cell(row['median_time_per_plan_s'], 3)} | {number_cell(row['median_time_to_success_s'], 1)} |")  # fmt: skip
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> Path:
    rows, cem = report["rows"], report.get("cem")
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    values = [row["warm_num_candidates"] for row in rows]
    rates = [row["success_rate"] for row in rows]
    errors = [
        [rate - row["success_ci95"][0] for rate, row in zip(rates, rows)],
        [row["success_ci95"][1] - rate for rate, row in zip(rates, rows)],
    ]
    left.errorbar(values, rates, yerr=errors, marker="o", capsize=3, label="GRASP")
    times = [float("nan") if row["median_time_to_success_s"] is None else row["median_time_to_success_s"] for row in rows]
    right.plot(values, times, marker="o", label="GRASP")
    if cem and cem["median_time_to_success_s"] is not None:
        left.axhline(cem["success_rate"], color="tab:red", linestyle="--", label="CEM")
        right.axhline(cem["median_time_to_success_s"], color="tab:red", linestyle="--", label="CEM")
        right.axhline(cem["median_time_to_success_s"] / 2, color="tab:red", linestyle=":", label="CEM / 2")
    left.set(xlabel="warm_num_candidates", ylabel="success (env)", ylim=(0, 1.05), xticks=values)
    right.set(xlabel="warm_num_candidates", ylabel="median s to success", xticks=values)
    for axis in (left, right):
        axis.legend()
    figure.suptitle(f"Closed-loop Point-Maze UMaze, H = {report['horizon']}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--values", nargs="+", type=int, default=[4, 8, 16], help="warm_num_candidates values")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model-dir", type=Path, default=pt.MODEL_DIR, help="the suite's models (built there if missing)")
    parser.add_argument("--reference", type=Path, default=REPO_ROOT / "results" / "paper_tasks.json", help="report with the CEM cell")
    parser.add_argument("--rerun-cem", action="store_true", help="run CEM's cell here instead of reading --reference (~25 min)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results")
    args = parser.parse_args(argv)
    if min(args.values) < 1 or args.episodes < 1:
        parser.error("--values and --episodes must be >= 1")
    torch.set_num_threads(args.threads)
    reference = None if args.rerun_cem else args.reference
    report = run(args.values, args.episodes, args.horizon, args.max_steps, args.model_dir, reference)
    report["command"] = command_line("experiments/warm_candidates.py", argv)
    paths = write_report(args.out, STEM, report, markdown, plot)
    print(paths["md"].read_text())
    return report


if __name__ == "__main__":
    main()
