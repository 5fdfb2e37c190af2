"""The field's evaluation protocol (DINO-WM, stable-worldmodel, LeWM) on pixel Point-Maze and Push-T: offline
expert trajectories with images, frameskip 5, goals taken from held-out trajectories a fixed number of env steps
ahead, open loop (plan once, execute) and MPC (replan every model step within a step budget), success by the
field's test on the true state (:class:`ProtocolTask`).

* Tasks (:data:`TASKS`): Point-Maze UMaze / Medium (success: the ball within 0.45 of the goal position, the env's
  own test) and Push-T (success: DINO-WM's ``eval_state``, agent and block positions within 20 pixels together and
  the block angle within pi/9 of the goal's).
* Data: :func:`trajectories` — a noisy scripted expert (Point-Maze: the BFS waypoint controller
  ``waypoint_policy``; Push-T: the goal-directed ``pusher_policy``) in the pixel adapter at ``action_repeat=5``,
  episodes of :data:`EPISODE_STEPS` model steps, stored as a Minari dataset under the cache folder.
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
from collections.abc import Callable, Mapping, Sequence
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
"""Point-Maze: the env's own success radius (x-y distance to the goal)."""
PUSHT_AGENT_RADIUS = 30.0
"""Push-T frames draw the agent at twice its radius: 7.5 pixels across in a 64-pixel frame, about its size in
DINO-WM's 224-pixel frames (13 pixels); at its own radius it spans 3.7 pixels and no keypoint tracks it."""
PUSHT_POSITION_TOLERANCE = 20.0
"""Push-T (DINO-WM's ``eval_state``): pixels, norm of the agent and block position errors together."""
PUSHT_ANGLE_TOLERANCE = np.pi / 9
"""Push-T (DINO-WM's ``eval_state``): radians of block angle error."""


def maze_success(state: Any, goal_state: Any) -> bool:
    """Point-Maze: the ball ``[x, y, ...]`` within :data:`SUCCESS_RADIUS` of the goal position."""
    return bool(np.linalg.norm(np.subtract(state, goal_state)[:2]) <= SUCCESS_RADIUS)


def pusht_success(state: Any, goal_state: Any) -> bool:
    """Push-T: DINO-WM's test on the 8 normalised features (converted back to pixels and radians)."""
    from mpc_grasp.envs.pusht import state_from_features

    (current, _), (goal, _) = state_from_features(state), state_from_features(goal_state)
    position_error = float(np.linalg.norm(current[:4] - goal[:4]))
    angle_error = abs(float(current[4] - goal[4])) % (2 * np.pi)
    angle_error = min(angle_error, 2 * np.pi - angle_error)
    return position_error < PUSHT_POSITION_TOLERANCE and angle_error < PUSHT_ANGLE_TOLERANCE


@dataclasses.dataclass(frozen=True)
class ProtocolTask:
    """What differs between the protocol's tasks: the env, its expert and the success test on true states."""

    env: str
    """``"umaze"``, ``"medium"`` (Point-Maze maps) or ``"pusht"``."""
    success: Callable[[Any, Any], bool]
    """``success(state, goal_state)`` on the dataset's true states (the adapter's ``info["state"]``)."""
    title: str


TASKS: dict[str, ProtocolTask] = {
    "pointmaze_umaze": ProtocolTask("umaze", maze_success, "Point-Maze UMaze"),
    "pointmaze_medium": ProtocolTask("medium", maze_success, "Point-Maze Medium"),
    "pusht": ProtocolTask("pusht", pusht_success, "Push-T"),
}
PLANNERS: dict[str, tuple[str, dict[str, Any]]] = {
    "grasp": ("grasp", {}),
    "grasp_paper": ("grasp", {"config": GraspConfig.paper(num_candidates=16)}),
    "cem": ("cem", {}),
    "icem": ("icem", {}),
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
    equal_time: str | None = None
    """A planner row whose median s per plan (at its defaults) every planner is given: each planner's iteration
    budgets are scaled to match it, calibrated per cell group on ``calibration_pairs`` pairs. None: defaults."""
    calibration_pairs: int = 3
    seed: int = 0
    name: str = "paper_protocol"
    """File stem of the report and of its resume log under ``out_dir``."""
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
        if self.equal_time is not None and self.equal_time not in PLANNERS:
            raise ValueError(f"unknown equal_time planner {self.equal_time!r}; choose from {sorted(PLANNERS)}")
        bad = [k for k in self.goal_offsets if k < FRAMESKIP or k % FRAMESKIP]
        if bad:
            raise ValueError(f"goal offsets must be positive multiples of the frameskip {FRAMESKIP}, got {bad}")
        if max(self.goal_offsets, default=0) // FRAMESKIP >= EPISODE_STEPS:
            raise ValueError(f"goal offsets must be below {EPISODE_STEPS * FRAMESKIP} env steps (one trajectory)")


# ----------------------------------------------------------------------------- env, data, models


def make_env(task: str, *, collect: bool = False) -> Any:
    """The pixel env of ``task`` at the protocol's frameskip; ``collect`` never ends an episode on success (and on
    Point-Maze moves the goal when reached), so expert trajectories run their full length."""
    name = TASKS[task].env
    if name == "pusht":
        from mpc_grasp.envs.pusht import PushTAdapter

        return PushTAdapter(
            action_repeat=FRAMESKIP,
            continuing_task=collect,
            pixels=True,
            image_size=IMAGE_SIZE,
            agent_radius=PUSHT_AGENT_RADIUS,
        )
    from mpc_grasp.envs.point_maze import PointMazeAdapter

    return PointMazeAdapter(
        name, action_repeat=FRAMESKIP, continuing_task=collect, reset_target=collect, pixels=True, image_size=IMAGE_SIZE
    )


def expert(task: str, env: Any) -> tuple[Any, Any, str]:
    """(policy(obs, rng), reset_options(rng) or None, description) of the task's scripted expert."""
    if TASKS[task].env == "pusht":
        from mpc_grasp.envs.pusht import pusher_policy

        def push_task(rng: np.random.Generator) -> dict[str, float]:
            return {"block_distance": float(rng.uniform(60.0, 200.0)), "block_rotation": float(rng.uniform(0, 1.5))}

        return pusher_policy(env), push_task, "noisy goal-directed pusher, Push-T"
    from mpc_grasp.envs.point_maze import waypoint_policy

    return waypoint_policy(env), None, f"noisy BFS waypoint expert, {task}"


def trajectories(task: str, episodes: int, seed: int, cache: Path) -> Any:
    """``episodes`` expert trajectories of :data:`EPISODE_STEPS` model steps (a ``PixelDataset`` with true
    states), read from the Minari cache or collected and stored there."""
    from mpc_grasp.models.pixel import PixelDataset, collect_pixel_dataset

    dataset_id = f"mpc_grasp/{task}-expert-{episodes}x{EPISODE_STEPS}-seed{seed}-v0"
    root = Path(cache) / "minari"
    if (root / dataset_id).is_dir():
        return PixelDataset.load_minari(dataset_id, root)
    env = make_env(task, collect=True)
    policy, reset_options, description = expert(task, env)
    data = collect_pixel_dataset(
        env,
        episodes * EPISODE_STEPS,
        seed=seed,
        episode_length=EPISODE_STEPS,
        policy=policy,
        reset_options=reset_options,
    )
    env.close()
    data.save_minari(dataset_id, root, author="mpc_grasp", description=description)
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
    ahead, success = offset // FRAMESKIP, TASKS[task].success
    pairs, redraws = [], 0
    for segment in np.unique(held_out.segment_ids):
        rows = np.flatnonzero(held_out.segment_ids == segment)
        for _ in range(100):
            t0 = int(rng.integers(0, len(rows) - ahead))
            start, goal = rows[t0], rows[t0 + ahead]
            if not success(held_out.states[start], held_out.states[goal]):
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
    pairs = pairs[: task.get("limit", len(pairs))]
    env = make_env(task["task"])
    horizon = task["goal_offset"] // FRAMESKIP
    budget = 2 * horizon  # model steps: the field's 50 env-step MPC budget for a goal 25 env steps ahead
    success = TASKS[task["task"]].success
    successes, plan_times = [], []
    for pair in pairs:
        agent = _agent(model, task, env, horizon, pair)
        obs = _place(task["task"], env, pair)
        reached = False
        for _ in range(budget if task["mode"] == "mpc" else horizon):
            action, _ = agent.predict(_observation(obs, task["observation"]))
            obs, _, _, _, info = env.step(action)
            reached = success(info["state"], pair["goal_state"])
            if reached:
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
    agent = GraspMPC(model, name, horizon, action_space=env.action_space, seed=seed, **options)
    scale = float(task.get("budget_scale", 1.0))
    if scale == 1.0:
        return agent
    options["config"] = scaled_budget(agent.planner.config, scale)
    return GraspMPC(model, name, horizon, action_space=env.action_space, **options)


def scaled_budget(config: Any, scale: float) -> Any:
    """A resolved planner config with its cold, warm and first-plan iteration budgets multiplied by ``scale``
    (at least one iteration each): the same planner given more or less wall time per plan."""

    def scaled(iterations: int) -> int:
        return max(1, round(iterations * scale))

    return dataclasses.replace(
        config,
        iterations=scaled(config.iterations),
        warm_iterations=scaled(config.warm_iterations),
        first_plan_iterations=scaled(config.first_plan_iterations),
    )


def _place(task: str, env: Any, pair: Mapping[str, Any]) -> dict[str, Any]:
    """Reset the env to the pair's start state (Push-T: with the agent's velocity), its goal at the pair's goal."""
    if TASKS[task].env == "pusht":
        from mpc_grasp.envs.pusht import state_from_features

        (start, velocity), (goal, _) = state_from_features(pair["start_state"]), state_from_features(pair["goal_state"])
        options = {"state": start, "velocity": velocity, "goal": goal}
        return env.reset(seed=int(pair["index"]), options=options)[0]
    env.reset(seed=int(pair["index"]))
    env.set_goal(np.asarray(pair["goal_state"][:2]))
    start = np.asarray(pair["start_state"])
    return env.set_ball_state(start[:2], start[2:])


def _observation(obs: Mapping[str, Any], observation: str) -> Any:
    return obs["observation"] if observation == "pixels" else obs["state"].astype(np.float32)


# ----------------------------------------------------------------------------- the run


def cells(config: ProtocolConfig, budget_scales: Mapping[tuple[Any, ...], float] | None = None) -> list[WorkUnit]:
    """One unit per (task, observation, planner, mode, goal offset); ``budget_scales`` (per such tuple) scale the
    planners' iteration budgets (equal wall time per plan)."""
    units = []
    budget = "default" if config.equal_time is None else f"time of {config.equal_time}"
    for task in config.tasks:
        for observation in config.observations:
            for planner in config.planners:
                for mode in config.modes:
                    for offset in config.goal_offsets:
                        key: dict[str, Any] = {"task": task, "observation": observation, "planner": planner}
                        key.update(mode=mode, goal_offset=offset, budget=budget)
                        scale = (budget_scales or {}).get((task, observation, planner, mode, offset), 1.0)
                        settings: dict[str, Any] = {"episodes": config.episodes, "seed": config.seed}
                        settings.update(train_episodes=config.train_episodes, budget_scale=round(scale, 2))
                        settings.update(training=[config.pixel_training, config.state_training])
                        task_input = {**key, "config": config, "budget_scale": round(scale, 2)}
                        units.append(WorkUnit(key, settings, task=task_input))
    return units


def calibrate_budgets(config: ProtocolConfig) -> dict[tuple[Any, ...], float]:
    """Per (task, observation, planner, mode, offset): the iteration-budget scale that gives the planner the
    median s per plan of ``config.equal_time`` at its defaults, measured on ``calibration_pairs`` pairs (twice:
    once at the defaults, once at the first estimate, since a plan's fixed costs do not scale)."""
    scales: dict[tuple[Any, ...], float] = {}
    for unit in cells(config):
        if unit.key["planner"] == config.equal_time:
            continue  # the reference keeps its defaults (scale 1)
        task = dict(unit.task, limit=config.calibration_pairs)
        reference = run_cell(dict(task, planner=config.equal_time, budget_scale=1.0))["s_per_plan"]
        scale = 1.0
        for _ in range(2):
            seconds = run_cell(dict(task, budget_scale=scale))["s_per_plan"]
            scale = min(100.0, max(0.01, scale * reference / seconds))
        scales[tuple(unit.key[name] for name in ("task", "observation", "planner", "mode", "goal_offset"))] = scale
    return scales


def run_protocol(config: ProtocolConfig, command: str) -> dict[str, Any]:
    """Build the caches (data, models), run every cell (reusing the resume log), return the report."""
    started = time.perf_counter()
    models, redraws = {}, {}
    for task in config.tasks:
        for observation in config.observations:
            _, models[f"{task}/{observation}"] = (pixel_model if observation == "pixels" else state_model)(task, config)
        for offset in config.goal_offsets:
            redraws[f"{task}/{offset}"] = eval_pairs(task, offset, config)[1]
    scales = calibrate_budgets(config) if config.equal_time is not None else None
    units = cells(config, scales)
    log = ResumeLog(Path(config.out_dir) / f"{config.name}.partial.jsonl", resume=config.resume)
    results = run_units(run_cell, units, log=log, parallel=config.parallel, progress=config.progress, desc="cells")
    rows = []
    for unit, result in zip(units, results):
        rate, interval, _ = success_rate(result["flags"])
        scale = unit.settings["budget_scale"]
        result = {k: v for k, v in result.items() if k != "flags"}
        rows.append({**unit.key, **result, "budget_scale": scale, "rate": rate, "ci95": interval})
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
        "# The field's protocol on pixel Point-Maze and Push-T",
        "",
        f"Frameskip {report['protocol']['frameskip']}, {report['protocol']['image_size']}px frames, goals "
        "from held-out expert trajectories k env steps ahead, MPC budget 2k env steps, success on the true state at "
        f"any step (Point-Maze: the env's own test, ball within {SUCCESS_RADIUS} of the goal; Push-T: DINO-WM's, "
        "agent and block positions within 20 px together and block angle within 20 degrees). Pairs redrawn "
        f"because the start already succeeded: {report['redrawn_pairs']}. Cells: success [95% CI] · median s per "
        "plan" + ("" if report["config"].get("equal_time") is None else " · iteration budget × its default") + ".",
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
                cells_.append("–" if not match else _cell(match[0]))
            lines.append(f"| {planner} | " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def _cell(row: Mapping[str, Any]) -> str:
    text = f"{ci_cell(row['rate'], row['ci95'])} · {number_cell(row['s_per_plan'])}"
    scale = row.get("budget_scale", 1.0)
    return text if scale == 1.0 else f"{text} · ×{scale:g}"


# ----------------------------------------------------------------------------- pictures


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Success with 95% CI, one panel per (task, observation): a group of bars per planner, one bar per (mode, goal
    offset) column of the table."""
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import save_figure

    rows: Sequence[Mapping[str, Any]] = report["rows"]
    panels = list(dict.fromkeys((r["task"], r["observation"]) for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for axis, (task, observation) in zip(axes[0], panels):
        mine = [r for r in rows if (r["task"], r["observation"]) == (task, observation)]
        planners = list(dict.fromkeys(r["planner"] for r in mine))
        columns = sorted(dict.fromkeys((r["mode"], r["goal_offset"]) for r in mine), key=lambda c: (c[1], c[0]))
        width = 0.8 / len(columns)
        for index, (mode, offset) in enumerate(columns):
            cells = {r["planner"]: r for r in mine if (r["mode"], r["goal_offset"]) == (mode, offset)}
            x = [planners.index(name) + (index - (len(columns) - 1) / 2) * width for name in cells]
            rates = np.array([100 * r["rate"] for r in cells.values()])
            bounds = 100 * np.array([r["ci95"] for r in cells.values()]).T
            axis.bar(x, rates, width, yerr=[rates - bounds[0], bounds[1] - rates], capsize=2, label=f"{mode} {offset}")
        axis.set_xticks(range(len(planners)), planners, fontsize=8)
        axis.set(title=f"{TASKS[task].title}, {observation}", ylabel="success % (95% CI)", ylim=(0, 103))
        axis.legend(fontsize=7, title="mode, goal offset", title_fontsize=7)
    fig.suptitle("The field's protocol: success per planner")
    fig.tight_layout()
    return save_figure(fig, path)


def filmstrip(task: str, config: ProtocolConfig, path: Path, *, offset: int = 25, planner: str = "grasp") -> Path:
    """One MPC episode of ``planner`` on the first pair of ``task`` with the pixel model, in two rows: the goal
    frame and the executed frames; the start frame and the first plan's latents decoded by the model (its model
    steps line up with the executed frames above them)."""
    import matplotlib.pyplot as plt

    from mpc_grasp.plotting import save_figure

    model, _ = pixel_model(task, config)
    pair = eval_pairs(task, offset, config)[0][0]
    env = make_env(task)
    unit = {"task": task, "observation": "pixels", "planner": planner, "mode": "mpc", "goal_offset": offset}
    horizon = offset // FRAMESKIP
    agent = _agent(model, unit, env, horizon, pair)
    obs = _place(task, env, pair)
    frames, planned, reached = [obs["observation"]], None, False
    for _ in range(2 * horizon):
        action, _ = agent.predict(obs["observation"])
        if planned is None and agent.last_plan is not None:
            with torch.no_grad():
                planned = model.decode(agent.last_plan.states).reshape(-1, *model.image_shape).numpy()
        obs, _, _, _, info = env.step(action)
        frames.append(obs["observation"])
        reached = TASKS[task].success(info["state"], pair["goal_state"])
        if reached:
            break
    env.close()
    assert planned is not None
    columns = max(len(frames), len(planned)) + 1
    fig, axes = plt.subplots(2, columns, figsize=(1.3 * columns, 2.9), squeeze=False)
    rows = (("goal", pair["goal_frame"], frames, "executed"), ("start", frames[0], list(planned), "planned"))
    for axis_row, (label, first, images, name) in zip(axes, rows):
        for axis, image, title in zip(
            axis_row, [first, *images], [label, *[f"{name} {t}" for t in range(len(images))]]
        ):
            axis.imshow(image)
            axis.set_title(title, fontsize=6)
        for axis in axis_row:
            axis.axis("off")
    outcome = "reached" if reached else "not reached"
    fig.suptitle(f"{TASKS[task].title}, goal {offset} env steps ahead, {planner} MPC from pixels: {outcome}")
    return save_figure(fig, path)
