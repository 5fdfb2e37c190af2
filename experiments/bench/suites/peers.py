"""A peer MPC library beside ``GraspMPC`` (issue 32): pytorch_mppi on the same model and objective, closed loop.

Two problems, each closed loop with one torch thread and the same fixed-seed episodes for every controller:

* ``cartpole``: ``mpc_grasp/CartPoleSwingup-v0`` with the exact ``CartPoleSwingupModel`` and the env's own reward
  (:func:`mpc_grasp.envs.cartpole_swingup_reward`) as the whole objective: ``GraspMPC(..., reward_fn=...)`` with no
  goal (the env's ``info["goal"]`` is not handed over), and pytorch_mppi with ``running_cost = -reward``. Success: the
  env's ``is_success`` at the last step (balanced: pole within 0.2 rad of upright, ``|θ̇| < 1``, ``|x| < 1``), as in
  :mod:`bench.suites.reward_planning`.
* ``wall``: ``mpc_grasp/GridWorldWall-v0`` (``task="across"`` by default: start and goal in opposite rooms), the goal
  objective ``GraspMPC`` uses at its defaults, ``‖s_T − g‖²_w + 0.1 · mean_t ‖s_t − g‖²_w`` with ``w = 1 / scale²``
  (the planner's state scale: the model's declared one, else estimated from the episode's start, as ``GraspMPC``
  does). pytorch_mppi gets the mean term as its ``running_cost`` (``0.1 / H · ‖s_{t+1} − g‖²_w`` per step) and the
  terminal term as its ``terminal_state_cost``. Success: the env's ``is_success`` (within 0.3 of the goal).

pytorch_mppi (PyPI ``pytorch-mppi``, the ``peers`` extra) is configured as its README suggests:
``MPPI(dynamics, running_cost, nx, noise_sigma, num_samples, horizon, lambda_, u_min, u_max, device)`` and one
``command(state)`` per control step (under ``torch.no_grad``); ``dynamics`` is the same batched torch model.
``ms per step``: the wall time of every controller's ``predict`` (the same wrapper for all), median over all steps.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench.engine import REPO_ROOT

__all__ = [
    "CARTPOLE_ENV_ID",
    "GRID_ENV_ID",
    "GRID_MODELS",
    "PEER",
    "PEER_PROBLEMS",
    "PytorchMPPIAgent",
    "TimedAgent",
    "best_peer_rows",
    "learned_grid_checkpoint",
    "markdown_peers",
    "peer_available",
    "peer_row",
    "plot_peers",
]

PEER = "pytorch_mppi"
CARTPOLE_ENV_ID = "mpc_grasp/CartPoleSwingup-v0"
GRID_ENV_ID = "mpc_grasp/GridWorldWall-v0"
PEER_PROBLEMS = ("cartpole", "wall")
GRID_MODELS = ("exact", "mlp", "learned")
"""Grid-world models: ``exact`` the analytic ``PointMassWalls`` of the layout (the planner gym's walls problem);
``mlp`` the speed suite's untrained MLP 256x2 (timing only: no controller can succeed with it); ``learned`` an MLP
256x2 trained on 20k transitions (cached under ``checkpoints/``, trained on first use)."""
LEARNED_GRID_STEPS = 20_000


def peer_available() -> bool:
    """Whether pytorch_mppi is installed (``pip install -e '.[peers]'``)."""
    return importlib.util.find_spec("pytorch_mppi") is not None


# ----------------------------------------------------------------------------- the controllers


class TimedAgent:
    """Any SB3-style agent with the wall time of each ``predict`` call (seconds) kept in ``times``."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.times: list[float] = []
        self.first_step_times: list[float] = []
        self._episode_start = True

    def reset(self) -> None:
        self._episode_start = True
        if callable(getattr(self.agent, "reset", None)):
            self.agent.reset()

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        started = time.perf_counter()
        action, _ = self.agent.predict(observation, deterministic=deterministic)
        elapsed = time.perf_counter() - started
        self.times.append(elapsed)
        if self._episode_start:
            self.first_step_times.append(elapsed)
            self._episode_start = False
        return action, None


class PytorchMPPIAgent:
    """pytorch_mppi's ``MPPI`` as an SB3-style agent: ``reset`` per episode, one ``command(state)`` per ``predict``.

    ``reward_fn`` (state, action, next_state) -> reward: the running cost is ``-reward_fn(s', a, s')`` (pytorch_mppi
    hands its running cost the state reached and the action only; the package's rewards read the state reached).
    Without it the objective is ``GraspMPC``'s goal cost (see the module docstring), the goal read from dict
    observations (``desired_goal``). ``noise_sigma``: the diagonal of the control noise covariance.
    """

    def __init__(
        self,
        model: Any,
        action_space: Any,
        *,
        horizon: int,
        num_samples: int,
        lambda_: float,
        noise_sigma: float,
        reward_fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
        dense_goal_weight: float = 0.1,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        from pytorch_mppi import MPPI

        self.model = model
        self.device = torch.device(device)
        self.horizon = int(horizon)
        self.reward_fn = reward_fn
        self.dense_goal_weight = float(dense_goal_weight)
        self.seed = int(seed)
        self._episodes = 0
        self.action_space = action_space
        self._low = np.asarray(action_space.low, dtype=np.float32)
        self._high = np.asarray(action_space.high, dtype=np.float32)
        self._goal: Tensor | None = None
        self._weights: Tensor | None = None
        self._scale_planner: Any = None
        action_dim = int(model.action_dim)
        running_cost = self._reward_cost if reward_fn is not None else self._goal_running_cost
        terminal = None if reward_fn is not None else self._goal_terminal_cost
        self.controller = MPPI(
            self._dynamics,
            running_cost,
            int(model.state_dim),
            noise_sigma * torch.eye(action_dim, device=self.device),
            num_samples=int(num_samples),
            horizon=self.horizon,
            device=self.device,
            terminal_state_cost=terminal,
            lambda_=float(lambda_),
            u_min=torch.as_tensor(self._low, device=self.device),
            u_max=torch.as_tensor(self._high, device=self.device),
        )

    # the callables pytorch_mppi calls: states [K, S], actions [K, A]
    def _dynamics(self, state: Tensor, action: Tensor) -> Tensor:
        return self.model(state, action)

    def _reward_cost(self, state: Tensor, action: Tensor) -> Tensor:
        assert self.reward_fn is not None
        return -self.reward_fn(state, action, state)

    def _distance(self, state: Tensor) -> Tensor:
        assert self._goal is not None and self._weights is not None
        return ((state - self._goal) ** 2 * self._weights).sum(-1)

    def _goal_running_cost(self, state: Tensor, action: Tensor) -> Tensor:
        return self.dense_goal_weight / self.horizon * self._distance(state)

    def _goal_terminal_cost(self, states: Tensor, actions: Tensor) -> Tensor:
        return self._distance(states[..., -1, :])  # states [M, K, T, S] -> [M, K]

    def reset(self) -> None:
        """A new episode: fresh nominal controls (from a per-episode seed), the goal weights set at its first step."""
        torch.manual_seed(self.seed + self._episodes)
        self._episodes += 1
        self.controller.reset()
        self._goal = self._weights = None

    def _set_goal(self, state: Tensor, goal: Tensor) -> None:
        """``GraspMPC``'s goal weights ``1 / scale²``: the model's declared scale, else estimated from the start."""
        from mpc_grasp.planners import make_planner

        if self._scale_planner is None:
            self._scale_planner = make_planner(
                "mppi", self.model, self.horizon, action_space=self.action_space, device=self.device
            )
        scale = self._scale_planner.state_scale
        if scale is None:
            scale = self._scale_planner.estimate_state_scale(state[None])[0]
        self._goal, self._weights = goal, scale.pow(-2)

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        vector = observation["observation"] if isinstance(observation, Mapping) else observation
        current = torch.as_tensor(np.asarray(vector, dtype=np.float32), device=self.device)
        with torch.no_grad():
            if self.reward_fn is None and self._goal is None:
                if not isinstance(observation, Mapping):
                    raise ValueError("the goal objective needs dict observations with 'desired_goal'")
                goal = torch.as_tensor(np.asarray(observation["desired_goal"], dtype=np.float32), device=self.device)
                self._set_goal(current, goal)
            action = self.controller.command(current)
        return np.clip(action.detach().cpu().numpy().astype(np.float32), self._low, self._high), None


# ----------------------------------------------------------------------------- the rows (work units)


def _problem(problem: str, device: str, grid_model: str, grid_task: str) -> tuple[Any, Any, Any, str]:
    """(env, model, reward_fn or None, model description) of a peer problem."""
    from mpc_grasp.data import make_env

    if problem == "cartpole":
        from mpc_grasp.envs import cartpole_swingup_reward

        from mpc_grasp.models.analytic import CartPoleSwingupModel

        return make_env(CARTPOLE_ENV_ID), CartPoleSwingupModel().to(device), cartpole_swingup_reward, "exact"
    if problem != "wall":
        raise ValueError(f"unknown peer problem {problem!r}; choose one of {list(PEER_PROBLEMS)}")
    env = make_env(GRID_ENV_ID, task=grid_task)
    if grid_model == "exact":
        from bench.suites.problems import AGENT_RADIUS, STEP_SIZE
        from mpc_grasp.models.analytic import PointMassWalls

        model: Any = PointMassWalls.from_layout("wall", agent_radius=AGENT_RADIUS, step_size=STEP_SIZE, smoothing=0.0)
        return env, model.to(device), None, "exact PointMassWalls"
    if grid_model == "mlp":
        from bench.suites.speed import SPEED_HIDDEN, _mlp

        return env, _mlp(SPEED_HIDDEN, device), None, "untrained MLP 256x2"
    if grid_model == "learned":
        from bench.suites.real_env import load_or_train_mlp
        from bench.suites.speed import SPEED_HIDDEN

        model, _ = load_or_train_mlp(
            GRID_ENV_ID, LEARNED_GRID_STEPS, learned_grid_checkpoint(), hidden=SPEED_HIDDEN, progress=False
        )
        model.eval()
        return env, model.to(device), None, f"MLP 256x2 trained on {LEARNED_GRID_STEPS} transitions"
    raise ValueError(f"unknown grid model {grid_model!r}; choose one of {list(GRID_MODELS)}")


def peer_row(
    problem: str,
    planner: str,
    horizon: int = 50,
    episodes: int = 4,
    max_steps: int | None = None,
    device: str = "cpu",
    threads: int = 1,
    grid_model: str = "exact",
    grid_task: str = "across",
    num_samples: int | None = None,
    lambda_: float | None = None,
    noise_sigma: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """``episodes`` closed-loop episodes of one controller on ``problem``: ``planner`` is a ``GraspMPC`` planner
    at its defaults, or :data:`PEER` (pytorch_mppi with ``num_samples``, ``lambda_``, ``noise_sigma``)."""
    from mpc_grasp.control.agent import DEFAULT_DENSE_GOAL_WEIGHT, GraspMPC
    from mpc_grasp.control.episodes import run_episodes, summarize_episodes

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    env, model, reward_fn, model_name = _problem(problem, device, grid_model, grid_task)
    try:
        if planner == PEER:
            if num_samples is None or lambda_ is None or noise_sigma is None:
                raise ValueError("the peer row needs num_samples, lambda_ and noise_sigma")
            inner: Any = PytorchMPPIAgent(
                model,
                env.action_space,
                horizon=horizon,
                num_samples=num_samples,
                lambda_=lambda_,
                noise_sigma=noise_sigma,
                reward_fn=reward_fn,
                dense_goal_weight=DEFAULT_DENSE_GOAL_WEIGHT,
                device=device,
                seed=seed,
            )
            options: dict[str, Any] = {"num_samples": num_samples, "lambda_": lambda_, "noise_sigma": noise_sigma}
        else:
            objective = {} if reward_fn is None else {"reward_fn": reward_fn}
            inner = GraspMPC(
                model, planner, horizon=horizon, action_space=env.action_space, device=device, seed=seed, **objective
            )
            options = {}
        agent = TimedAgent(inner)
        # cart-pole: the reward is the whole objective (its info["goal"] is not handed to GraspMPC)
        records = run_episodes(
            env, agent, episodes, seed=seed, max_steps=max_steps, goal_from_info=False, progress=False
        )
    finally:
        env.close()
        torch.set_num_threads(previous_threads)
    summary = summarize_episodes(records)
    step_ms = [1000 * t for t in agent.times]
    return {
        "problem": problem,
        "planner": planner,
        "controller": PEER if planner == PEER else f"GraspMPC {planner}",
        "options": options,
        "model": model_name,
        "objective": "reward" if reward_fn is not None else "goal",
        "horizon": horizon,
        "device": device,
        "threads": threads,
        "episodes": summary["episodes"],
        "successes": summary["successes"],
        "success_rate": summary["success_rate"],
        "episode_returns": [r.episode_return for r in records],
        "mean_return": summary["mean_return"],
        "env_steps": summary["env_steps"],
        "median_ms_per_step": float(np.median(step_ms)),
        "mean_ms_per_step": float(np.mean(step_ms)),
        "first_step_ms_median": float(np.median([1000 * t for t in agent.first_step_times])),
        "wall_time_s": summary["wall_time_s"],
    }


def best_peer_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Per problem, the best pytorch_mppi row of the sweep: most successes, then highest mean return, then fastest."""
    best: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if row["planner"] != PEER:
            continue
        key = (row["successes"] or 0, row["mean_return"], -row["median_ms_per_step"])
        current = best.get(row["problem"])
        if current is None or key > (
            current["successes"] or 0,
            current["mean_return"],
            -current["median_ms_per_step"],
        ):
            best[row["problem"]] = row
    return best


# ----------------------------------------------------------------------------- report


def _label(row: Mapping[str, Any]) -> str:
    if row["planner"] != PEER:
        return str(row["controller"])
    options = row["options"]
    return f"pytorch_mppi K={options['num_samples']} λ={options['lambda_']:g}"


def markdown_peers(report: Mapping[str, Any]) -> list[str]:
    """The peer section of ``speed.md`` (empty when the report has no peer rows)."""
    rows = report.get("peer_rows") or []
    settings = report.get("peer_settings") or {}
    lines: list[str] = []
    if not rows and not report.get("peer_missing"):
        return lines
    lines += [
        "",
        "## Against a peer MPC library: pytorch_mppi, same model and objective, closed loop",
        "",
        f"H = {settings.get('horizon')}, {settings.get('episodes')} fixed-seed episodes per controller (the same starts "
        f"for all), {settings.get('threads')} torch thread(s), device {report.get('device')}. GraspMPC at its defaults; "
        f"pytorch_mppi as its README configures it (noise_sigma {settings.get('noise_sigma')}·I), best of the sweep "
        "shown (most successes, then mean return, then ms). Cart-pole swing-up: exact model, the env's reward as the "
        "objective (pytorch_mppi: running cost −reward); success = balanced at the last step (|θ| < 0.2, |θ̇| < 1, "
        f"|x| < 1). Grid world `wall` (task {settings.get('grid_task')!r}, model: {settings.get('grid_model')}): "
        "GraspMPC's goal cost ‖s_T − g‖²_w + 0.1·mean_t ‖s_t − g‖²_w (pytorch_mppi: terminal_state_cost + running "
        "cost 0.1/H·‖s_t+1 − g‖²_w); success = within 0.3 of the goal. ms per step: median wall time of `predict`.",
        "",
    ]
    if report.get("peer_missing"):
        lines += [f"pytorch_mppi rows not run: {report['peer_missing']}", ""]
    best = best_peer_rows(rows)
    lines += [
        "| problem | controller | success | mean return | median ms per step | first step ms (median) |",
        "|---|---|---|---|---|---|",
    ]
    for problem in dict.fromkeys(row["problem"] for row in rows):
        shown = [r for r in rows if r["problem"] == problem and r["planner"] != PEER]
        if problem in best:
            shown.append(best[problem])
        for row in shown:
            lines.append(
                f"| {problem} | {_label(row)} | {row['successes'] or 0}/{row['episodes']} | {row['mean_return']:.1f} | "
                f"{row['median_ms_per_step']:.1f} | {row['first_step_ms_median']:.0f} |"
            )
    sweep = [r for r in rows if r["planner"] == PEER]
    if sweep:
        lines += [
            "",
            "pytorch_mppi sweep (all rows):",
            "",
            "| problem | samples | lambda | success | mean return | median ms per step |",
            "|---|---|---|---|---|---|",
        ]
        for row in sweep:
            options = row["options"]
            lines.append(
                f"| {row['problem']} | {options['num_samples']} | {options['lambda_']:g} | "
                f"{row['successes'] or 0}/{row['episodes']} | {row['mean_return']:.1f} | "
                f"{row['median_ms_per_step']:.1f} |"
            )
    return lines


def plot_peers(report: Mapping[str, Any], axes: Sequence[Any]) -> None:
    """Mean return against median ms per step, one axis per problem (GraspMPC rows and every pytorch_mppi row)."""
    rows = report.get("peer_rows") or []
    problems = list(dict.fromkeys(row["problem"] for row in rows))
    for axis, problem in zip(axes, problems):
        for row in (r for r in rows if r["problem"] == problem):
            peer = row["planner"] == PEER
            axis.scatter(row["median_ms_per_step"], row["mean_return"], marker="x" if peer else "o", s=30)
            axis.annotate(
                f"{_label(row)} ({row['successes'] or 0}/{row['episodes']})",
                (row["median_ms_per_step"], row["mean_return"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        axis.set(xscale="log", xlabel="median ms per control step", ylabel="mean return", title=f"{problem}: vs peer")
    for axis in list(axes)[len(problems) :]:
        axis.set_visible(False)


def learned_grid_checkpoint() -> Path:
    """Where the ``learned`` grid model is cached."""
    return REPO_ROOT / "checkpoints" / "speed_wall_mlp256x2.pt"
