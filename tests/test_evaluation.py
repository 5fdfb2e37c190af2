"""Closed-loop evaluation: ``run_episodes`` bookkeeping and the ``mpc-grasp run`` command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from mpc_grasp.cli import commands as cli
from mpc_grasp.control.agent import GraspMPC
from mpc_grasp.control.episodes import EpisodeRecord, check_model_matches_env, run_episodes, summarize_episodes
from mpc_grasp.control.media import (
    PLAN_COLOR,
    TRAIL_COLOR,
    annotate_frames,
    draw_trail_and_plan,
    episodes_figure,
    plot_episodes,
    save_gif,
)
from mpc_grasp.data import collect_transitions
from mpc_grasp.models import MLPWorldModel, save_world_model, train_world_model

WALL = "mpc_grasp/GridWorldWall-v0"
CARTPOLE = "mpc_grasp/CartPoleSwingup-v0"


@pytest.fixture(scope="module")
def wall_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MLP world model of grid world `wall`, trained in about a second."""
    dataset = collect_transitions(WALL, 800, seed=0, num_envs=2, progress=False)
    model = train_world_model(dataset, hidden_sizes=(32, 32), epochs=3, seed=0, progress=False)
    return save_world_model(model, tmp_path_factory.mktemp("ckpt") / "wall.pt")


class TowardGoal:
    """Scripted SB3-style agent: full speed toward the goal of a dict observation."""

    def __init__(self) -> None:
        self.resets = 0
        self.goals: list[np.ndarray] = []

    def reset(self) -> None:
        self.resets += 1

    def set_goal(self, goal: np.ndarray) -> None:
        self.goals.append(np.asarray(goal))

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        if isinstance(obs, dict):
            return np.clip((obs["desired_goal"] - obs["observation"]) * 4.0, -1, 1).astype(np.float32), None
        return np.zeros(1, dtype=np.float32), None


def test_run_episodes_seeds_like_evaluate_agent_and_counts_steps() -> None:
    env = gym.make("mpc_grasp/GridWorldOpen-v0")
    agent = TowardGoal()
    records = run_episodes(env, agent, 3, seed=7, progress=False)
    reference = gym.make("mpc_grasp/GridWorldOpen-v0")
    starts = [reference.reset(seed=7)[0]["observation"]] + [reference.reset()[0]["observation"] for _ in range(2)]
    assert agent.resets == 3
    for record, start in zip(records, starts):
        np.testing.assert_allclose(record.states[0], start)
        assert record.success and record.success_any and record.terminated  # open room: straight line works
        assert record.first_success_step == record.steps == len(record.states) - 1
        assert record.plans == ()  # not a planning agent
    summary = summarize_episodes(records)
    assert (
        summary["success_rate"] == 1.0 and summary["success_ci95"][1] == 1.0 and summary["median_plan_time_s"] is None
    )
    assert summary["env_steps"] == sum(r.steps for r in records)


def test_a_piped_log_gets_one_line_per_episode_and_no_progress_bars(capsys: pytest.CaptureFixture[str]) -> None:
    records = run_episodes(gym.make("mpc_grasp/GridWorldOpen-v0"), TowardGoal(), 2, seed=7, progress=True)
    err = capsys.readouterr().err  # captured: not a terminal
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "\r" not in err and "it/s" not in err
    assert lines[0].startswith("episode 1/2: success, ") and f"{records[0].steps} steps" in lines[0]


def test_run_episodes_hands_cartpole_goal_to_agent_and_records_frames(tmp_path: Path) -> None:
    env = gym.make(CARTPOLE, render_mode="rgb_array")
    agent = TowardGoal()
    records = run_episodes(env, agent, 2, seed=0, max_steps=5, record_frames=1, progress=False)
    assert len(agent.goals) == 2 and np.allclose(agent.goals[0], [0, 0, 1, 0, 0])
    assert [r.steps for r in records] == [5, 5] and not any(r.success for r in records)
    assert len(records[0].frames) == 6 and records[1].frames == ()
    gif = save_gif(records[0].frames, tmp_path / "a.gif")
    with Image.open(gif) as image:
        assert 1 < image.n_frames <= 6 and min(image.size) >= 256  # Pillow merges identical frames
    with pytest.raises(ValueError, match="render_mode"):
        run_episodes(gym.make(CARTPOLE), agent, 1, record_frames=1, progress=False)
    with pytest.raises(ValueError, match="positive integer"):
        run_episodes(env, agent, 0, progress=False)


def test_grasp_mpc_episode_on_cartpole_keeps_plans_and_plots(tmp_path: Path) -> None:
    model = MLPWorldModel(5, 1, hidden_sizes=(16,))  # untrained: only the bookkeeping is tested
    env = gym.make(CARTPOLE)
    agent = GraspMPC(
        model, "grasp", horizon=6, action_space=env.action_space, iterations=3, num_candidates=2, replan_every=3
    )
    records = run_episodes(env, agent, 1, seed=0, max_steps=7, progress=False)
    plans = records[0].plans
    assert [p.step for p in plans] == [0, 3, 6]
    assert plans[0].states.shape == (7, 5) and plans[0].virtual_states.shape == (5, 5)
    assert not plans[0].warm_started and plans[1].warm_started and plans[0].iterations == 3
    path = plot_episodes(env, records, tmp_path / "cartpole.png")
    assert path.stat().st_size > 10_000
    assert check_model_matches_env(model, env) == []
    with pytest.raises(ValueError, match="action_dim is 1"):
        check_model_matches_env(model, gym.make(WALL))


def test_run_command_writes_summary_plot_and_gif(
    wall_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = cli.main(
        [
            "run",
            WALL,
            "--model",
            str(wall_checkpoint),
            "--episodes",
            "1",
            "--horizon",
            "8",
            "--iterations",
            "5",
            "--replan-every",
            "4",
            "--max-steps",
            "6",
            "--seed",
            "3",
            "--out-dir",
            str(out),
            "--no-progress",
            "--set",
            "num_candidates=2",
            "--set",
            "dense_goal_weight=0.1",
            "--env-kwarg",
            "task=across",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "success 0/1" in captured.out or "success 1/1" in captured.out
    assert "95% Wilson" in captured.out and "median plan time" in captured.out
    assert (
        "horizon 8, 1 episode\n" in captured.out
        and "over 1 episode |" in captured.out
        and "1 episodes" not in captured.out
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 1 and summary["plans"] == 2 and summary["planner_config"]["num_candidates"] == 2
    assert summary["planner_options"] == {
        "num_candidates": 2,
        "dense_goal_weight": 0.1,
        "iterations": 5,
    }  # warm default 4 <= 5: not capped
    assert summary["model_trained_on"]["env_id"] == WALL and summary["env_kwargs"] == {"task": "across"}
    assert summary["episodes_detail"][0]["steps"] == 6
    assert (out / "plans.png").stat().st_size > 10_000
    with Image.open(out / "episode.gif") as image:
        assert 1 < image.n_frames <= 7


def test_run_command_errors_are_clear(
    wall_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*extra: str) -> tuple[int, str]:
        code = cli.main(["run", *extra, "--episodes", "1", "--no-progress", "--out-dir", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return code, err

    code, err = run("mpc_grasp/GridWorldWal-v0", "--model", str(wall_checkpoint))
    assert code == 1 and "unknown Gymnasium env id 'mpc_grasp/GridWorldWal-v0'" in err and "GridWorldWall-v0" in err

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(wall_checkpoint.read_bytes()[:500])
    code, err = run(WALL, "--model", str(corrupt))
    assert code == 1 and "is truncated or corrupt: its zip archive cannot be read" in err

    code, err = run(WALL, "--model", str(tmp_path / "missing.pt"))
    assert code == 1 and "does not exist" in err

    code, err = run(CARTPOLE, "--model", str(wall_checkpoint))
    assert code == 1 and "action_dim is 2" in err

    code, err = run(WALL, "--model", str(wall_checkpoint), "--set", "no_such_option=1")
    assert code == 1 and "unknown option(s) ['no_such_option']" in err

    code, err = run(WALL, "--model", str(wall_checkpoint), "--horizon", "0")
    assert code == 1 and "--horizon must be >= 1" in err

    other_env = tmp_path / "open.pt"
    model = MLPWorldModel(2, 2, hidden_sizes=(8,))
    save_world_model(model, other_env, metadata={"env_id": "mpc_grasp/GridWorldOpen-v0"})
    code, err = run(
        WALL, "--model", str(other_env), "--max-steps", "1", "--iterations", "1", "--horizon", "2", "--no-gif"
    )
    assert code == 0 and "trained on 'mpc_grasp/GridWorldOpen-v0'" in err


def _record(index: int, success: bool | None, steps: int = 3, episode_return: float = -1.0) -> EpisodeRecord:
    return EpisodeRecord(
        index=index,
        success=success,
        success_any=success,
        first_success_step=steps if success else None,
        steps=steps,
        episode_return=episode_return,
        terminated=bool(success),
        truncated=not success,
        states=np.zeros((steps + 1, 2)),
        goal=None,
    )


def test_success_is_none_for_envs_that_do_not_report_it() -> None:
    env = gym.make("Pendulum-v1")
    records = run_episodes(env, TowardGoal(), 2, seed=0, max_steps=4, progress=False)
    assert all(r.success is None and r.success_any is None and r.first_success_step is None for r in records)
    assert [r.steps for r in records] == [4, 4] and records[0].to_json()["success"] is None
    summary = summarize_episodes(records)
    assert summary["success_episodes"] == 0 and summary["mean_steps_to_goal"] is None
    for key in ("successes", "success_rate", "success_ci95", "success_any_rate", "success_any_ci95"):
        assert summary[key] is None, key
    assert np.isfinite(summary["mean_return"]) and summary["env_steps"] == 8

    mixed = summarize_episodes(
        [_record(0, True), _record(1, False), _record(2, None)]
    )  # SB3: only episodes that reported
    assert mixed["success_episodes"] == 2 and mixed["successes"] == 1 and mixed["success_rate"] == 0.5


def _grid_episode_with_plans() -> tuple[gym.Env, list[EpisodeRecord]]:
    """GRASP (untrained model: only bookkeeping matters) replanning every 2 steps: plans at steps 0, 2, 4, 6, 8."""
    env = gym.make("mpc_grasp/GridWorldOpen-v0", render_mode="rgb_array")
    model = MLPWorldModel(2, 2, hidden_sizes=(8,))
    agent = GraspMPC(
        model, "grasp", horizon=4, action_space=env.action_space, iterations=2, num_candidates=2, replan_every=2
    )
    return env, run_episodes(env, agent, 1, seed=0, max_steps=9, record_frames=1, progress=False)


def _legend_texts(figure) -> list[str]:
    return [text.get_text() for ax in figure.axes if ax.get_legend() for text in ax.get_legend().get_texts()]


def test_plans_figure_labels_each_drawn_plan_and_every_marker(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    env, records = _grid_episode_with_plans()
    assert [p.step for p in records[0].plans] == [0, 2, 4, 6, 8]
    figure = episodes_figure(env, records, title="t")
    texts = _legend_texts(figure)
    assert [t for t in texts if t.startswith("plan made")] == [
        f"plan made at step {s} (model rollout)" for s in (0, 4, 8)
    ]
    for label in (
        "GRASP virtual states (plan at step 0)",
        "executed path (real env)",
        "start",
        "goal",
        "goal region (radius 0.3)",
    ):
        assert label in texts, label
    assert "3 of 5 plans drawn (the first and every 2nd)" in figure.axes[0].get_title()
    plt.close(figure)

    cartpole = gym.make(CARTPOLE)
    agent = GraspMPC(
        MLPWorldModel(5, 1, hidden_sizes=(8,)),
        "grasp",
        horizon=3,
        action_space=cartpole.action_space,
        iterations=1,
        num_candidates=2,
    )
    records = run_episodes(cartpole, agent, 1, seed=0, max_steps=6, progress=False)
    figure = episodes_figure(cartpole, records)
    texts = _legend_texts(figure)
    assert [t for t in texts if t.startswith("plan made")] == [
        f"plan made at step {s} (model rollout)" for s in (0, 2, 4)
    ]
    assert "other plans (3)" in texts
    assert {"start", "goal", "executed (real env)", "GRASP virtual states (plan at step 0)"} <= set(texts)
    assert (
        figure.axes[0].get_ylabel() == "x"
        and "3 of 6 plans drawn (the first and every 2nd)" in figure.axes[0].get_title()
    )
    plt.close(figure)
    assert plot_episodes(cartpole, records, tmp_path / "p.png").stat().st_size > 10_000


def test_trail_and_plan_are_drawn_on_the_frames() -> None:
    frame = np.full((64, 64, 3), 255, dtype=np.uint8)
    trail = np.array([[10.0, 32.0], [50.0, 32.0]])
    drawn = draw_trail_and_plan(frame, trail)
    assert (frame == 255).all()  # the input is not modified
    np.testing.assert_array_equal(drawn[32, 12:49], np.tile(TRAIL_COLOR, (37, 1)))
    assert (drawn[20:28] == 255).all()  # away from the trail, caption and colour key: untouched
    with_plan = draw_trail_and_plan(frame, trail, planned=np.array([[30.0, 5.0], [30.0, 45.0]]))
    assert tuple(with_plan[40, 30]) == PLAN_COLOR

    env, records = _grid_episode_with_plans()
    record = records[0]
    frames = annotate_frames(env, record)
    assert len(frames) == record.steps + 1 and frames[0].shape == (256, 256, 3)
    plain = np.asarray(record.frames[-1]).repeat(4, axis=0).repeat(4, axis=1)
    assert (frames[-1] != plain).any(axis=-1).sum() > 200  # trail, plan, caption
    cartpole = gym.make(CARTPOLE, render_mode="rgb_array")
    cart_record = run_episodes(cartpole, TowardGoal(), 1, seed=0, max_steps=2, record_frames=1, progress=False)[0]
    plain_frames = annotate_frames(cartpole, cart_record)  # no position mapping: the env's own renders, upscaled
    np.testing.assert_array_equal(
        plain_frames[1], np.asarray(cart_record.frames[1]).repeat(4, axis=0).repeat(4, axis=1)
    )
