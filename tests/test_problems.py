"""The planner gym (bench.suites.problems, the gym suite bench.suites.gym) and the default GRASP on
it. ``test_outputs_exist``, ``test_json_schema``,
``test_wilson_interval``, ``test_shortest_path_goes_through_the_door`` and ``test_resume_reuses_finished_plans``
come from the removed ``tests/test_planner_bench.py`` (its benchmark became the gym suite)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bench.report import wilson_interval
from bench.suites import gym
from bench.suites.problems import PROBLEMS, feasible, make_problem, shortest_path_length, wall_min_steps
from mpc_grasp.envs.grid_world import segment_hits_wall

from mpc_grasp.planners import PLANNERS, GraspConfig, make_planner

REPO = Path(__file__).resolve().parents[1]


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _solved(problem_name: str, planner: str, count: int, **options) -> int:
    problem = make_problem(problem_name, count, seed=0)
    runner = make_planner(planner, problem.model, problem.horizon, **problem.planner_kwargs, **options)
    return sum(problem.solved(runner.plan(start, goal).states.numpy(), goal) for start, goal in problem.instances)


def test_default_grasp_brakes_on_the_double_integrator_where_the_paper_preset_overshoots() -> None:
    assert _solved("double_integrator_2d", "grasp", 3) == 3
    unit = {"state_weights": (1.0, 1.0, 1.0, 1.0)}  # positions and velocities weighed alike, in raw units
    assert _solved("double_integrator_2d", "grasp", 3, **unit) == 3
    assert (
        _solved("double_integrator_2d", "grasp", 3, config=GraspConfig.paper(), **unit) == 0
    )  # the greedy fixed point
    # in natural units (the default goal weights 1 / scale²) the paper preset's shooting syncs stop the mass too
    assert _solved("double_integrator_2d", "grasp", 3, config=GraspConfig.paper()) == 3


def test_default_grasp_swings_up_the_exact_cartpole() -> None:
    assert _solved("cartpole_swingup", "grasp", 2) == 2


def test_the_paper_preset_keeps_the_papers_mechanisms() -> None:
    paper = GraspConfig.paper()
    assert paper.detach_states is True and paper.lifted_goal_weight == 1.0 and paper.noise_scale > 0
    assert paper.sync_steps == 10 and paper.sync_every == 50 and paper.sync_samples == 0
    assert paper.noise_at(0) == paper.noise_scale and paper.noise_at(paper.iterations - 1) < 0.01
    planner = make_planner("grasp", make_problem("double_integrator_2d", 1).model, 10, config=paper)
    assert planner.config.detach_states and planner.config.lifted_goal_weight == 1.0


def test_default_grasp_resolves_the_stop_gradient_from_the_model_kind() -> None:
    problem = make_problem("double_integrator_2d", 1)
    state_space = make_planner("grasp", problem.model, 10)
    assert (
        not state_space.config.detach_states and state_space.config.sync_every == 4
    )  # full gradients, frequent sampling syncs

    class Latent(torch.nn.Module):
        state_dim, action_dim, plans_in_latent_space = 4, 2, True

        def forward(self, state, action):
            return problem.model(state, action)

    latent = make_planner("grasp", Latent(), 10)
    assert (
        latent.config.detach_states and latent.config.lifted_goal_weight == 1.0
    )  # the paper's setting where it matters
    assert latent.config.sync_every == 10 and make_planner("grasp", Latent(), 10, sync_every=3).config.sync_every == 3


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_every_problem_builds_seeded_instances_and_a_rollout_can_be_judged(name: str) -> None:
    first, again = make_problem(name, 3, seed=1), make_problem(name, 3, seed=1)
    assert len(first.instances) == 3
    assert all(
        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first.instances, again.instances)
    )
    start, goal = first.instances[0]
    states = first.model(
        torch.as_tensor(start)[None].expand(first.horizon, -1), torch.zeros(first.horizon, first.model.action_dim)
    )
    assert states.shape == (first.horizon, first.model.state_dim)
    assert first.solved(np.concatenate([start[None], states.numpy()]), goal) in (True, False)
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("nope")


def test_planner_gym_and_speed_scripts_write_their_reports(tmp_path: Path) -> None:
    gym_out, speed_out = tmp_path / "gym", tmp_path / "speed"
    subprocess.run(
        [
            sys.executable,
            "experiments/planner_gym.py",
            "--instances",
            "1",
            "--problems",
            "double_integrator_2d",
            "--planners",
            "grasp",
            "mppi",
            "--out",
            str(gym_out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    report = json.loads((gym_out / "planner_gym.json").read_text())
    assert {row["planner"] for row in report["rows"]} == {"grasp", "mppi"} and (gym_out / "planner_gym.png").exists()
    subprocess.run(
        [
            sys.executable,
            "experiments/speed.py",
            "--horizons",
            "5",
            "--steps",
            "2",
            "--threads",
            "1",
            "--candidates",
            "4",
            "--iterations",
            "2",
            "--peer-problems",  # none: the peer rows have their own tests (tests/test_speed_peers.py)
            "--out",
            str(speed_out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    speed = json.loads((speed_out / "speed.json").read_text())
    assert {row["planner"] for row in speed["rows"]} == {"grasp", "cem", "icem", "mppi", "gd"}
    assert speed["peer_rows"] == []
    assert all(row["warm_ms_median"] > 0 and row["cold_ms"] > 0 for row in speed["rows"])
    assert {(row["planner"], row["candidates"]) for row in speed["iteration_rows"]} == {
        (p, 4) for p in ("grasp", "cem", "icem", "mppi", "gd")
    }
    assert "ms per iteration" in (speed_out / "speed.md").read_text() and (speed_out / "speed.png").exists()
    assert (
        "Command: `python experiments/speed.py --horizons 5" in (speed_out / "speed.md").read_text()
        and "commit" in speed
    )
    # the speed suite's other entry point: GRASP's iteration vs the floor of one forward+backward
    subprocess.run(
        [
            sys.executable,
            "experiments/profile_grasp.py",
            "--horizons",
            "5",
            "--candidates",
            "2",
            "--iterations",
            "2",
            "--repeats",
            "1",
            "--out-dir",
            str(speed_out),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    profile = json.loads((speed_out / "profile_grasp.json").read_text())
    assert [(row["model"], row["horizon"]) for row in profile["rows"]] == [("eager", 5)] and profile["rows"][0][
        "floor_ms"
    ] > 0
    assert "GRASP ms/it" in (speed_out / "profile_grasp.md").read_text()


# ----------------------------------------------------------------------------- the gym suite (was tests/test_planner_bench.py)

TINY = [
    "--instances",
    "2",
    "--problems",
    "double_integrator_2d",
    "walls_across_h50",
    "--planners",
    "grasp",
    "mppi",
    "--no-progress",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("gym")
    return out_dir, _load_script("planner_gym").main([*TINY, "--out", str(out_dir)])


def test_outputs_exist(tiny_run) -> None:
    out_dir, _ = tiny_run
    for name in ("planner_gym.json", "planner_gym.md", "planner_gym.png"):
        path = out_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    markdown = (out_dir / "planner_gym.md").read_text()
    assert "| problem | grasp | mppi |" in markdown and "Reachable within H (upper bound on success): " in markdown
    for name in ("double_integrator_2d", "walls_across_h50"):
        assert f"| {name} |" in markdown
    assert "Command: `python experiments/planner_gym.py --instances 2" in markdown


def test_json_schema(tiny_run) -> None:
    out_dir, returned = tiny_run
    report = json.loads((out_dir / "planner_gym.json").read_text())
    assert report["rows"] == json.loads(json.dumps(returned["rows"]))
    for key in ("command", "commit", "threads", "problems", "planners", "rows", "settings"):
        assert key in report, key
    assert report["command"].startswith("python experiments/planner_gym.py --instances 2")
    assert report["commit"] is None or len(report["commit"].removesuffix("+dirty")) == 40
    assert report["settings"] == {"instances": 2, "seed": 0, "time_cap": 240.0} and report["backend"] == "local"
    assert {(row["problem"], row["planner"]) for row in report["rows"]} == {
        (problem, planner) for problem in ("double_integrator_2d", "walls_across_h50") for planner in ("grasp", "mppi")
    }
    for row in report["rows"]:
        assert row["instances"] == 2
        rate, (low, high) = row["success_rate"], row["ci95"]
        assert 0.0 <= low <= rate <= high <= 1.0, row
        assert math.isclose(rate, row["successes"] / 2)
        assert row["median_time_s"] > 0
        assert row["median_model_calls"] >= 1 and row["median_model_transitions"] >= 1
        assert 1 <= row["median_iterations"] <= PLANNERS[row["planner"]].config_class().iterations
        assert row["median_closest_distance"] >= 0.0
        assert ("reachable" in row) == row["problem"].startswith("walls") and row.get("reachable", 0) <= row[
            "instances"
        ]
    walls = make_problem("walls_across_h50", 3)
    assert all(segment_hits_wall("wall", start, goal) for start, goal in walls.instances)  # non-greedy: across the wall


def test_wilson_interval() -> None:
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    low, high = wilson_interval(25, 50)
    assert low == pytest.approx(0.3664, abs=1e-3) and high == pytest.approx(0.6336, abs=1e-3)


def test_shortest_path_goes_through_the_door() -> None:
    # around the wall column x in [4, 5] through the door y in [6, 7] (agent radius 0.1)
    expected = 2 * math.hypot(1.9, 4.1) + 1.2
    assert shortest_path_length("wall", [2.0, 2.0], [7.0, 2.0]) == pytest.approx(expected, rel=1e-5)
    assert shortest_path_length("wall", [2.0, 2.0], [7.0, 2.0], metric="chebyshev") == pytest.approx(
        4.1 + 1.2 + 4.1, rel=1e-5
    )
    assert shortest_path_length("wall", [2.0, 2.0], [3.0, 3.0]) == pytest.approx(math.sqrt(2))
    task = {"path_length": 9.0, "path_length_chebyshev": 9.0}
    assert not feasible(task, 30, 0.3) and feasible(task, 35, 0.3)
    assert np.isfinite(shortest_path_length("wall", [1.5, 4.5], [7.5, 1.5]))
    # the walls problems' upper bound on success: (9.4 - 0.3) / 0.25 = 36.4 -> 37 steps at least
    start, goal = np.array([2.0, 2.0]), np.array([7.0, 2.0])
    assert wall_min_steps(start, goal) == 37
    problem = make_problem("walls_across_h50", 1)
    assert dataclasses.replace(problem, horizon=36).reachable(start, goal) is False
    assert dataclasses.replace(problem, horizon=37).reachable(start, goal) is True
    assert make_problem("double_integrator_2d", 1).reachable(start, goal) is None


def test_resume_reuses_finished_plans(tmp_path, monkeypatch) -> None:
    script = _load_script("planner_gym")
    argv = [
        "--instances",
        "2",
        "--problems",
        "double_integrator_2d",
        "mountain_car",
        "--planners",
        "cem",
        "mppi",
        "--no-progress",
        "--out",
        str(tmp_path),
    ]
    real_run_cell, calls = gym.run_cell, []

    def failing_run_cell(task):
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        calls.append(task["planner"])
        return real_run_cell(task)

    monkeypatch.setattr(gym, "run_cell", failing_run_cell)
    with pytest.raises(KeyboardInterrupt):
        script.main(argv)
    assert len((tmp_path / "planner_gym.partial.jsonl").read_text().splitlines()) == 3
    calls.clear()
    monkeypatch.setattr(gym, "run_cell", lambda task: (calls.append(task["planner"]), real_run_cell(task))[1])
    report = script.main([*argv, "--resume"])
    assert len(calls) == 1 and report["units_reused_from_log"] == 3
    assert all(row["instances"] == 2 for row in report["rows"]) and len(report["rows"]) == 4
    calls.clear()
    assert (
        script.main([*argv, "--resume", "--instances", "1"])["units_reused_from_log"] == 0 and len(calls) == 4
    )  # other settings: rerun
