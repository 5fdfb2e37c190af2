"""Planner speed (issue 13): milliseconds per cold plan and per warm-started ``GraspMPC`` control step for
every planner at its defaults, MLP world model 256x2 on grid world ``wall``, across horizons; writes
``results/speed.{json,md,png}``.

    python experiments/speed.py                                   # CPU, H in {25, 50, 100, 200}
    python experiments/speed.py --device cuda --threads 8         # the GPU figures (one command)
    python experiments/speed.py --horizons 5 --steps 2 --candidates 4 --iterations 2 --out /tmp/speed   # tiny (the test)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch

import mpc_grasp  # noqa: F401  (registers the env ids)
from mpc_grasp import GraspMPC
from mpc_grasp.models.mlp import MLPWorldModel
from mpc_grasp.planners import PLANNERS, make_planner
from mpc_grasp.plotting import save_figure
from mpc_grasp.reporting import command_line, write_report

ENV_ID = "mpc_grasp/GridWorldWall-v0"


def time_planner(planner: str, horizon: int, steps: int, device: str, seed: int = 0) -> dict[str, Any]:
    """One episode of ``steps`` control steps: the first plan is cold, the rest warm-started."""
    env = gym.make(ENV_ID)
    torch.manual_seed(seed)
    model = MLPWorldModel(2, 2, hidden_sizes=(256, 256)).to(device)  # untrained: speed does not depend on weights
    agent = GraspMPC(model, planner, horizon=horizon, action_space=env.action_space, device=device, seed=seed)
    obs, _ = env.reset(seed=seed)
    started = time.perf_counter()
    for _ in range(steps):
        action, _ = agent.predict(obs)
        obs, *_ = env.step(action)
    total = time.perf_counter() - started
    warm = [d.wall_time for d in agent.diagnostics[1:]]
    return {
        "planner": planner, "horizon": horizon, "device": device, "steps": steps,
        "cold_ms": 1000 * agent.diagnostics[0].wall_time,
        "warm_ms_median": 1000 * float(np.median(warm)) if warm else None,
        "warm_iterations": agent.diagnostics[-1].iterations,
        "cold_iterations": agent.diagnostics[0].iterations,
        "episode_s": total,
    }


def per_iteration_ms(planner: str, horizon: int, candidates: int, device: str, iterations: int = 20, seed: int = 0) -> dict[str, Any]:
    """ms per planner iteration at ``candidates`` candidates (samples for CEM/MPPI): the difference of
    a plan of ``iterations + 1`` and one of 1 iteration, so the per-plan selection rollout cancels.
    GRASP's syncs are amortised into its iterations. This is the paper's time-per-iteration-vs-H figure."""
    torch.manual_seed(seed)
    model = MLPWorldModel(2, 2, hidden_sizes=(256, 256)).to(device)
    start, goal = torch.zeros(2), torch.ones(2)
    options = {"num_candidates": candidates, **({"elites": max(2, candidates // 8)} if planner == "cem" else {})}

    def plan_ms(count: int) -> float:
        planned = make_planner(planner, model, horizon, iterations=count, device=device, seed=seed, **options)
        planned.plan(start, goal)  # warm-up: allocator, kernels
        return min(1000 * planned.plan(start, goal).info["wall_time"] for _ in range(2))

    return {
        "planner": planner, "horizon": horizon, "candidates": candidates, "device": device,
        "ms_per_iteration": max(0.0, (plan_ms(iterations + 1) - plan_ms(1)) / iterations),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Planner speed: GraspMPC on grid world `wall`, MLP 256x2, every planner at its defaults", "",
        f"Device {report['device']}, {report['threads']} torch thread(s).", "",
        "| planner | H | cold plan ms (iterations) | warm step ms, median (iterations) |", "|---|---|---|---|",
    ]
    for row in report["rows"]:
        warm = "—" if row["warm_ms_median"] is None else f"{row['warm_ms_median']:.1f} ({row['warm_iterations']})"
        lines.append(f"| {row['planner']} | {row['horizon']} | {row['cold_ms']:.0f} ({row['cold_iterations']}) | {warm} |")
    sizes = sorted({row["candidates"] for row in report["iteration_rows"]})
    horizons = sorted({row["horizon"] for row in report["iteration_rows"]})
    lines += ["", "ms per iteration (20-iteration plan minus 1-iteration plan; columns: H):", "",
              "| planner | candidates | " + " | ".join(f"H={h}" for h in horizons) + " |", "|---|---|" + "---|" * len(horizons)]
    for planner in report["planners"]:
        for size in sizes:
            cells = [next(f"{r['ms_per_iteration']:.2f}" for r in report["iteration_rows"]
                          if r["planner"] == planner and r["candidates"] == size and r["horizon"] == h) for h in horizons]
            lines.append(f"| {planner} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for planner in report["planners"]:
        rows = [r for r in report["rows"] if r["planner"] == planner]
        horizons = [r["horizon"] for r in rows]
        axes[0].plot(horizons, [r["cold_ms"] for r in rows], "o-", label=planner)
        axes[1].plot(horizons, [r["warm_ms_median"] or np.nan for r in rows], "o-", label=planner)
    for axis, title in zip(axes, ("cold plan", "warm control step (median)")):
        axis.set_xlabel("horizon H")
        axis.set_ylabel("ms")
        axis.set_yscale("log")
        axis.set_title(title)
    axes[1].axhline(50, color="grey", ls=":", label="50 ms")
    axes[1].legend(fontsize=8)
    size = max(row["candidates"] for row in report["iteration_rows"])
    for planner in report["planners"]:
        rows = [r for r in report["iteration_rows"] if r["planner"] == planner and r["candidates"] == size]
        axes[2].plot([r["horizon"] for r in rows], [r["ms_per_iteration"] for r in rows], "o-", label=planner)
    axes[2].set(xlabel="horizon H", ylabel="ms per iteration", title=f"time per iteration, {size} candidates", yscale="log")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"GraspMPC speed, MLP 256x2, {report['device']}, {report['threads']} thread(s)")
    return save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planners", nargs="+", default=sorted(PLANNERS), choices=sorted(PLANNERS))
    parser.add_argument("--horizons", nargs="+", type=int, default=[25, 50, 100, 200])
    parser.add_argument("--steps", type=int, default=8, help="control steps per episode (1 cold + warm)")
    parser.add_argument("--candidates", nargs="+", type=int, default=[8, 64], help="candidate counts of the per-iteration timing")
    parser.add_argument("--iterations", type=int, default=20, help="iterations of the per-iteration timing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [time_planner(planner, horizon, args.steps, args.device) for planner in args.planners for horizon in args.horizons]
    for row in rows:
        print(f"{row['planner']:6s} H={row['horizon']:4d} cold {row['cold_ms']:8.1f} ms  warm {row['warm_ms_median'] or float('nan'):7.1f} ms")
    iteration_rows = [
        per_iteration_ms(planner, horizon, size, args.device, args.iterations)
        for planner in args.planners for size in args.candidates for horizon in args.horizons
    ]
    for row in iteration_rows:
        print(f"{row['planner']:6s} H={row['horizon']:4d} B={row['candidates']:3d} {row['ms_per_iteration']:8.2f} ms/iteration")
    report = {
        "command": command_line("experiments/speed.py", argv), "device": args.device, "threads": args.threads,
        "planners": args.planners, "rows": rows, "iteration_rows": iteration_rows,
    }
    write_report(args.out, "speed", report, markdown, plot)
    return report


if __name__ == "__main__":
    main()
