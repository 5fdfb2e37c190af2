"""The robustness suite (bench.suites.robustness, experiments/robustness.py): its variants are built as the issue
specifies, batched plans are the gym's plans, equal time scales every planner's iterations, and the CLI writes
its report and resumes. Tiny sizes: a few instances, cut iteration budgets."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from bench.suites import gym
from bench.suites.problems import make_problem
from bench.suites.robustness import (
    RANDOM_WEIGHT_RANGE,
    RobustnessSuite,
    make_runner,
    plan_batches,
    run_cell,
    skip_reason,
    variant_problem,
    variant_weights,
)

from mpc_grasp.planners import make_planner

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("robustness_script", REPO / "experiments" / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weight_variants_are_none_the_gyms_or_seeded_log_uniform_draws_around_them() -> None:
    problem = make_problem("cartpole_swingup", 1)
    own = np.asarray(problem.planner_kwargs["state_weights"])
    assert variant_weights(problem, "weights none", 0) is None
    assert np.allclose(variant_weights(problem, "base", 0), own)
    draws = [np.asarray(variant_weights(problem, f"weights random {k}", 0)) for k in (1, 2, 3)]
    assert all(not np.allclose(a, b) for i, a in enumerate(draws) for b in draws[i + 1 :])
    for draw in draws:
        ratio = draw / own
        assert np.all(ratio >= RANDOM_WEIGHT_RANGE[0]) and np.all(ratio <= RANDOM_WEIGHT_RANGE[1])
        assert not np.allclose(ratio, ratio[0])  # per dimension, not one overall factor
    assert np.array_equal(draws[0], variant_weights(problem, "weights random 1", 0))  # seeded
    assert not np.allclose(draws[0], variant_weights(problem, "weights random 1", 1))
    # the planner arguments: weights replaced or dropped, everything else (the pendulum's torque bounds) kept
    _, none = variant_problem("pendulum_swingup", "weights none", 1, 0)
    _, drawn = variant_problem("pendulum_swingup", "weights random 2", 1, 0)
    assert "state_weights" not in none and none["action_high"] == drawn["action_high"] == 2.0
    walls = make_problem("walls_across_h50", 1)  # no weights of its own: the draws scale ones
    assert all(0.2 <= w <= 5.0 for w in variant_weights(walls, "weights random 1", 0))


def test_horizon_variants_scale_the_horizon_and_spread_widens_the_starts() -> None:
    assert [variant_problem("cartpole_swingup", v, 1, 0)[0].horizon for v in ("base", "H x0.6", "H x1.5")] == [
        50,
        30,
        75,
    ]
    base, _ = variant_problem("cartpole_swingup", "base", 4, 0)
    wide, _ = variant_problem("cartpole_swingup", "spread x3", 4, 0)
    gym_instances = make_problem("cartpole_swingup", 4, 0).instances
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(base.instances, gym_instances))  # base = the gym's

    def deviation(start: np.ndarray) -> np.ndarray:  # from hanging at rest in the middle of the track
        return np.array([start[0], start[1], math.atan2(start[3], start[2]) % (2 * math.pi) - math.pi, start[4]])

    for (start, goal), (wide_start, wide_goal) in zip(base.instances, wide.instances):
        assert np.allclose(deviation(wide_start), 3 * deviation(start), atol=1e-5)
        assert np.array_equal(goal, wide_goal)
    # the double integrator: at rest at spread 1, moving (at most 0.1 (spread - 1) per axis) at spread 3
    rest, moving = make_problem("double_integrator_2d", 8, 0), make_problem("double_integrator_2d", 8, 0, spread=3.0)
    assert all(np.all(start[2:] == 0) for start, _ in rest.instances)
    speeds = np.abs(np.stack([start[2:] for start, _ in moving.instances]))
    assert speeds.max() <= 0.2 + 1e-6 and speeds.min() > 0
    positions = [np.abs(np.stack([start[:2] for start, _ in p.instances])).max() for p in (rest, moving)]
    assert positions[1] == pytest.approx(3 * positions[0], rel=1e-5)


def test_variants_that_are_the_base_or_not_defined_are_skipped_with_a_reason() -> None:
    assert "same as base" in skip_reason("double_integrator_2d", "weights none")
    assert "spread" in skip_reason("walls_across_h50", "spread x3")
    assert skip_reason("cartpole_swingup", "weights none") is None and skip_reason("walls_across_h50", "H x0.6") is None
    suite = RobustnessSuite(("double_integrator_2d", "walls_across_h50"), ("grasp",), ("weights none", "spread x3"))
    assert suite.cells() == [("double_integrator_2d", "spread x3")]
    with pytest.raises(ValueError, match="reference planner"):
        RobustnessSuite(planners=("cem",))


def test_batched_plans_are_the_gyms_one_at_a_time_plans() -> None:
    problem = make_problem("double_integrator_2d", 3, 0)
    gym_records = gym.plan_instances(problem, "cem", {"iterations": 3})
    runner = make_planner("cem", problem.model, problem.horizon, **problem.planner_kwargs, iterations=3)
    records = plan_batches(problem, runner, batch=2)
    assert [r["closest_distance"] for r in records] == pytest.approx([r["closest_distance"] for r in gym_records])
    assert [r["success"] for r in records] == [r["success"] for r in gym_records]
    assert records[0]["wall_time"] == records[1]["wall_time"] != records[2]["wall_time"]  # a batch's share per plan


def test_equal_time_gives_every_other_planner_its_iterations_scaled_to_the_reference_time() -> None:
    suite = RobustnessSuite(("double_integrator_2d",), ("grasp", "cem", "gd"), ("base",), instances=2)
    seconds = {"grasp": 0.2, "cem": 0.1, "gd": 0.8}
    rows = [
        {"problem": "double_integrator_2d", "variant": "base", "planner": p, "median_time_s": s}
        for p, s in seconds.items()
    ]
    units = {unit.key["planner"]: unit for unit in suite.equal_time_units(rows)}
    assert set(units) == {"cem", "gd"}  # the reference keeps its default cell
    assert units["cem"].settings["factor"] == 2.0 and units["gd"].settings["factor"] == 0.25
    assert units["gd"].settings["reference_time_s"] == 0.2
    problem, kwargs = variant_problem("double_integrator_2d", "base", 1, 0)
    default = make_runner("gd", problem, kwargs, 1.0).config
    scaled = make_runner("gd", problem, kwargs, 0.25).config
    assert scaled.iterations == round(0.25 * default.iterations) < default.iterations
    # a cell runs at the iteration scale times its final factor and records both
    task = {**units["gd"].worker_input(), "iteration_scale": 0.05}
    row = run_cell(task)
    assert row["calibration_runs"] in (1, 2) and row["instances"] == 2
    assert row["iteration_budget"] == max(1, round(0.05 * row["factor"] * default.iterations))


def test_the_cli_writes_the_report_and_resume_reuses_every_cell(tmp_path: Path) -> None:
    argv = ["--problems", "double_integrator_2d", "--planners", "grasp", "cem", "--variants", "base", "H x0.6"]
    argv += ["--instances", "2", "--quick", "--out", str(tmp_path), "--no-progress"]
    script = _script()
    first = script.main(argv)
    assert {path.name for path in tmp_path.iterdir()} >= {f"robustness_quick.{ext}" for ext in ("json", "md", "png")}
    saved = json.loads((tmp_path / "robustness_quick.json").read_text())
    assert saved["smoke_run"] and saved["budgets"] == ["defaults", "equal time"]
    assert len(saved["rows"]) == 2 * 2 * 2  # variants x planners x budgets
    text = (tmp_path / "robustness_quick.md").read_text()
    assert text.count("| double_integrator_2d · base |") == 2 and text.count("| double_integrator_2d · H x0.6 |") == 2
    assert (
        "Equal wall time per plan" in text
        and "**grasp**" in text
        and "Command: `python experiments/robustness.py" in text
    )
    again = script.main([*argv, "--resume"])
    assert again["units_reused_from_log"] == 4 + 2  # every default cell and every equal-time cell
    assert [row["success_rate"] for row in again["rows"]] == [row["success_rate"] for row in first["rows"]]
    assert [row["factor"] for row in again["rows"]] == [row["factor"] for row in first["rows"]]
