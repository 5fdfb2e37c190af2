"""The planner benchmark script runs end to end in a tiny configuration and writes a sane report."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH_PATH = Path(__file__).resolve().parents[1] / "experiments" / "planner_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("planner_bench", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["planner_bench"] = module
    spec.loader.exec_module(module)
    return module


TINY = [
    "--pairs", "3", "--horizons", "6", "12",
    "--grasp-iterations", "12", "--grasp-candidates", "4",
    "--gd-iterations", "6", "--gd-candidates", "2",
    "--cem-iterations", "2", "--cem-population", "16", "--cem-elites", "4",
    "--mppi-iterations", "2", "--mppi-samples", "16",
    "--set", "grasp.sync_every=5",
    "--timing-horizons", "8", "--timing-iterations", "6", "--timing-candidates", "2", "--timing-repeats", "1",
    "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(bench, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bench")
    report = bench.main([*TINY, "--out-dir", str(out_dir)])
    return out_dir, report


def test_outputs_exist(tiny_run) -> None:
    out_dir, _ = tiny_run
    for name in ("planner_bench.json", "planner_bench.md", "planner_bench.png", "planner_bench_example.png"):
        path = out_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    markdown = (out_dir / "planner_bench.md").read_text()
    assert "| planner | H=6 | H=12 |" in markdown
    assert "grid-world disagreement" in markdown and "GRASP / GD" in markdown
    for name in ("grasp", "cem", "mppi", "gd"):
        assert f"| {name} |" in markdown


def test_json_schema(tiny_run) -> None:
    out_dir, returned = tiny_run
    report = json.loads((out_dir / "planner_bench.json").read_text())
    assert report["config"] == json.loads(json.dumps(returned["config"]))
    for key in ("command", "git_commit", "timestamp", "config", "budgets", "results", "time_per_iteration", "tasks", "records"):
        assert key in report, key
    assert report["command"].startswith("python experiments/planner_bench.py --pairs 3")
    assert report["git_commit"] is None or len(report["git_commit"]) == 40
    assert report["budgets"]["grasp"] == {"iterations": 12, "num_candidates": 4, "sync_every": 5}
    assert report["budgets"]["cem"] == {"iterations": 2, "num_candidates": 16, "elites": 4}
    assert report["effective_configs"]["grasp"]["sync_every"] == 5 and report["effective_configs"]["gd"]["goal_tolerance"] == 0.3
    assert "mpc_grasp/testbeds.py" in report["source_sha256"]
    assert set(report["results"]) == {"wall", "linear"}
    for family, by_h in report["results"].items():
        assert set(by_h) == {"6", "12"}
        for h, by_planner in by_h.items():
            assert set(by_planner) == {"grasp", "cem", "mppi", "gd"}
            for name, summary in by_planner.items():
                assert summary["n"] == 3
                rate, (low, high) = summary["success_rate"], summary["success_ci95"]
                assert 0.0 <= low <= rate <= high <= 1.0, (family, h, name, summary)
                assert math.isclose(rate, summary["successes"] / 3)
                assert summary["median_wall_time"] > 0
                assert summary["median_model_calls"] >= 1 and summary["median_model_transitions"] >= 1
                assert 1 <= summary["median_iterations"] <= report["budgets"][name]["iterations"]
                records = report["records"][family][h][name]
                assert len(records) == 3 and all(isinstance(r["success"], bool) for r in records)
                if family == "wall":
                    assert 0.0 <= summary["success_env_rate"] <= 1.0
                    assert all(r["max_one_step_gap"] >= 0.0 and isinstance(r["success_env"], bool) for r in records)
                    clean, (low, high) = summary["success_clean_rate"], summary["success_clean_ci95"]
                    assert 0.0 <= low <= clean <= high <= 1.0 and clean <= rate
    fractions = report["tasks"]["wall"]["feasible_fraction"]
    assert all(0.0 <= value <= 1.0 for value in fractions.values())
    assert all(pair["straight_line_blocked"] for pair in report["tasks"]["wall"]["pairs"])
    timing = report["time_per_iteration"]["horizons"]["8"]
    for variant in ("grasp", "grasp_no_sync", "gd"):
        assert timing[variant]["ms_per_iteration"] > 0
    assert timing["ratio_grasp_over_gd"] == pytest.approx(timing["grasp"]["ms_per_iteration"] / timing["gd"]["ms_per_iteration"])


def test_wilson_interval(bench) -> None:
    assert bench.wilson_interval(0, 10)[0] == 0.0 and bench.wilson_interval(10, 10)[1] == 1.0
    low, high = bench.wilson_interval(25, 50)
    assert low == pytest.approx(0.3664, abs=1e-3) and high == pytest.approx(0.6336, abs=1e-3)


def test_shortest_path_goes_through_the_door(bench) -> None:
    # around the wall column x in [4, 5] through the door y in [6, 7] (agent radius 0.1)
    expected = 2 * math.hypot(1.9, 4.1) + 1.2
    assert bench.shortest_path_length("wall", [2.0, 2.0], [7.0, 2.0]) == pytest.approx(expected, rel=1e-5)
    assert bench.shortest_path_length("wall", [2.0, 2.0], [7.0, 2.0], metric="chebyshev") == pytest.approx(4.1 + 1.2 + 4.1, rel=1e-5)
    assert bench.shortest_path_length("wall", [2.0, 2.0], [3.0, 3.0]) == pytest.approx(math.sqrt(2))
    task = {"path_length": 9.0, "path_length_chebyshev": 9.0}
    assert not bench.feasible(task, 30, 0.3) and bench.feasible(task, 35, 0.3)
    assert np.isfinite(bench.shortest_path_length("wall", [1.5, 4.5], [7.5, 1.5]))


def test_resume_reuses_finished_plans(bench, tmp_path, monkeypatch) -> None:
    argv = [
        "--pairs", "3", "--horizons", "5", "--families", "linear", "--planners", "cem", "mppi",
        "--cem-iterations", "2", "--cem-population", "8", "--cem-elites", "2", "--mppi-iterations", "2", "--mppi-samples", "8",
        "--timing-horizons", "--no-progress", "--out-dir", str(tmp_path),
    ]  # fmt: skip
    real_run_plan, calls = bench.run_plan, []

    def failing_run_plan(*args, **kwargs):
        if len(calls) == 4:
            raise KeyboardInterrupt("simulated kill")
        calls.append(args[0])
        return real_run_plan(*args, **kwargs)

    monkeypatch.setattr(bench, "run_plan", failing_run_plan)
    with pytest.raises(KeyboardInterrupt):
        bench.main(argv)
    assert len((tmp_path / "planner_bench.partial.jsonl").read_text().splitlines()) == 1 + 4
    calls.clear()
    monkeypatch.setattr(bench, "run_plan", lambda *a, **k: (calls.append(a[0]), real_run_plan(*a, **k))[1])
    report = bench.main([*argv, "--resume"])
    assert len(calls) == 2 and report["plans_resumed_from_checkpoint"] == 4
    assert all(s["n"] == 3 for s in report["results"]["linear"]["5"].values())
    assert report["time_per_iteration"] is None
    assert not (tmp_path / "planner_bench.partial.jsonl").exists()
