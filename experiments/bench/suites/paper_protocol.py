"""The field's evaluation protocol (DINO-WM, stable-worldmodel, LeWM) on pixel Point-Maze: offline expert
trajectories with images, frameskip 5, goals taken from held-out trajectories a fixed number of env steps ahead,
open loop (plan once, execute) and MPC (replan every model step within a step budget), success by the env's own
criterion (the ball within 0.45 of the goal trajectory's position).

* Data: :func:`trajectories` — a noisy BFS waypoint expert (``mpc_grasp.envs.point_maze.waypoint_policy``) in
  ``PointMazeAdapter(pixels=True, action_repeat=5)``, episodes of :data:`EPISODE_STEPS` model steps, stored as a
  Minari dataset under the cache folder.
* Models: a :class:`~mpc_grasp.models.pixel.PixelWorldModel` trained on images and actions only, and, for the
  state rows, an ``MLPWorldModel`` on the same trajectories' true states; both cached.
* Pairs: :func:`eval_pairs` — held-out trajectories (another seed); start = frame t0, goal = frame t0 + k model
  steps (k = goal_offset / 5); a pair whose start already meets the success test is drawn again (counted).
* Units: one (task, observation, planner, mode, goal offset) cell over all pairs (:func:`run_cell`), resumable.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.engine import REPO_ROOT, ResumeLog, WorkUnit, run_units
from bench.report import ci_cell, number_cell, success_rate
from mpc_grasp import GraspMPC
from mpc_grasp.data import TransitionDataset
from mpc_grasp.parallel import ParallelOptions
from mpc_grasp.planners import GraspConfig

FRAMESKIP = 5
"""Env steps per model step (the field's frameskip): the adapter repeats each action this many times."""
EPISODE_STEPS = 60
"""Model steps per collected trajectory (300 env steps)."""
IMAGE_SIZE = 64
SUCCESS_RADIUS = 0.45
TASKS = {"pointmaze_umaze": "umaze", "pointmaze_medium": "medium"}
PLANNERS: dict[str, tuple[str, dict[str, Any]]] = {
    "grasp": ("grasp", {}),
    "grasp_paper": ("grasp", {"config": GraspConfig.paper(num_candidates=16)}),
    "cem": ("cem", {}),
    "mppi": ("mppi", {}),
    "gd": ("gd", {}),
}
"""Row name -> (planner, options): every planner at its defaults (the paper preset as a config)."""
CACHE = REPO_ROOT / "checkpoints" / "paper_protocol"


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """One run of the protocol: which cells, how many pairs, where caches and results go."""

    tasks: tuple[str, ...] = ("pointmaze_umaze",)
    observations: tuple[str, ...] = ("pixels", "state")
    planners: tuple[str, ...] = ("grasp", "cem")
    modes: tuple[str, ...] = ("mpc", "open_loop")
    goal_offsets: tuple[int, ...] = (25,)
    episodes: int = 50
    train_episodes: int = 200
    pixel_training: tuple[tuple[str, Any], ...] = ()
    """``PixelTrainingConfig`` fields to change (e.g. ``(("iterations", 20),)`` in tests); default: its defaults."""
    state_training: tuple[tuple[str, Any], ...] = ()
    """``train_world_model`` options to change; default: its defaults (5 minutes at most)."""
    seed: int = 0
    cache: Path = CACHE
    out_dir: Path = REPO_ROOT / "results"
    resume: bool = False
    progress: bool = True
    parallel: ParallelOptions = ParallelOptions()

    def __post_init__(self) -> None:
        for name, allowed, values in (
            ("tasks", TASKS, self.tasks),
            ("observations", ("pixels", "state"), self.observations),
            ("planners", PLANNERS, self.planners),
            ("modes", ("mpc", "open_loop"), self.modes),
        ):
            unknown = [value for value in values if value not in allowed]
            if unknown:
                raise ValueError(f"unknown {name} {unknown}; choose from {sorted(allowed)}")
        bad = [k for k in self.goal_offsets if k < FRAMESKIP or k % FRAMESKIP]
        if bad:
            raise ValueError(f"goal offsets must be positive multiples of the frameskip {FRAMESKIP}, got {bad}")
        if max(self.goal_offsets, default=0) // FRAMESKIP >= EPISODE_STEPS:
            raise ValueError(f"goal offsets must be below {EPISODE_STEPS * FRAMESKIP} env steps (one trajectory)")


# ----------------------------------------------------------------------------- env, data, models


def make_env(task: str, *, collect: bool = False) -> Any:
    """Pixel Point-Maze at the protocol's frameskip; ``collect`` keeps going with new goals (expert data)."""
    from mpc_grasp.envs.point_maze import PointMazeAdapter

    return PointMazeAdapter(
        TASKS[task],
        action_repeat=FRAMESKIP,
        continuing_task=collect,
        reset_target=collect,
        pixels=True,
        image_size=IMAGE_SIZE,
    )


def trajectories(task: str, episodes: int, seed: int, cache: Path) -> Any:
    """``episodes`` expert trajectories of :data:`EPISODE_STEPS` model steps (a ``PixelDataset`` with true
    states), read from the Minari cache or collected and stored there."""
    from mpc_grasp.envs.point_maze import waypoint_policy

    from mpc_grasp.models.pixel import PixelDataset, collect_pixel_dataset

    dataset_id = f"mpc_grasp/{task}-expert-{episodes}x{EPISODE_STEPS}-seed{seed}-v0"
    root = Path(cache) / "minari"
    if (root / dataset_id).is_dir():
        return PixelDataset.load_minari(dataset_id, root)
    env = make_env(task, collect=True)
    data = collect_pixel_dataset(
        env, episodes * EPISODE_STEPS, seed=seed, episode_length=EPISODE_STEPS, policy=waypoint_policy(env)
    )
    env.close()
    data.save_minari(dataset_id, root, author="mpc_grasp", description=f"noisy BFS waypoint expert, {task}")
    return data


def pixel_model(task: str, config: ProtocolConfig) -> tuple[Any, dict[str, Any]]:
    """The cached pixel world model of ``task`` (trained on the expert images and actions when missing)."""
    from mpc_grasp.models.pixel import load_pixel_world_model, save_pixel_world_model, train_pixel_world_model

    path = (
        Path(config.cache)
        / f"{task}_pixels_{config.train_episodes}ep_seed{config.seed}{_tag(config.pixel_training)}.pt"
    )
    if path.is_file():
        return load_pixel_world_model(path), {"path": str(path), "loaded_from_cache": True}
    data = trajectories(task, config.train_episodes, config.seed, config.cache)
    started = time.perf_counter()
    options = {"seed": config.seed, **dict(config.pixel_training)}
    model = train_pixel_world_model(data, progress=config.progress, **options)
    model.metadata.update(task=task, frameskip=FRAMESKIP)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_pixel_world_model(model, path)
    return model, {"path": str(path), "loaded_from_cache": False, "train_seconds": time.perf_counter() - started}


def state_model(task: str, config: ProtocolConfig) -> tuple[Any, dict[str, Any]]:
    """The cached MLP world model on the same trajectories' true states (the protocol's state rows)."""
    from mpc_grasp.models import load_world_model, save_world_model, train_world_model

    path = (
        Path(config.cache) / f"{task}_state_{config.train_episodes}ep_seed{config.seed}{_tag(config.state_training)}.pt"
    )
    if path.is_file():
        return load_world_model(path), {"path": str(path), "loaded_from_cache": True}
    data = trajectories(task, config.train_episodes, config.seed, config.cache)
    started = time.perf_counter()
    options = {"seed": config.seed, "max_time_s": 300.0, **dict(config.state_training)}
    model = train_world_model(state_transitions(data), progress=config.progress, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_world_model(model, path)
    return model, {"path": str(path), "loaded_from_cache": False, "train_seconds": time.perf_counter() - started}


def _tag(options: tuple[tuple[str, Any], ...]) -> str:
    """A cache-name suffix for non-default training options (none for the defaults)."""
    return "" if not options else "_" + "_".join(f"{key}{value}" for key, value in options)


def state_transitions(data: Any) -> TransitionDataset:
    """The (state, action, next state) transitions of an image dataset with true states."""
    same = data.segment_ids[1:] == data.segment_ids[:-1]
    index = np.flatnonzero(same)
    steps = np.concatenate([np.arange(n) for n in np.bincount(data.segment_ids)])[index]
    return TransitionDataset(
        observations=data.states[index].astype(np.float32),
        actions=data.actions[index],
        next_observations=data.states[index + 1].astype(np.float32),
        terminated=np.zeros(len(index), dtype=bool),
        episode_ids=data.segment_ids[index],
        step_ids=steps,
    )


# ----------------------------------------------------------------------------- evaluation pairs


def eval_pairs(task: str, offset: int, config: ProtocolConfig) -> tuple[list[dict[str, Any]], int]:
    """``config.episodes`` (start, goal) pairs from held-out expert trajectories, the goal ``offset`` env steps
    after the start; pairs whose start already meets the success test are drawn again. Returns (pairs, redraws)."""
    held_out = trajectories(task, config.episodes, config.seed + 1000, config.cache)
    rng = np.random.default_rng([config.seed, offset])
    ahead = offset // FRAMESKIP
    pairs, redraws = [], 0
    for segment in np.unique(held_out.segment_ids):
        rows = np.flatnonzero(held_out.segment_ids == segment)
        for _ in range(100):
            t0 = int(rng.integers(0, len(rows) - ahead))
            start, goal = rows[t0], rows[t0 + ahead]
            if np.linalg.norm(held_out.states[start, :2] - held_out.states[goal, :2]) > SUCCESS_RADIUS:
                break
            redraws += 1
        pairs.append(
            {
                "index": int(segment),
                "start_state": held_out.states[start].tolist(),
                "goal_state": held_out.states[goal].tolist(),
                "start_frame": held_out.frames[start],
                "goal_frame": held_out.frames[goal],
            }
        )
    return pairs, redraws


# ----------------------------------------------------------------------------- one cell


def run_cell(task: Mapping[str, Any]) -> dict[str, Any]:
    """Every pair of one (task, observation, planner, mode, goal offset) cell: success flags and plan times."""
    torch.set_num_threads(1)
    config: ProtocolConfig = task["config"]
    load = pixel_model if task["observation"] == "pixels" else state_model
    model, _ = load(task["task"], config)
    pairs, _ = eval_pairs(task["task"], task["goal_offset"], config)
    env = make_env(task["task"])
    horizon = task["goal_offset"] // FRAMESKIP
    budget = 2 * horizon  # model steps: the field's 50 env-step MPC budget for a goal 25 env steps ahead
    successes, plan_times = [], []
    for pair in pairs:
        agent = _agent(model, task, env, horizon, pair)
        obs = _place(env, pair)
        steps = budget if task["mode"] == "mpc" else horizon
        reached = False
        for _ in range(steps):
            action, _ = agent.predict(_observation(obs, task["observation"]))
            obs, _, terminated, _, info = env.step(action)
            reached = reached or bool(info["is_success"])
            if terminated:
                break
        successes.append(reached)
        plan_times += [d.wall_time for d in agent.diagnostics if d.replanned]
    env.close()
    return {
        "successes": int(sum(successes)),
        "episodes": len(successes),
        "flags": successes,
        "s_per_plan": statistics.median(plan_times) if plan_times else None,
        "plans": len(plan_times),
    }


def _agent(model: Any, task: Mapping[str, Any], env: Any, horizon: int, pair: Mapping[str, Any]) -> GraspMPC:
    """A GraspMPC at the planner's defaults toward the pair's goal; open loop = one plan executed in full."""
    name, defaults = PLANNERS[task["planner"]]
    options: dict[str, Any] = dict(defaults)
    if task["observation"] == "pixels":
        options["goal_observation"] = pair["goal_frame"]
    else:
        options["goal"] = np.asarray(pair["goal_state"], dtype=np.float32)
    if task["mode"] == "open_loop":
        options["replan_every"] = horizon
    seed = None if "config" in options else 0  # a ready config carries its own seed (0)
    return GraspMPC(model, name, horizon, action_space=env.action_space, seed=seed, **options)


def _place(env: Any, pair: Mapping[str, Any]) -> dict[str, Any]:
    """Reset the env to the pair: the ball at its start state, the env's goal at the goal state's position."""
    env.reset(seed=int(pair["index"]))
    env.set_goal(np.asarray(pair["goal_state"][:2]))
    start = np.asarray(pair["start_state"])
    return env.set_ball_state(start[:2], start[2:])


def _observation(obs: Mapping[str, Any], observation: str) -> Any:
    return obs["observation"] if observation == "pixels" else obs["state"].astype(np.float32)


# ----------------------------------------------------------------------------- the run


def cells(config: ProtocolConfig) -> list[WorkUnit]:
    """One unit per (task, observation, planner, mode, goal offset)."""
    units = []
    for task in config.tasks:
        for observation in config.observations:
            for planner in config.planners:
                for mode in config.modes:
                    for offset in config.goal_offsets:
                        key: dict[str, Any] = {"task": task, "observation": observation, "planner": planner}
                        key.update(mode=mode, goal_offset=offset)
                        settings: dict[str, Any] = {"episodes": config.episodes, "seed": config.seed}
                        settings.update(train_episodes=config.train_episodes)
                        settings.update(training=[config.pixel_training, config.state_training])
                        units.append(WorkUnit(key, settings, task={**key, "config": config}))
    return units


def run_protocol(config: ProtocolConfig, command: str) -> dict[str, Any]:
    """Build the caches (data, models), run every cell (reusing the resume log), return the report."""
    started = time.perf_counter()
    models, redraws = {}, {}
    for task in config.tasks:
        for observation in config.observations:
            _, models[f"{task}/{observation}"] = (pixel_model if observation == "pixels" else state_model)(task, config)
        for offset in config.goal_offsets:
            redraws[f"{task}/{offset}"] = eval_pairs(task, offset, config)[1]
    units = cells(config)
    log = ResumeLog(Path(config.out_dir) / "paper_protocol.partial.jsonl", resume=config.resume)
    results = run_units(run_cell, units, log=log, parallel=config.parallel, progress=config.progress, desc="cells")
    rows = []
    for unit, result in zip(units, results):
        rate, interval, _ = success_rate(result["flags"])
        rows.append({**unit.key, **{k: v for k, v in result.items() if k != "flags"}, "rate": rate, "ci95": interval})
    return {
        "command": command,
        "protocol": {"frameskip": FRAMESKIP, "image_size": IMAGE_SIZE, "episode_steps": EPISODE_STEPS},
        "config": {k: str(v) if isinstance(v, (Path, ParallelOptions)) else v for k, v in vars(config).items()},
        "models": models,
        "redrawn_pairs": redraws,
        "rows": rows,
        "units_reused_from_log": log.reused,
        "total_seconds": time.perf_counter() - started,
    }


def markdown(report: Mapping[str, Any]) -> str:
    """One table per task: planners x (observation, mode, goal offset) with success [95% CI] · s per plan."""
    rows: Sequence[Mapping[str, Any]] = report["rows"]
    lines = [
        "# The field's protocol on pixel Point-Maze",
        "",
        f"Frameskip {report['protocol']['frameskip']}, {report['protocol']['image_size']}px top-down frames, goals "
        "from held-out expert trajectories k env steps ahead, MPC budget 2k env steps, success = the env's own test "
        f"(ball within {SUCCESS_RADIUS} of the goal). Pairs redrawn because the start already succeeded: "
        f"{report['redrawn_pairs']}. Cells: success [95% CI] · median s per plan.",
    ]
    for task in dict.fromkeys(row["task"] for row in rows):
        columns = list(
            dict.fromkeys((r["observation"], r["mode"], r["goal_offset"]) for r in rows if r["task"] == task)
        )
        lines += ["", f"## {task}", "", "| planner | " + " | ".join(f"{o} {m} {k}" for o, m, k in columns) + " |"]
        lines.append("|---|" + "---|" * len(columns))
        for planner in dict.fromkeys(r["planner"] for r in rows if r["task"] == task):
            cells_ = []
            for observation, mode, offset in columns:
                match = [
                    r
                    for r in rows
                    if (r["task"], r["planner"], r["observation"], r["mode"], r["goal_offset"])
                    == (task, planner, observation, mode, offset)
                ]
                cells_.append(
                    "–"
                    if not match
                    else f"{ci_cell(match[0]['rate'], match[0]['ci95'])} · {number_cell(match[0]['s_per_plan'])}"
                )
            lines.append(f"| {planner} | " + " | ".join(cells_) + " |")
    return "\n".join(lines)
