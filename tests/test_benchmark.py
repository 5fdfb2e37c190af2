"""The benchmark (bench.suites.benchmark): tiny end-to-end run, real-env execution, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from bench.suites.benchmark import (
    ENVS,
    BenchEnv,
    BenchmarkConfig,
    Task,
    build_model,
    execute_open_loop,
    load_configs,
    main,
    make_tasks,
    plan_chunk,
    run_benchmark,
    success_steps,
)

from mpc_grasp.data import make_env
from mpc_grasp.models.analytic import PointMassWalls

TINY_BUDGETS = {
    "grasp": {"iterations": 8, "num_candidates": 2},
    "cem": {"iterations": 4, "num_candidates": 16, "elites": 4},
}
OPEN = BenchEnv("open", "mpc_grasp/GridWorldOpen-v0", "grid", "open", (20,), 20, 1000, 0.3, 30, 10, 0.2)


def _tiny_config(tmp_path: Path, **overrides) -> BenchmarkConfig:
    settings = dict(
        envs=("wall",),
        planners=("grasp", "cem"),
        models=("analytic",),
        horizons=(12,),
        modes=("open_loop", "closed_loop"),
        pairs=3,
        batch_size=2,
        closed_loop_pairs=1,
        closed_loop_planners=("grasp",),
        budgets=TINY_BUDGETS,
        quick=True,
        out_dir=tmp_path,
        prefix="bench",
        progress=False,
    )
    settings.update(overrides)
    return BenchmarkConfig(**settings)


def test_tiny_run_writes_json_csv_md_and_plots(tmp_path: Path) -> None:
    torch.manual_seed(0)
    report = run_benchmark(_tiny_config(tmp_path), "pytest tiny")
    for suffix in (".json", ".csv", ".md", "_success_vs_horizon.png", "_success_vs_time.png"):
        assert (tmp_path / f"bench{suffix}").is_file(), suffix
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["command"] == "pytest tiny" and "git_commit" in saved
    cells = {(c["mode"], c["planner"]) for c in saved["cells"]}
    assert cells == {("open_loop", "grasp"), ("open_loop", "cem"), ("closed_loop", "grasp")}
    # the same start/goal pairs for every planner
    pairs = {c["planner"]: [r["pair"] for r in c["records"]] for c in saved["cells"] if c["mode"] == "open_loop"}
    assert pairs["grasp"] == pairs["cem"] == [0, 1, 2]
    assert saved["tasks"]["wall"] == [t.to_json() for t in make_tasks(ENVS["wall"], 3, 0)]
    for cell in saved["cells"]:
        s = cell["summary"]
        assert 0.0 <= s["success_rate"] <= 1.0
        low, high = s["success_ci95"]
        assert low <= s["success_rate"] <= high
        assert s["median_wall_time_per_plan"] > 0
        if cell["mode"] == "open_loop":
            assert s["n"] == 3 and 0.0 <= s["success_model_rate"] <= 1.0
            assert s["median_model_transitions"] > 0
    lines = (tmp_path / "bench.csv").read_text().splitlines()
    assert lines[0].startswith("# command: pytest tiny") and lines[1].startswith("# git_commit:")
    rows = list(csv.DictReader(lines[2:]))
    bench_rows = [r for r in rows if r["mode"] != "closed_loop_rl"]
    assert len(bench_rows) == 3 and {r["horizon"] for r in bench_rows} == {"12"}
    for row in rows:
        assert float(row["success_ci95_low"]) <= float(row["success_rate"]) <= float(row["success_ci95_high"])
    assert "pytest tiny" in (tmp_path / "bench.md").read_text()
    assert "Smoke run (`--quick`)" in (tmp_path / "bench.md").read_text()  # a quick run says it is one
    assert report["units_reused_from_log"] == 0

    again = run_benchmark(_tiny_config(tmp_path, resume=True), "pytest tiny")  # everything comes from the resume log
    assert again["units_reused_from_log"] == 5  # 2 chunks x 2 planners + 1 closed-loop cell
    assert [c["summary"]["success_rate"] for c in again["cells"]] == [
        c["summary"]["success_rate"] for c in report["cells"]
    ]


def test_open_loop_execution_matches_the_analytic_model_on_a_straight_line() -> None:
    env = make_env(OPEN.env_id)
    task = Task(0, (2.0, 2.0), (5.0, 2.5), (2.0, 2.0))
    actions = np.tile([1.0, 1.0 / 6.0], (14, 1))  # 12 steps reach the goal; 2 more push on toward x = 5.5
    executed = execute_open_loop(OPEN, env, task, actions)
    model = PointMassWalls.from_layout(
        "open", agent_radius=env.unwrapped.agent_radius, step_size=env.unwrapped.step_size
    )
    states = [torch.tensor(task.start)]
    for action in torch.tensor(actions, dtype=torch.float32):
        states.append(model(states[-1][None], action[None])[0])
    rollout = torch.stack(states).numpy()
    assert executed.shape == (15, 2)
    assert np.abs(executed - rollout).max() < 1e-4
    hits = success_steps(OPEN, executed, task.goal, 0.3)
    assert hits[12] and not hits[:10].any()

    # a planned straight-line task: GRASP's plan succeeds under the model and in the env alike
    model_, _ = build_model(OPEN, "analytic", BenchmarkConfig(progress=False))
    records = plan_chunk(
        OPEN, model_, env, "cem", {"iterations": 6, "num_candidates": 64, "elites": 8}, 16, [task], seed=0
    )
    assert records[0]["success_model"] and records[0]["success_env"]
    assert records[0]["max_model_env_gap"] < 0.05


def test_cartpole_tasks_and_execution_start_from_the_stored_state() -> None:
    env = ENVS["cartpole"]
    tasks = make_tasks(env, 2, 0)
    assert tasks[0].start != tasks[1].start and tasks[0].goal == (0.0, 0.0, 1.0, 0.0, 0.0)
    executed = execute_open_loop(env, make_env(env.env_id), tasks[0], np.zeros((5, 1)))
    assert executed.shape == (6, 5) and np.allclose(executed[0], tasks[0].start, atol=1e-6)
    assert not success_steps(env, executed, tasks[0].goal, 0.3).any()  # hanging down is not the goal


def test_bad_names_give_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--envs", "moon", "--out-dir", str(tmp_path)]) == 1
    assert "unknown env 'moon'" in capsys.readouterr().err
    assert main(["--planners", "grasp", "ilqr", "--out-dir", str(tmp_path)]) == 1
    assert "unknown planner 'ilqr'" in capsys.readouterr().err
    assert main(["--model", "oracle", "--out-dir", str(tmp_path)]) == 1
    assert "unknown model 'oracle'" in capsys.readouterr().err
    assert main(["--horizons", "50", "moon=5", "--out-dir", str(tmp_path)]) == 1
    assert "unknown env 'moon'" in capsys.readouterr().err
    assert main(["--horizons", "fifty", "--out-dir", str(tmp_path)]) == 1
    assert "--horizons expects integers" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown planner"):
        BenchmarkConfig(planners=("grasp", "rrt"))
    config = BenchmarkConfig(
        horizons=(50, 80), env_horizons={"cartpole": (25,)}, ablation_envs=("wall",), closed_loop_envs=("wall",)
    )
    assert config.horizons_of(ENVS["cartpole"]) == (25,) and config.horizons_of(ENVS["maze"]) == (50, 80)
    assert "grasp_no_sync" in config.labels_of(ENVS["wall"], "open_loop") and config.labels_of(
        ENVS["maze"], "open_loop"
    ) == (
        "grasp",
        "cem",
        "mppi",
        "gd",
    )
    assert config.labels_of(ENVS["maze"], "closed_loop") == ()
    with pytest.raises(ValueError, match="analytic exists only for the grid worlds"):
        build_model(ENVS["cartpole"], "analytic", BenchmarkConfig(progress=False))

    from bench.suites.benchmark import main as benchmark_main

    assert benchmark_main(["--envs", "moon"]) == 1
    assert "unknown env" in capsys.readouterr().err


def test_configs_file_formats_and_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"grasp": {"iterations": 50}, "grasp_no_sync": {"lr_actions": 0.1}}))
    assert load_configs(plain) == {"grasp": {"iterations": 50}, "grasp_no_sync": {"lr_actions": 0.1}}
    config = BenchmarkConfig(budgets=load_configs(plain))
    assert config.budget_of("grasp_no_sync") == {
        "iterations": 50,
        "num_candidates": 8,
        "lr_actions": 0.1,
        "sync_every": 0,
    }
    tuning = tmp_path / "tuning.json"
    tuning.write_text(json.dumps({"chosen": {"cem": {"config": {"num_candidates": 64, "elites": 8}, "score": 0.5}}}))
    assert load_configs(tuning) == {"cem": {"num_candidates": 64, "elites": 8}}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grasp": {"learning_rate": 1.0}}))
    with pytest.raises(ValueError, match="bad options for 'grasp'"):
        load_configs(bad)
    bad.write_text(json.dumps({"astar": {}}))
    with pytest.raises(ValueError, match="unknown planner 'astar'"):
        load_configs(bad)
    with pytest.raises(FileNotFoundError):
        load_configs(tmp_path / "missing.json")
