"""World-model accuracy vs prediction horizon (DESIGN.md §6): collect, train, evaluate per env.

For each env (grid world ``wall`` and ``umaze``, cart-pole balance and swing-up): collect
transitions with correlated exploration, hold out 15% of the episodes as a test set, train an
``MLPWorldModel`` (3x256 SiLU, MSE on normalised deltas, 150 epochs with cosine learning-rate
decay, keeping the epoch with the best error on a further 10% of the training episodes) and
measure open-loop H-step prediction error on the test episodes.

Error normalisation (the plot and the ``nrmse`` fields): per state dimension d, RMSE_d(H) divided
by the standard deviation of that dimension over the test states, then root-mean-square over
dimensions. 1.0 means an error as large as the spread of the states themselves; it makes envs
with different units comparable. The dashed lines are the "no-change" baseline (predict the start
state) under the same normalisation. Raw RMSE (env units) is in the JSON too; for the grid world
it is directly comparable with the 0.25 maximum displacement per step.

Grid world extras: the fraction of predicted states (open-loop, H <= 25) strictly inside a wall
cell, and "push tests": start near a wall face and push into it at full speed for 10 steps; the
largest predicted penetration beyond the face is reported (the true value is 0; the wall cell
itself starts 0.1 beyond the face).

Outputs: ``<out-dir>/model_eval.json`` (every number, the command, budgets) and
``<out-dir>/model_eval.png``; trained checkpoints go to ``--save-dir`` (default
``checkpoints/model_eval``, not versioned).

    python experiments/model_eval.py                # default run, ~4-5 minutes on 2 CPU cores
    python experiments/model_eval.py --quick        # smoke run, well under a minute
    python experiments/model_eval.py --envs grid_wall --steps 40000 --max-time 120
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpc_grasp.data import TransitionDataset, collect_transitions
from mpc_grasp.models import (
    MLPWorldModel,
    multi_step_error,
    one_step_error,
    open_loop_rollouts,
    save_world_model,
    train_world_model,
)

REPO = Path(__file__).resolve().parents[1]
HORIZONS = (1, 2, 5, 10, 25, 50)

# name -> (env id, env kwargs, grid layout or None)
ENVS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "grid_wall": ("mpc_grasp/GridWorld-v0", {"layout": "wall"}, "wall"),
    "grid_umaze": ("mpc_grasp/GridWorld-v0", {"layout": "umaze"}, "umaze"),
    "cartpole_balance": ("mpc_grasp/CartPoleBalance-v0", {}, None),
    "cartpole_swingup": ("mpc_grasp/CartPoleSwingup-v0", {}, None),
}

# layout -> list of (start xy, action xy, axis, face coordinate): push into the face for 10 steps
PUSH_TESTS: dict[str, list[tuple[tuple[float, float], tuple[float, float], int, float]]] = {
    "wall": [((3.4, y), (1.0, 0.0), 0, 3.9) for y in (2.0, 3.0, 4.0, 5.5)]
    + [((5.6, y), (-1.0, 0.0), 0, 5.1) for y in (2.0, 3.0, 4.0, 5.5)],
    "umaze": [((2.4, y), (1.0, 0.0), 0, 2.9) for y in (2.0, 3.0, 4.0, 5.5)]
    + [((6.6, y), (-1.0, 0.0), 0, 6.1) for y in (2.0, 3.0, 4.0, 5.5)]
    + [((x, 6.6), (0.0, -1.0), 1, 6.1) for x in (3.5, 4.5, 5.5)],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--envs", nargs="+", choices=sorted(ENVS), default=list(ENVS))
    p.add_argument("--steps", type=int, default=20000, help="transitions collected per env")
    p.add_argument("--num-envs", type=int, default=8, help="vector envs for collection")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--max-time", type=float, default=None, help="training wall-time cap per env (s); off by default so results do not depend on machine load")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience (default: run all epochs, keep the best)")
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small MLPs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=REPO / "results")
    p.add_argument("--save-dir", type=Path, default=REPO / "checkpoints" / "model_eval")
    p.add_argument("--quick", action="store_true", help="smoke run: 3k steps, 20 epochs per env")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.epochs = 3000, 20
    return args


def normalised(rmse_per_dim: list[float] | None, state_std: np.ndarray) -> float | None:
    """RMS over dims of RMSE_d / std_d (see the module docstring)."""
    if rmse_per_dim is None:
        return None
    return float(np.sqrt(np.mean((np.asarray(rmse_per_dim) / state_std) ** 2)))


def grid_checks(model: MLPWorldModel, test: TransitionDataset, layout: str) -> dict[str, Any]:
    """Wall-violation rate of open-loop predictions and the push-into-wall penetrations."""
    from mpc_grasp.envs import wall_boxes

    boxes = wall_boxes(layout)
    roll = open_loop_rollouts(model, test, 25, max_windows=2048)
    pts = roll["predicted"][roll["valid"]]  # [K, 2]
    inside = (
        (boxes[None, :, 0] < pts[:, None, 0]) & (pts[:, None, 0] < boxes[None, :, 2])
        & (boxes[None, :, 1] < pts[:, None, 1]) & (pts[:, None, 1] < boxes[None, :, 3])
    ).any(axis=1)
    pushes = []
    with torch.no_grad():
        for start, action, axis, face in PUSH_TESTS[layout]:
            s = torch.tensor([start], dtype=torch.float32)
            a = torch.tensor([action], dtype=torch.float32)
            sign = float(np.sign(action[axis]))
            worst = -np.inf
            for _ in range(10):
                s = model(s, a)
                worst = max(worst, sign * (float(s[0, axis]) - face))
            pushes.append({"start": list(start), "action": list(action), "face": face, "max_penetration": worst})
    return {
        "wall_violation_rate_h25": float(inside.mean()) if len(pts) else None,
        "n_predicted_states": int(len(pts)),
        "push_tests": pushes,
        "max_push_penetration": max(p["max_penetration"] for p in pushes),
    }


def evaluate_env(name: str, args: argparse.Namespace) -> dict[str, Any]:
    env_id, env_kwargs, layout = ENVS[name]
    t0 = time.perf_counter()
    data = collect_transitions(env_id, args.steps, seed=args.seed, num_envs=args.num_envs, env_kwargs=env_kwargs, progress=False)
    collect_s = time.perf_counter() - t0
    train, test = data.split(args.test_fraction, seed=args.seed + 1)
    cpu0 = time.process_time()
    model = train_world_model(
        train,
        hidden_sizes=tuple(args.hidden),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        max_time_s=args.max_time,
        seed=args.seed,
        progress=False,
        num_threads=args.threads,
    )
    train_cpu_s = time.process_time() - cpu0
    history = model.training_history
    one = one_step_error(model, test)
    multi = multi_step_error(model, test, horizons=HORIZONS)
    state_std = test.observations.astype(np.float64).std(axis=0)
    state_std = np.where(state_std > 1e-8, state_std, 1.0)
    result: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "dataset": {
            "n_total": len(data), "episodes": data.num_episodes, "n_train": history["n_train"],
            "n_val": history["n_val"], "n_test": len(test), "test_episodes": test.num_episodes,
            "collect_time_s": collect_s, "exploration": data.metadata["exploration"],
        },
        "training": {
            "wall_time_s": history["wall_time_s"], "cpu_time_s": train_cpu_s, "epochs_run": len(history["epoch"]),
            "best_epoch": history["best_epoch"], "stopped": history["stopped"], "best_val_mse_normalised": history["best_val_mse"],
        },
        "state_std": state_std.tolist(),
        "one_step": one,
        "one_step_nrmse": normalised(one["rmse_per_dim"], state_std),
        "multi_step": multi,
        "nrmse": [normalised(r, state_std) for r in multi["rmse_per_dim"]],
        "no_change_nrmse": [],
    }
    # the no-change baseline per dim, normalised the same way
    roll = open_loop_rollouts(model, test, max(HORIZONS), max_windows=4096)
    for h in HORIZONS:
        mask = roll["valid"][:, h - 1]
        if not mask.any():
            result["no_change_nrmse"].append(None)
            continue
        diff = roll["start"][mask] - roll["target"][mask, h - 1]
        result["no_change_nrmse"].append(normalised(np.sqrt(np.mean(diff.astype(np.float64) ** 2, axis=0)).tolist(), state_std))
    if layout is not None:
        result["grid"] = grid_checks(model, test, layout)
    if args.save_dir is not None:
        path = save_world_model(model, args.save_dir / f"{name}.pt", metadata={"experiment": "model_eval", "test_metrics": {"one_step": one, "multi_step": multi}})
        result["checkpoint"] = str(path)
    return result


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, res) in enumerate(results.items()):
        color = f"C{i}"
        hs = [h for h, v in zip(HORIZONS, res["nrmse"]) if v is not None]
        ax.plot(hs, [v for v in res["nrmse"] if v is not None], "o-", color=color, label=name)
        hb = [h for h, v in zip(HORIZONS, res["no_change_nrmse"]) if v is not None]
        ax.plot(hb, [v for v in res["no_change_nrmse"] if v is not None], "--", color=color, alpha=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(HORIZONS)
    ax.set_xticklabels([str(h) for h in HORIZONS])
    ax.set_xlabel("prediction horizon H (open-loop steps)")
    ax.set_ylabel("RMSE / state std (RMS over dims)")
    ax.set_title("World-model H-step error on held-out episodes\n(solid: MLP model, dashed: no-change baseline)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results: dict[str, Any]) -> str:
    head = f"{'env':<18} {'n_train':>7} {'train s':>7} {'1-step RMSE':>11} " + " ".join(f"{'H=' + str(h):>7}" for h in HORIZONS)
    lines = ["normalised H-step error (RMSE / state std, RMS over dims; second row: no-change baseline):", head]
    for name, res in results.items():
        cells = " ".join(f"{v:>7.4f}" if v is not None else f"{'-':>7}" for v in res["nrmse"])
        lines.append(
            f"{name:<18} {res['dataset']['n_train']:>7} {res['training']['wall_time_s']:>7.1f} {res['one_step']['rmse']:>11.5f} {cells}"
        )
        base = " ".join(f"{v:>7.4f}" if v is not None else f"{'-':>7}" for v in res["no_change_nrmse"])
        lines.append(f"{'  no-change':<18} {'':>7} {'':>7} {res['one_step']['no_change_rmse']:>11.5f} {base}")
        if "grid" in res:
            g = res["grid"]
            lines.append(
                f"{'':<18} grid: wall-violation rate (H<=25) {g['wall_violation_rate_h25']:.4f}, "
                f"max push penetration {g['max_push_penetration']:.3f} (per test: "
                + ", ".join(f"{p['max_penetration']:.3f}" for p in g["push_tests"]) + ")"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name in args.envs:
        print(f"[{name}] collecting {args.steps} transitions and training ...", flush=True)
        results[name] = evaluate_env(name, args)
        res = results[name]
        print(
            f"[{name}] done: train {res['training']['wall_time_s']:.1f} s ({res['training']['epochs_run']} epochs), "
            f"one-step RMSE {res['one_step']['rmse']:.5f} (no-change {res['one_step']['no_change_rmse']:.5f})",
            flush=True,
        )
    stem = "model_eval_quick" if args.quick else "model_eval"
    payload = {
        "command": "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]).as_posix()), *(argv if argv is not None else sys.argv[1:])]),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": args.threads,
        "total_time_s": time.perf_counter() - started,
        "horizons": list(HORIZONS),
        "normalisation": "per-dim RMSE divided by the per-dim std of the test states, RMS over dims",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out_json = args.out_dir / f"{stem}.json"
    out_json.write_text(json.dumps(payload, indent=1) + "\n")
    plot(results, args.out_dir / f"{stem}.png")
    print(table(results))
    print(f"total {payload['total_time_s']:.0f} s -> {out_json}, {args.out_dir / (stem + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
