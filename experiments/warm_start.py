"""Does warm-starting GRASP from the previous plan save optimisation in closed loop? (issue 4)

Grid world ``wall`` (``--task random``: start/goal anywhere, the default; ``across``: opposite rooms), planning on the exact
analytic model ``PointMassWalls.from_layout("wall")`` (or a learned checkpoint with ``--model``).

Part A, same states: a warm-started ``GraspMPC`` runs closed-loop episodes; at every replan after
the first, the SAME problem (state, goal) is solved twice with the same budget and no early stop:
warm (from the previous plan shifted, as the agent does) and cold (no init). Every
``--eval-every`` iterations the best candidate's true model-rollout cost is recorded. The agent
executes the warm plan. Reported per replan:

* iterations-to-quality: first iteration at which a plan's rollout cost is
  <= ``cold final cost x (1 + rel_tol) + abs_tol`` (the cold plan's own final quality);
* iterations-to-success-under-model: first iteration at which some candidate's rollout ends
  within ``goal_tolerance`` of the goal (what early stopping would cut at).

Part B, closed loop: warm- and cold-started agents with early stopping (``goal_tolerance``) on the
same episodes: success (Wilson 95%), median iterations and wall time per plan.

Outputs: ``results/warm_start.json`` (every number, command, commit) and ``results/warm_start.png``
(cost vs iteration, median over replans; histograms of iterations-to-quality and -to-success).
``--quick`` (< 1 min) writes ``warm_start_quick.{json,png}``.

    python experiments/warm_start.py            # ~5 minutes on 1 CPU thread
    python experiments/warm_start.py --quick
    python experiments/warm_start.py --model runs/wall.pt --set lr_actions=0.1
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_baselines import git_commit  # noqa: E402

from mpc_grasp.agent import GraspMPC  # noqa: E402
from mpc_grasp.cli import parse_key_value  # noqa: E402
from mpc_grasp.evaluation import run_episodes, summarize_episodes  # noqa: E402
from mpc_grasp.models import load_world_model  # noqa: E402
from mpc_grasp.planners import GraspConfig, GraspPlanner, PlanResult  # noqa: E402
from mpc_grasp.planners.base import config_from_kwargs  # noqa: E402
from mpc_grasp.plotting import save_figure  # noqa: E402
from mpc_grasp.testbeds import PointMassWalls  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PLANNER_KWARGS = ("dense_goal_weight", "state_weights")  # --set keys that are planner arguments, not GraspConfig fields
ENV_ID = "mpc_grasp/GridWorldWall-v0"


@dataclass(frozen=True)
class Trace:
    """Best-candidate rollout cost and min final goal distance, sampled during one plan."""

    iterations: tuple[int, ...]
    cost: tuple[float, ...]
    min_final_distance: tuple[float, ...]
    final_cost: float
    wall_time: float


class ComparingGrasp(GraspPlanner):
    """A GRASP planner that, whenever it gets a warm start, also solves the same problem cold.

    Both solves are traced (rollout cost every ``eval_every`` iterations); the warm result is
    returned, so the agent's behaviour is exactly that of a warm-started agent.
    """

    def __init__(self, model: Any, horizon: int, config: GraspConfig, eval_every: int, **kwargs: Any) -> None:
        GraspPlanner.__init__(self, model, horizon, config, **kwargs)
        self.eval_every = int(eval_every)
        self.comparisons: list[dict[str, Trace]] = []

    def plan_batch(self, states: Any, goals: Any = None, init: Any = None, seeds: Any = None) -> PlanResult:
        if init is None:
            return super().plan_batch(states, goals, seeds=seeds)
        cold, cold_trace = self._traced(states, goals, None, seeds)
        warm, warm_trace = self._traced(states, goals, init, seeds)
        self.comparisons.append({"cold": cold_trace, "warm": warm_trace})
        return warm

    def _traced(self, states: Any, goals: Any, init: Any, seeds: Any = None) -> tuple[PlanResult, Trace]:
        start = torch.as_tensor(states, dtype=torch.float32, device=self.device)
        goal = torch.as_tensor(goals, dtype=torch.float32, device=self.device)
        iterations: list[int] = []
        costs: list[float] = []
        distances: list[float] = []
        last = self.config.iterations - 1

        def record(iteration: int, _virtual: Any, actions: torch.Tensor) -> None:
            if iteration != 0 and (iteration + 1) % self.eval_every != 0 and iteration != last:
                return
            with torch.no_grad():  # own rollout: the planner's model-call counters stay untouched
                actions = self.clamp_actions(actions)
                state = start[:, None, :].expand(actions.shape[0], actions.shape[1], self.state_dim)
                rollout = [state]
                for step in range(actions.shape[2]):
                    state = self.model(state.reshape(-1, self.state_dim), actions[:, :, step].reshape(-1, self.action_dim))
                    state = state.reshape(actions.shape[0], actions.shape[1], self.state_dim)
                    rollout.append(state)
                rollout_t = torch.stack(rollout, dim=2)
                cost = self.trajectory_cost(rollout_t, actions, goal)
                final = (rollout_t[:, :, -1] - goal[:, None]).norm(dim=-1)
            iterations.append(iteration + 1)
            costs.append(float(cost.min()))
            distances.append(float(final.min()))

        self.callback = record
        try:
            result = super().plan_batch(states, goals, init=init, seeds=seeds)
        finally:
            self.callback = None
        if result.info["iterations"] == 0:  # a warm start that already reaches the goal is kept (keep_solved_warm_start)
            iterations, costs = [0], [float(result.cost.min())]
            distances = [float(result.info["final_distance"].min())]
        trace = Trace(tuple(iterations), tuple(costs), tuple(distances), float(result.cost.min()), float(result.info["wall_time"]))
        return result, trace


def first_reaching(trace: Trace, threshold: float, values: str = "cost") -> int | None:
    """First recorded iteration whose value is <= ``threshold`` (None if never)."""
    series = trace.cost if values == "cost" else trace.min_final_distance
    for iteration, value in zip(trace.iterations, series):
        if value <= threshold:
            return iteration
    return None


def analyse(comparisons: list[dict[str, Trace]], rel_tol: float, abs_tol: float, goal_tolerance: float) -> dict[str, Any]:
    """Per-replan iterations-to-quality / -to-success for warm and cold, and their summaries."""
    rows = []
    for pair in comparisons:
        cold, warm = pair["cold"], pair["warm"]
        threshold = cold.final_cost * (1 + rel_tol) + abs_tol
        rows.append({
            "informative": cold.cost[0] - cold.final_cost > abs_tol,
            "threshold": threshold,
            "cold_final_cost": cold.final_cost,
            "warm_final_cost": warm.final_cost,
            "cold_iters_to_quality": first_reaching(cold, threshold),
            "warm_iters_to_quality": first_reaching(warm, threshold),
            "cold_iters_to_success": first_reaching(cold, goal_tolerance, "distance"),
            "warm_iters_to_success": first_reaching(warm, goal_tolerance, "distance"),
            "cold_wall_time_s": cold.wall_time,
            "warm_wall_time_s": warm.wall_time,
        })

    def stats(key: str, subset: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        chosen = rows if subset is None else subset
        values = [r[key] for r in chosen if r[key] is not None]
        return {
            "reached": len(values),
            "of": len(chosen),
            "median": float(np.median(values)) if values else None,
            "mean": float(np.mean(values)) if values else None,
        }

    informative = [r for r in rows if r["informative"]]
    both = [r for r in rows if r["warm_iters_to_quality"] is not None and r["cold_iters_to_quality"] is not None]
    success_both = [r for r in rows if r["warm_iters_to_success"] is not None and r["cold_iters_to_success"] is not None]
    return {
        "replans_compared": len(rows),
        "warm_better_final_cost": sum(r["warm_final_cost"] < r["cold_final_cost"] for r in rows),
        "median_final_cost": {
            "warm": float(np.median([r["warm_final_cost"] for r in rows])) if rows else None,
            "cold": float(np.median([r["cold_final_cost"] for r in rows])) if rows else None,
        },
        "iters_to_quality": {"warm": stats("warm_iters_to_quality"), "cold": stats("cold_iters_to_quality")},
        "iters_to_success_under_model": {"warm": stats("warm_iters_to_success"), "cold": stats("cold_iters_to_success")},
        "informative_replans": len(informative),
        "iters_to_quality_informative": {
            "warm": stats("warm_iters_to_quality", informative), "cold": stats("cold_iters_to_quality", informative),
        },
        "median_speedup_to_quality": float(np.median([r["cold_iters_to_quality"] / r["warm_iters_to_quality"] for r in both])) if both else None,
        "median_speedup_to_success": float(np.median([r["cold_iters_to_success"] / r["warm_iters_to_success"] for r in success_both])) if success_both else None,
        "rows": rows,
    }


def plot(comparisons: list[dict[str, Trace]], analysis: dict[str, Any], iterations: int, abs_tol: float, path: Path, title: str) -> Path:
    """Cost vs iteration (median and IQR over replans) and the two iterations-to-X histograms."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for kind, color in (("cold", "tab:blue"), ("warm", "tab:red")):
        grid = np.asarray(comparisons[0][kind].iterations)
        pairs = [pair for pair in comparisons if len(pair[kind].cost) == len(grid)]
        curves = np.array([(np.asarray(p[kind].cost) + abs_tol) / (p["cold"].final_cost + abs_tol) for p in pairs])
        q25, med, q75 = np.percentile(curves, [25, 50, 75], axis=0)
        ax.plot(grid, med, color=color, lw=2, label=f"{kind} start (median over {len(curves)} replans)")
        ax.fill_between(grid, q25, q75, color=color, alpha=0.2)
    ax.axhline(1.0, color="0.4", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("GRASP iteration")
    ax.set_ylabel("rollout cost / cold plan's final cost")
    ax.set_title("best-candidate rollout cost (band: 25-75%)", fontsize=10)
    ax.legend(fontsize=8)
    width = iterations / 15
    bins = [*np.linspace(0, iterations, 16)[:-1], iterations + 0.5, iterations + 0.5 + width]
    overflow = iterations + 0.5 + width / 2
    for ax, key, label in (
        (axes[1], "iters_to_quality", "iterations to reach the cold plan's final cost"),
        (axes[2], "iters_to_success", "iterations to success under the model"),
    ):
        for kind, color in (("cold", "tab:blue"), ("warm", "tab:red")):
            values = [r[f"{kind}_{key}"] for r in analysis["rows"]]
            data = [overflow if v is None else v for v in values]
            missed = sum(v is None for v in values)
            ax.hist(data, bins=bins, color=color, alpha=0.5,
                    label=f"{kind} (never: {missed}/{len(values)})")
        ax.axvline(iterations + 0.5, color="0.4", ls=":", lw=1)
        ax.set_xlabel(label + " (right of dotted line: never)")
        ax.set_ylabel("replans")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None, help="learned world-model checkpoint (default: the exact analytic PointMassWalls)")
    p.add_argument("--episodes", type=int, default=2, help="part A episodes (same-state comparisons)")
    p.add_argument("--closed-loop-episodes", type=int, default=2, help="part B episodes per agent (0 skips part B)")
    p.add_argument("--horizon", type=int, default=50)
    p.add_argument("--iterations", type=int, default=150, help="GRASP iterations per plan")
    p.add_argument("--replan-every", type=int, default=5)
    p.add_argument("--max-steps", type=int, default=60, help="steps per episode")
    p.add_argument("--eval-every", type=int, default=5, help="iterations between traced rollout costs")
    p.add_argument("--goal-tolerance", type=float, default=0.3)
    p.add_argument("--rel-tol", type=float, default=0.05, help="quality threshold: cold final cost x (1 + rel_tol) + abs_tol")
    p.add_argument("--abs-tol", type=float, default=0.01)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="options", help="GRASP config option (repeatable)")
    p.add_argument("--task", choices=("random", "across"), default="random",
                   help="start/goal distribution: anywhere in free space, or across the wall (closed-loop GRASP mostly gets "
                        "stuck against the wall there, so most replans need no optimisation)")
    p.add_argument("--seed", type=int, default=1000, help="seed of the first episode (the RL baselines' eval seed)")
    p.add_argument("--out-dir", type=Path, default=REPO_ROOT / "results")
    p.add_argument("--quick", action="store_true", help="< 1 minute smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.episodes, args.closed_loop_episodes, args.horizon, args.iterations = 1, 1, 30, 60
        args.replan_every, args.max_steps = 10, 40
    for name in ("episodes", "horizon", "iterations", "replan_every", "max_steps", "eval_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.closed_loop_episodes < 0:
        p.error("--closed-loop-episodes must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    if args.model:
        model = load_world_model(args.model)
        model_name = f"learned ({args.model})"
    else:
        model = PointMassWalls.from_layout("wall", agent_radius=0.1, step_size=0.25)
        model_name = "exact analytic PointMassWalls"
    options = {"iterations": args.iterations, **parse_key_value(args.options)}
    planner_kwargs = {k: options.pop(k) for k in PLANNER_KWARGS if k in options}
    config = config_from_kwargs(GraspConfig, options)
    env = gym.make(ENV_ID, task=args.task)
    low, high = env.action_space.low, env.action_space.high

    # Part A: same-state warm vs cold, no early stopping
    planner = ComparingGrasp(model, args.horizon, config, args.eval_every, action_low=low, action_high=high, **planner_kwargs)
    agent = GraspMPC(model, planner, action_space=env.action_space, replan_every=args.replan_every)
    print(f"[A] {args.episodes} episode(s), H={args.horizon}, {args.iterations} iterations, {model_name}", flush=True)
    records_a = run_episodes(env, agent, args.episodes, seed=args.seed, max_steps=args.max_steps)
    analysis = analyse(planner.comparisons, args.rel_tol, args.abs_tol, args.goal_tolerance)
    if not planner.comparisons:
        raise SystemExit("no warm-started replans happened (episodes ended at the first plan); use more steps/episodes")

    # Part B: closed loop with early stopping, warm vs cold agents on the same episodes
    closed_loop: dict[str, Any] = {}
    for warm in (True, False) if args.closed_loop_episodes else ():
        kind = "warm" if warm else "cold"
        print(f"[B] {kind}-started agent, {args.closed_loop_episodes} episode(s), early stop at {args.goal_tolerance}", flush=True)
        agent_b = GraspMPC(
            model, "grasp", horizon=args.horizon, action_space=env.action_space, replan_every=args.replan_every,
            warm_start=warm, **{**options, **planner_kwargs, "goal_tolerance": args.goal_tolerance, "check_every": args.eval_every},
        )
        records = run_episodes(env, agent_b, args.closed_loop_episodes, seed=args.seed, max_steps=args.max_steps)
        closed_loop[kind] = {**summarize_episodes(records), "episodes_detail": [r.to_json() for r in records]}

    stem = "warm_start_quick" if args.quick else "warm_start"
    out_json, out_png = args.out_dir / f"{stem}.json", args.out_dir / f"{stem}.png"
    q, s = analysis["iters_to_quality"], analysis["iters_to_success_under_model"]
    title = (f"GRASP warm vs cold start, grid world `wall` ({args.task} tasks), {model_name.split(' (')[0]} model, H={args.horizon}: "
             f"median iterations to cold quality {q['warm']['median']} vs {q['cold']['median']}")
    plot(planner.comparisons, analysis, args.iterations, args.abs_tol, out_png, title)
    payload = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *(sys.argv if argv is None else ["experiments/warm_start.py", *argv])]),
        "git_commit": git_commit(),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "model": model_name,
        "env_id": ENV_ID,
        "env_kwargs": {"task": args.task},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "grasp_config": vars(config),
        "part_a_episodes": [r.to_json() for r in records_a],
        "part_a": analysis,
        "traces": [{kind: vars(trace) for kind, trace in pair.items()} for pair in planner.comparisons],
        "part_b_closed_loop": closed_loop,
        "total_time_s": time.perf_counter() - started,
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(payload, indent=1))

    print(f"\n[A] {analysis['replans_compared']} replans compared (same state, {args.iterations} iterations each)")
    for name, block in (("to cold-start quality", q), ("to success under the model", s)):
        print(f"    iterations {name}: warm median {block['warm']['median']} (reached {block['warm']['reached']}/{block['warm']['of']}), "
              f"cold median {block['cold']['median']} (reached {block['cold']['reached']}/{block['cold']['of']})")
    qi = analysis["iters_to_quality_informative"]
    print(f"    replans where the cold plan improved by > abs_tol ({analysis['informative_replans']}): iterations to quality "
          f"warm median {qi['warm']['median']} ({qi['warm']['reached']}/{qi['warm']['of']}), cold median {qi['cold']['median']}")
    print(f"    median speedup (cold/warm iterations) to quality {analysis['median_speedup_to_quality']}, "
          f"to success {analysis['median_speedup_to_success']}; warm final cost lower in "
          f"{analysis['warm_better_final_cost']}/{analysis['replans_compared']}")
    for kind, summary in closed_loop.items():
        lo, hi = summary["success_ci95"]
        print(f"[B] {kind}: success {summary['successes']}/{summary['episodes']} [{lo:.2f}, {hi:.2f}], "
              f"median iterations/plan {summary['median_iterations_per_plan']}, median plan time "
              f"{summary['median_plan_time_s']:.2f} s, total plan time {summary['total_plan_time_s']:.1f} s")
    print(f"wrote {out_json} and {out_png} ({payload['total_time_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
