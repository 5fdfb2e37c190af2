"""The RL suite (``bench.suites.rl``): runs are work units, reused from the resume log, and the
report keeps the structure ``bench.suites.benchmark.rl_rows`` reads."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from bench.engine import ResumeLog, code_fingerprint
from bench.suites.benchmark import rl_rows
from bench.suites.rl import RLRun, RLSuiteConfig, plan_runs, run_rl_runs, run_rl_suite

from mpc_grasp.rl import baselines

TINY = RLSuiteConfig(
    envs=("wall",),
    budgets=("same",),
    same_steps={"wall": 128},
    n_eval=1,
    hyperparams={"ppo": {"n_steps": 64, "batch_size": 32}, "sac": {"learning_starts": 110, "batch_size": 16}},
)
"""Two tiny units: PPO and SAC+HER on the grid world, 128 env steps each, one evaluation episode."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def training_calls(monkeypatch) -> list[tuple]:
    """Every ``train_rl_baseline`` call the suite makes (the real function still runs)."""
    calls: list[tuple] = []
    real = baselines.train_rl_baseline

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(baselines, "train_rl_baseline", counting)
    return calls


def test_the_plan_is_env_algo_budget_with_her_for_sac_on_goal_envs() -> None:
    runs = plan_runs(RLSuiteConfig(large_algos=("ppo",), same_steps={"wall": 100}, large_factor=2.0))
    assert [(r.env, r.algo, r.budget, r.total_timesteps, r.her) for r in runs] == [
        ("wall", "ppo", "same", 100, False),
        ("wall", "sac", "same", 100, True),
        ("cartpole", "ppo", "same", 30_000, False),
        ("cartpole", "sac", "same", 30_000, False),
        ("wall", "ppo", "large", 200, False),
        ("cartpole", "ppo", "large", 60_000, False),
    ]
    assert runs[0].train_env_kwargs == {"task": "random"} and runs[0].eval_env_kwargs == {"task": "across"}
    with pytest.raises(ValueError, match="unknown algo"):
        RLSuiteConfig(algos=("dqn",))


def test_a_second_run_reuses_the_logged_units_without_training(
    tmp_path: Path, training_calls: list[tuple], monkeypatch
) -> None:
    sources = code_fingerprint()  # fixed: others editing the package meanwhile must not invalidate the log
    first = run_rl_suite(TINY, out_dir=tmp_path, command="first", progress=False, sources=sources)
    assert len(training_calls) == 2 and first["reused_runs"] == 0
    assert [(row["algo"], row["her"], row["env_steps"]) for row in first["runs"]] == [
        ("ppo", False, 128),
        ("sac", True, 128),
    ]

    def no_training(*args, **kwargs):
        raise AssertionError("a logged unit was trained again")

    monkeypatch.setattr(baselines, "train_rl_baseline", no_training)
    second = run_rl_suite(TINY, out_dir=tmp_path, command="second", resume=True, progress=False, sources=sources)
    assert second["reused_runs"] == 2
    assert second["runs"] == json.loads(json.dumps(first["runs"]))
    assert len(training_calls) == 2

    # the files keep the structure the benchmark's RL rows read
    saved = json.loads((tmp_path / "rl_baselines.json").read_text())
    assert {"command", "git_commit", "eval_seed", "n_eval", "runs"} <= set(saved) and saved["command"] == "second"
    rows, source = rl_rows(tmp_path / "rl_baselines.json", ["wall"])
    assert [row["planner"] for row in rows] == ["ppo (same budget)", "sac+her (same budget)"]
    assert all(row["n"] == 1 and row["eval_seed"] == 1000 for row in rows) and source["n_eval"] == 1
    assert "| wall | SAC+HER | same (×1) | 128 |" in (tmp_path / "rl_baselines.md").read_text()
    assert "env,algo,budget,env_steps" in (tmp_path / "rl_baselines.csv").read_text()


def test_changed_settings_train_again(tmp_path: Path, training_calls: list[tuple]) -> None:
    sources = code_fingerprint()
    run = RLRun(
        "wall",
        "ppo",
        "same",
        64,
        n_eval=1,
        eval_env_kwargs={"task": "across"},
        hyperparams={"n_steps": 64, "batch_size": 32},
    )
    log_path = tmp_path / "log.jsonl"
    run_rl_runs([run], log=ResumeLog(log_path, resume=True), progress=False, sources=sources)
    run_rl_runs([run], log=ResumeLog(log_path, resume=True), progress=False, sources=sources)
    assert len(training_calls) == 1
    other_seed = dataclasses.replace(run, eval_seed=7)
    (row,) = run_rl_runs([other_seed], log=ResumeLog(log_path, resume=True), progress=False, sources=sources)
    assert len(training_calls) == 2 and row["eval"]["seed"] == 7


def test_a_learning_curve_pauses_training_and_evaluates_returns_on_pendulum() -> None:
    run = RLRun(
        "pendulum",
        "sac",
        "curve",
        64,
        eval_at=(32,),
        n_eval=1,
        eval_seed=3,
        hyperparams={"learning_starts": 16, "batch_size": 16},
    )
    (row,) = run_rl_runs([run], progress=False)
    assert [point["env_steps"] for point in row["curve"]] == [32, 64]
    assert row["hyperparams"]["buffer_size"] == 64  # one buffer for the whole curve
    for point in row["curve"]:
        assert point["eval"]["seed"] == 3 and len(point["eval"]["episode_returns"]) == 1
        assert point["eval"]["mean_return"] == pytest.approx(point["eval"]["episode_returns"][0])
    assert row["eval"] == row["curve"][-1]["eval"] and row["env_steps"] == 64


def test_model_eval_units_write_a_loadable_report_and_are_reused(tmp_path: Path, monkeypatch) -> None:
    from bench.suites import model_eval

    config = model_eval.ModelEvalConfig(
        envs=("grid_wall",), steps=600, num_envs=2, epochs=2, hidden=(16,), batch_size=64, horizons=(1, 5)
    )
    sources = code_fingerprint()
    first = model_eval.run_model_eval(config, out_dir=tmp_path, command="first", progress=False, sources=sources)
    result = first["results"]["grid_wall"]
    assert len(result["nrmse"]) == len(result["no_change_nrmse"]) == 2 and result["multi_step"]["horizons"] == [1, 5]
    assert 0.0 <= result["grid"]["wall_violation_rate_h25"] <= 1.0 and len(result["grid"]["push_tests"]) == 8
    saved = json.loads((tmp_path / "model_eval.json").read_text())
    assert saved["horizons"] == [1, 5] and saved["results"]["grid_wall"]["nrmse"] == result["nrmse"]
    assert (tmp_path / "model_eval.png").stat().st_size > 0 and "| grid_wall |" in (
        tmp_path / "model_eval.md"
    ).read_text()

    monkeypatch.setattr(model_eval, "evaluate_env", lambda task: pytest.fail("a logged env was evaluated again"))
    second = model_eval.run_model_eval(
        config, out_dir=tmp_path, command="second", resume=True, progress=False, sources=sources
    )
    assert second["reused_envs"] == 1 and second["results"] == json.loads(json.dumps(first["results"]))
