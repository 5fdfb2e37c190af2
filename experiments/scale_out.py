"""Scale-out measurements (issue 7): benchmark throughput on Ray, vectorised GraspMPC throughput.

1. **Benchmark throughput**: a small ``planner_bench.py`` run (every planner, both families) in-process
   vs as Ray tasks on a local Ray with ``--workers`` workers; plans (trials) per minute, Ray start-up
   time separately, and a check that the records are identical (timings aside).
2. **Vectorised planning**: ``GraspMPC`` over a Gymnasium ``SyncVectorEnv`` of N grid-world ``wall``
   envs (N = 1, 8, 32; one batched plan per control step for all N envs), with the analytic
   ``PointMassWalls`` test bed as the world model (no training noise in the measurement). Env-steps
   per second, peak RSS of the process (``resource.getrusage``; every N runs in a fresh process),
   peak CUDA memory on CUDA; plus N separate per-env agents for N = 8 as the unbatched baseline.

Outputs ``results/scale_out.{json,md,png}``.

    python experiments/scale_out.py                  # ~5 minutes on 2 cores
    python experiments/scale_out.py --quick          # ~1 minute
    python experiments/scale_out.py --device cuda    # planning part on the GPU (errors if none)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as _dt
import json
import multiprocessing
import platform
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planner_bench as bench  # noqa: E402

from mpc_grasp.parallel import ray_session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WALL = "mpc_grasp/GridWorldWall-v0"
TIMING_KEYS = {"wall_time", "cpu_time", "median_wall_time", "median_cpu_time", "median_wall_time_success"}


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_timings(item) for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(item) for item in value]
    return value


# ----------------------------------------------------------------------------- 1. benchmark throughput


def bench_throughput(pairs: int, workers: int) -> dict[str, Any]:
    """The same small planner bench in-process and on a local Ray; plans per minute of each."""
    argv = [
        "--pairs", str(pairs), "--horizons", "10", "25",
        "--grasp-iterations", "100", "--gd-iterations", "40", "--cem-iterations", "10", "--mppi-iterations", "10",
        "--timing-horizons", "--no-progress",
    ]  # fmt: skip
    out: dict[str, Any] = {"bench_args": argv, "workers": workers}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        local = bench.main([*argv, "--out-dir", f"{tmp}/local"])
        local_seconds = time.perf_counter() - started
        plans = sum(summary["n"] for by_h in local["results"].values() for by_p in by_h.values() for summary in by_p.values())
        ray_started = time.perf_counter()
        with ray_session(None, workers):
            startup = time.perf_counter() - ray_started
            started = time.perf_counter()
            remote = bench.main([*argv, "--out-dir", f"{tmp}/ray", "--backend", "ray", "--workers", str(workers)])
            ray_seconds = time.perf_counter() - started
    identical = all(
        _without_timings(json.loads(json.dumps(local[key]))) == _without_timings(json.loads(json.dumps(remote[key])))
        for key in ("results", "records", "example")
    )
    out.update(
        plans=plans,
        local_seconds=local_seconds,
        ray_seconds=ray_seconds,
        ray_startup_seconds=startup,
        local_plans_per_minute=60 * plans / local_seconds,
        ray_plans_per_minute=60 * plans / ray_seconds,
        speedup=local_seconds / ray_seconds,
        records_identical_without_timings=identical,
    )
    return out


# ----------------------------------------------------------------------------- 2. vectorised planning


def _vector_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: N envs, GraspMPC over them (batched or per-env), timed; peak memory."""
    import gymnasium as gym

    import mpc_grasp  # noqa: F401  (registers the envs)
    from mpc_grasp.agent import GraspMPC
    from mpc_grasp.testbeds import PointMassWalls

    torch.set_num_threads(job["threads"])
    count, steps, device = job["envs"], job["steps"], torch.device(job["device"])
    model = PointMassWalls.from_layout("wall").to(device)
    options = dict(horizon=job["horizon"], iterations=job["iterations"], num_candidates=job["candidates"], replan_every=1, device=device)
    seeds = [1000 + index for index in range(count)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if job["mode"] == "batched":
        vec = gym.vector.SyncVectorEnv([lambda: gym.make(WALL, task="across") for _ in range(count)])
        agent = GraspMPC(model, "grasp", action_space=vec.single_action_space, seed=0, **options)
        obs, _ = vec.reset(seed=seeds)
        agent.predict(obs)  # warm-up (allocations, first-call overheads), not timed
        started = time.perf_counter()
        for _ in range(steps):
            actions, _ = agent.predict(obs)
            obs, *_ = vec.step(actions)
        seconds = time.perf_counter() - started
        vec.close()
    else:  # one agent per env, planned one after another
        envs = [gym.make(WALL, task="across") for _ in range(count)]
        agents = [GraspMPC(model, "grasp", action_space=env.action_space, seed=index, **options) for index, env in enumerate(envs)]
        observations = [env.reset(seed=seed)[0] for env, seed in zip(envs, seeds)]
        agents[0].predict(observations[0])
        agents[0].reset()
        started = time.perf_counter()
        for _ in range(steps):
            for index, (env, agent) in enumerate(zip(envs, agents)):
                action, _ = agent.predict(observations[index])
                observations[index], *_ = env.step(action)
        seconds = time.perf_counter() - started
    result = {
        **job,
        "seconds": seconds,
        "env_steps_per_second": count * steps / seconds,
        "plans_per_second": steps / seconds if job["mode"] == "batched" else count * steps / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "cuda_peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }
    return result


def vector_throughput(envs: Sequence[int], steps: int, horizon: int, iterations: int, candidates: int, device: str, threads: int) -> list[dict[str, Any]]:
    """One fresh process per configuration (so peak RSS is that configuration's own)."""
    jobs = [
        {"envs": n, "mode": "batched", "steps": steps, "horizon": horizon, "iterations": iterations, "candidates": candidates, "device": device, "threads": threads}
        for n in envs
    ]
    if 8 in envs:
        jobs.append({**next(job for job in jobs if job["envs"] == 8), "mode": "per_env"})
    results = []
    context = multiprocessing.get_context("spawn")
    for job in jobs:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            results.append(pool.submit(_vector_worker, job).result())
        print(f"  {job['mode']} N={job['envs']}: {results[-1]['env_steps_per_second']:.1f} env-steps/s", flush=True)
    return results


# ----------------------------------------------------------------------------- outputs


def markdown_report(report: dict[str, Any]) -> str:
    b = report["bench"]
    v = report["vector"]
    lines = [
        "# Scale-out measurements",
        "",
        f"Generated {report['timestamp']} by `{report['command']}` (commit `{report['git_commit'] or 'none'}`), "
        f"{report['environment']['cpus']} CPUs shared with other jobs, torch threads = 1 per process.",
        "",
        f"## Planner benchmark throughput ({b['plans']} plans: 4 planners x 2 families x H 10/25, small budgets)",
        "",
        "| run | wall time | plans / minute |",
        "|---|---|---|",
        f"| in-process | {b['local_seconds']:.1f} s | {b['local_plans_per_minute']:.0f} |",
        f"| local Ray, {b['workers']} workers | {b['ray_seconds']:.1f} s (+ {b['ray_startup_seconds']:.1f} s Ray start-up) | {b['ray_plans_per_minute']:.0f} |",
        "",
        f"Speed-up {b['speedup']:.2f}x; records identical to the in-process run (timings aside): **{b['records_identical_without_timings']}**.",
        "",
        f"## Vectorised GraspMPC on grid world `wall` (model: analytic PointMassWalls; H={v['horizon']}, "
        f"{v['iterations']} iterations, {v['candidates']} candidates, a plan every step, device {v['device']})",
        "",
        "| envs | mode | env-steps / s | plans (batched calls) / s | peak RSS | peak CUDA memory |",
        "|---|---|---|---|---|---|",
    ]
    for row in v["runs"]:
        cuda = f"{row['cuda_peak_memory_mb']:.1f} MB" if row["cuda_peak_memory_mb"] is not None else "n/a (CPU)"
        lines.append(
            f"| {row['envs']} | {row['mode']} | {row['env_steps_per_second']:.2f} | {row['plans_per_second']:.2f} | {row['peak_rss_mb']:.0f} MB | {cuda} |"
        )
    lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import save_figure

    runs = [row for row in report["vector"]["runs"] if row["mode"] == "batched"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    b = report["bench"]
    left.bar(["in-process", f"Ray x{b['workers']}"], [b["local_plans_per_minute"], b["ray_plans_per_minute"]], color=["tab:gray", "tab:blue"])
    left.set_ylabel("plans / minute")
    left.set_title("planner bench throughput")
    right.plot([row["envs"] for row in runs], [row["env_steps_per_second"] for row in runs], marker="o", label="batched GraspMPC")
    per_env = [row for row in report["vector"]["runs"] if row["mode"] == "per_env"]
    if per_env:
        right.plot([row["envs"] for row in per_env], [row["env_steps_per_second"] for row in per_env], "s", color="tab:red", label="per-env agents")
    right.set_xscale("log", base=2)
    right.set_xlabel("envs N")
    right.set_ylabel("env-steps / s")
    right.set_title(f"vectorised GraspMPC ({report['vector']['device']})")
    right.legend()
    fig.tight_layout()
    save_figure(fig, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer pairs and control steps")
    parser.add_argument("--workers", type=int, default=2, help="local Ray workers (CPUs) for the benchmark part")
    parser.add_argument("--pairs", type=int, default=None, help="bench start/goal pairs (default 6, --quick 2)")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--steps", type=int, default=None, help="timed control steps per run (default 5, --quick 2)")
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=50, help="GRASP iterations per plan")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="device of the vectorised-planning part")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-bench", action="store_true", help="only the vectorised-planning part")
    parser.add_argument("--out-dir", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} requested but torch.cuda.is_available() is False")
    if args.workers < 1 or any(n < 1 for n in args.envs):
        parser.error("--workers and --envs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = args.pairs or (2 if args.quick else 6)
    steps = args.steps or (2 if args.quick else 5)
    started = time.perf_counter()
    print("benchmark throughput ...", flush=True)
    bench_part = None if args.skip_bench else bench_throughput(pairs, args.workers)
    print("vectorised planning ...", flush=True)
    runs = vector_throughput(args.envs, steps, args.horizon, args.iterations, args.candidates, args.device, args.threads)
    report = {
        "command": "python experiments/scale_out.py" + (" " + shlex.join(argv) if argv else ""),
        "git_commit": bench.git_commit(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(), "cpus": multiprocessing.cpu_count()},
        "bench": bench_part,
        "vector": {
            "model": "PointMassWalls.from_layout('wall') (analytic test bed; the env is GridWorld wall, task='across')",
            "horizon": args.horizon, "iterations": args.iterations, "candidates": args.candidates, "device": args.device,
            "steps": steps, "runs": runs,
        },  # fmt: skip
        "notes": [
            "Ray throughput excludes Ray start-up (reported separately); every task pins torch to 1 thread.",
            "The 2 cores were shared with other busy processes: absolute numbers are noisy, compare within this run.",
            "Batched planning does the same arithmetic for N envs in one call: at these small sizes (N x 8 candidates x "
            "30 steps x 2-D states) a planner iteration is dominated by per-call Python/dispatch overhead, which batching "
            "pays once for all envs; with larger models or batches on CPU the gain shrinks towards the FLOP ratio, on a "
            "GPU the batch dimension is where it grows.",
            "Peak RSS is each configuration's own (fresh process per row); it is the Python/torch/gymnasium import "
            "baseline: the planning tensors are a few hundred KB even at N = 32.",
        ],
        "total_seconds": time.perf_counter() - started,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "scale_out.json").write_text(json.dumps(report, indent=1))
    if bench_part is not None:
        (args.out_dir / "scale_out.md").write_text(markdown_report(report))
        plot(report, args.out_dir / "scale_out.png")
        print(markdown_report(report))
    return report


if __name__ == "__main__":
    main()
