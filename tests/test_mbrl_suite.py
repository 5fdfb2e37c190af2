"""The MBRL suite (experiments/mbrl_suite.py): budgets per env, summaries over seeds, a tiny run end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from bench.suites import mbrl_suite
from bench.suites.mbrl_suite import SUITE_ENVS, SuiteEnv, agent_summary, loop_config, mean_interval, rl_run

from mpc_grasp.rl.mbrl import MBRLConfig, mbrl_recipe


def test_loops_take_the_recipe_where_there_is_one_and_the_defaults_elsewhere() -> None:
    pendulum = loop_config(SUITE_ENVS["pendulum"], "cem", seed=2)
    assert pendulum == mbrl_recipe("Pendulum-v1", planner="cem", rounds=9, eval_episodes=5, seed=2)
    assert pendulum.env_steps(pendulum.rounds) == 2000
    reacher = loop_config(SUITE_ENVS["reacher"], "grasp", seed=0)
    assert reacher == MBRLConfig(env_id="Reacher-v5", rounds=9, eval_episodes=5)  # no recipe: the defaults
    assert set(SUITE_ENVS) == {
        "pendulum",
        "cartpole_swingup",
        "reacher",
        "inverted_pendulum",
        "inverted_double_pendulum",
    }


def test_rl_runs_are_evaluated_on_the_loops_episodes_at_its_step_counts() -> None:
    env = SUITE_ENVS["inverted_pendulum"]
    run = rl_run(env, "sac", seed=1, rl_steps=20_000)
    loop = loop_config(env, "grasp", seed=1)
    assert run.n_eval == loop.eval_episodes and run.eval_seed == loop.eval_seed and run.seed == 1
    assert {loop.env_steps(k) for k in range(loop.rounds + 1)} <= set(run.checkpoints)
    assert run.checkpoints[-1] == 20_000 and run.budget == "suite_seed1"


def test_the_interval_is_a_student_t_interval_over_seeds() -> None:
    mean, low, high = mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 / np.sqrt(3))  # t(0.975, 2 df) * sd / sqrt(n)
    assert mean_interval([5.0]) == (5.0, 5.0, 5.0)


def test_a_summary_finds_the_steps_to_the_threshold_and_to_sacs_return() -> None:
    runs = [
        {"seed": 0, "points": [{"env_steps": s, "mean_return": r} for s, r in [(200, -900), (400, -150), (600, -140)]]},
        {"seed": 1, "points": [{"env_steps": s, "mean_return": r} for s, r in [(200, -800), (400, -300), (600, -150)]]},
    ]
    for run in runs:
        run["train_time_per_step_s"] = 0.01
    summary = agent_summary(runs, threshold=-200.0, reference=-160.0)
    assert summary["steps"] == [200, 400, 600] and summary["mean"] == [-850.0, -225.0, -145.0]
    assert summary["steps_to_threshold"] == 600  # the mean over seeds: -225 at 400 is not yet -200
    assert summary["seed_steps_to_threshold"] == [400, 600]
    assert summary["steps_to_reference"] == 600
    partial = agent_summary([runs[0], {**runs[1], "points": runs[1]["points"][:2]}], -200.0, None)
    assert partial["steps"] == [200, 400]  # only the step counts every seed has reached


@pytest.mark.filterwarnings("ignore:training on")
def test_a_tiny_suite_runs_resumes_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = SuiteEnv(
        "Pendulum-v1", -200.0, rounds=1, eval_episodes=1, seed_steps=50, steps_per_round=50, rl_key="pendulum"
    )
    monkeypatch.setattr(mbrl_suite, "SUITE_ENVS", {"pendulum": tiny})
    runs = tmp_path / "runs"
    mbrl_suite.run_suite(runs, envs=["pendulum"], agents=["grasp", "sac"], seeds=[0], rl_steps=120, progress=False)
    report = mbrl_suite.build_report(runs, seeds=[0], rl_steps=120, command="test", threads=1)
    env = report["envs"]["pendulum"]
    assert set(env["agents"]) == {"grasp", "sac"}  # CEM and PPO were not run: left out, not invented
    assert env["agents"]["grasp"]["steps"] == [50, 100] and env["agents"]["sac"]["steps"] == [50, 100, 120]
    assert env["sac_return_at_rl_steps"] == env["agents"]["sac"]["mean"][-1]
    markdown = mbrl_suite.suite_markdown(report)
    assert "| Pendulum-v1 | -200 |" in markdown and "GraspMPC (GRASP)" in markdown
    assert mbrl_suite.plot_suite(report, tmp_path / "suite.png").stat().st_size > 0
    json.dumps(report)  # the report is plain JSON
    with pytest.raises(ValueError, match="unknown envs/agents"):
        mbrl_suite.run_suite(runs, envs=["hopper"], agents=["grasp"], seeds=[0])
    shutil.copytree(runs / "pendulum" / "grasp_seed0", runs / "pendulum" / "grasp_seed1")
    shutil.rmtree(runs / "pendulum" / "grasp_seed1" / "round_001")  # a loop still running: left out, named
    partial = mbrl_suite.collect_suite(runs, seeds=[0, 1], rl_steps=120)["pendulum"]
    assert len(partial["runs"]["grasp"]) == 1 and partial["unfinished"] == ["grasp seed 1"]
    before = (runs / "pendulum" / "grasp_seed0" / "round_001" / "record.json").stat().st_mtime_ns
    mbrl_suite.run_suite(runs, envs=["pendulum"], agents=["grasp"], seeds=[0], rl_steps=120, progress=False)
    assert (runs / "pendulum" / "grasp_seed0" / "round_001" / "record.json").stat().st_mtime_ns == before  # reused
    assert env["agents"]["grasp"]["config_differs"] == [] and "†" not in markdown
    config_path = runs / "pendulum" / "grasp_seed0" / "config.json"
    config_path.write_text(config_path.read_text().replace('"warm_start": false', '"warm_start": true'))
    stale = mbrl_suite.build_report(runs, seeds=[0], rl_steps=120, command="test", threads=1)
    assert stale["envs"]["pendulum"]["agents"]["grasp"]["config_differs"] == ["warm_start"]  # kept, and marked
    assert "(1)†" in mbrl_suite.suite_markdown(stale) and "differs in warm_start" in mbrl_suite.suite_markdown(stale)


def test_the_command_line_refuses_bad_budgets_and_reports_an_empty_suite(tmp_path: Path) -> None:
    import mbrl_suite as script

    with pytest.raises(SystemExit):
        script.main(["--rl-steps", "0", "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        script.main(["--envs", "Hopper-v5", "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path)])
    assert not (tmp_path / "runs").exists()  # refused before any work
    report = script.main(["--report-only", "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path)])
    assert all(not env["agents"] for env in report["envs"].values())
    assert "No finished runs." in (tmp_path / "mbrl_suite.md").read_text()
    assert (tmp_path / "mbrl_suite.png").stat().st_size > 0
