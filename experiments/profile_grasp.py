"""Profile GRASP's iteration on CPU against its floor: one model forward+backward on the same batch.

One GRASP iteration is one batched model call on [N·B·T] rows (the lifted loss), its backward,
an Adam step and the state noise; every ``sync_every`` iterations the shooting sync adds
``sync_steps`` sequential T-step rollouts with backprop. The floor is a single forward+backward
of the model on the same [N·B·T] batch — what any gradient step over all time steps must pay.
Reported per horizon: floor ms, GRASP ms/iteration without sync, with the default sync amortised,
GD (shooting) ms/iteration, and the ratios; optionally with ``torch.compile`` on the model.

    python experiments/profile_grasp.py                    # MLP world model (256x3), H in {25, 50, 80}
    python experiments/profile_grasp.py --quick
    python experiments/profile_grasp.py --compile          # also time a torch.compile'd model (slow first call)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from mpc_grasp.models import MLPWorldModel
from mpc_grasp.planners import make_planner
from mpc_grasp.reporting import git_commit

ROOT = Path(__file__).resolve().parents[1]


def _median_ms(function: Callable[[], Any], repeats: int) -> float:
    function()  # warm-up (allocations, lazy init, compile)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def floor_ms(model: torch.nn.Module, rows: int, state_dim: int, action_dim: int, repeats: int) -> float:
    """One forward+backward of the model on ``rows`` transitions (gradient w.r.t. the action input)."""
    states = torch.randn(rows, state_dim)
    actions = torch.randn(rows, action_dim, requires_grad=True)

    def step() -> None:
        actions.grad = None
        model(states, actions).square().sum().backward()

    return _median_ms(step, repeats)


def planner_ms_per_iteration(model: torch.nn.Module, name: str, horizon: int, iterations: int, repeats: int, **options: Any) -> float:
    """Wall time of a full plan (no early stopping) divided by its iterations."""
    planner = make_planner(name, model, horizon, iterations=iterations, **options)
    start, goal = torch.zeros(model.state_dim), torch.ones(model.state_dim)
    return _median_ms(lambda: planner.plan(start, goal), repeats) / iterations


def profile(horizons: list[int], candidates: int, iterations: int, repeats: int, compile_model: bool) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    base = MLPWorldModel(2, 2, hidden_sizes=(256, 256, 256))
    base.eval()
    models: dict[str, torch.nn.Module] = {"eager": base}
    if compile_model:
        compiled = torch.compile(base, dynamic=False)
        compiled.state_dim, compiled.action_dim = base.state_dim, base.action_dim  # type: ignore[attr-defined]
        models["compiled"] = compiled
    rows = []
    for mode, model in models.items():
        for horizon in horizons:
            floor = floor_ms(model, candidates * horizon, 2, 2, repeats * 5)
            no_sync = planner_ms_per_iteration(model, "grasp", horizon, iterations, repeats, num_candidates=candidates, sync_every=0)
            with_sync = planner_ms_per_iteration(model, "grasp", horizon, iterations, repeats, num_candidates=candidates)
            gd = planner_ms_per_iteration(model, "gd", horizon, max(10, iterations // 5), repeats, num_candidates=candidates)
            row = {
                "model": mode, "horizon": horizon, "candidates": candidates, "rows_per_call": candidates * horizon,
                "floor_ms": floor, "grasp_no_sync_ms": no_sync, "grasp_ms": with_sync, "gd_ms": gd,
                "grasp_no_sync_over_floor": no_sync / floor, "grasp_over_floor": with_sync / floor, "gd_over_floor": gd / floor,
            }
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            rows.append(row)
    return rows


def write_markdown(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    lines = [
        "# GRASP iteration profile (CPU)", "",
        f"Generated {meta['generated']} by `{meta['command']}` (commit `{meta['commit']}`), "
        f"torch {meta['torch']}, {meta['threads']} thread(s), MLP world model 256x3, {rows[0]['candidates']} candidates.", "",
        "Floor = one forward+backward of the model on the same [B·T] batch. GRASP no-sync = the lifted iteration alone; "
        "GRASP = with the default shooting sync (10 GD steps through the T-step rollout every 50 iterations) amortised.", "",
        "| model | H | rows/call | floor ms | GRASP no-sync ms/it (× floor) | GRASP ms/it (× floor) | GD ms/it (× floor) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['horizon']} | {row['rows_per_call']} | {row['floor_ms']:.2f} | "
            f"{row['grasp_no_sync_ms']:.2f} ({row['grasp_no_sync_over_floor']:.2f}×) | {row['grasp_ms']:.2f} ({row['grasp_over_floor']:.2f}×) | "
            f"{row['gd_ms']:.2f} ({row['gd_over_floor']:.2f}×) |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--horizons", type=int, nargs="+", default=[25, 50, 80])
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="also profile a torch.compile'd model")
    parser.add_argument("--quick", action="store_true", help="H=25 only, 20 iterations, 1 repeat")
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.horizons, args.iterations, args.repeats = [25], 50, 1
    torch.set_num_threads(args.threads)
    rows = profile(args.horizons, args.candidates, args.iterations, args.repeats, args.compile)
    commit = git_commit(ROOT, mark_dirty=True) or "unknown"
    meta = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(["python", *sys.argv]),
        "commit": commit, "torch": torch.__version__, "threads": args.threads, "platform": platform.platform(),
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "profile_grasp_quick" if args.quick else "profile_grasp"
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    write_markdown(rows, meta, out / f"{stem}.md")
    print(f"wrote {out / stem}.{{json,md}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
