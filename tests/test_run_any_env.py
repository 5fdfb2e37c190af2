"""``mpc-grasp run`` on any Box-action Gymnasium env: Pendulum-v1 (no ``is_success``, no goal of its own),
user errors phrased in CLI flags and raised before any planning, typed ``--set`` values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpc_grasp.cli import commands as cli
from mpc_grasp.data import collect_transitions
from mpc_grasp.models import save_world_model, train_world_model
from mpc_grasp.planners import Planner

PENDULUM = "Pendulum-v1"


@pytest.fixture(scope="module")
def pendulum_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny (untrained-quality) Pendulum world model: 300 transitions, one epoch of a 16-unit MLP."""
    dataset = collect_transitions(PENDULUM, 300, seed=0, progress=False)
    model = train_world_model(dataset, hidden_sizes=(16,), epochs=1, val_fraction=0.0, seed=0, progress=False)
    return save_world_model(model, tmp_path_factory.mktemp("ckpt") / "pendulum.pt", metadata={"env_id": PENDULUM})


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["run", *argv, "--no-progress"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.fixture
def no_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the command gets as far as planning (user errors must come first)."""

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("the planner ran: the error should have been raised before planning")

    monkeypatch.setattr(Planner, "plan", refuse)
    monkeypatch.setattr(Planner, "plan_batch", refuse)


def test_run_on_env_without_success_reports_return(
    pendulum_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys,
        PENDULUM,
        "--model",
        str(pendulum_checkpoint),
        "--goal",
        "[1, 0, 0]",
        "--episodes",
        "1",
        "--max-steps",
        "20",
        "--horizon",
        "5",
        "--iterations",
        "3",
        "--out-dir",
        str(out),
        "--set",
        "num_candidates=4",
        "--set",
        "goal_tolerance=null",
        "--set",
        "keep_solved_warm_start=false",
        "--set",
        "dense_goal_weight=1",
    )
    assert code == 0, err
    assert "success n/a (Pendulum-v1 does not report info['is_success'])" in stdout and "mean return" in stdout
    assert "1 episode\n" in stdout and "1 episodes" not in stdout and "over 20 plans" in stdout
    assert "GraspConfig(" not in stdout  # the resolved config goes to summary.json, not the console
    summary = json.loads((out / "summary.json").read_text())
    assert summary["successes"] is None and summary["success_rate"] is None and summary["success_ci95"] is None
    assert summary["success_episodes"] == 0 and summary["episodes_detail"][0]["success"] is None
    assert summary["episodes_detail"][0]["steps"] == 20 and summary["plans"] == 20
    assert isinstance(summary["mean_return"], float) and summary["goal"] == [1.0, 0.0, 0.0]
    assert summary["episodes_detail"][0]["goal"] == [1.0, 0.0, 0.0]  # the goal the episode planned to
    assert "longer than the episode limit" not in err
    config = summary["planner_config"]
    assert (
        config["num_candidates"] == 4 and config["goal_tolerance"] is None and config["keep_solved_warm_start"] is False
    )
    assert summary["planner_options"] == {
        "num_candidates": 4,
        "goal_tolerance": None,
        "keep_solved_warm_start": False,
        "dense_goal_weight": 1.0,
        "iterations": 3,
    }
    assert config["warm_iterations"] == 3 and config["first_plan_iterations"] == 3  # --iterations caps every plan
    assert summary["schedule"]["cold_iterations"] == 3 and summary["schedule"]["warm_iterations"] == 3
    assert summary["episodes_detail"][0]["median_iterations"] <= 3
    assert (out / "plans.png").stat().st_size > 10_000 and (out / "episode.gif").stat().st_size > 1_000


def test_a_horizon_longer_than_the_episode_warns_once(
    pendulum_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys,
        PENDULUM,
        "--model",
        str(pendulum_checkpoint),
        "--goal",
        "[1, 0, 0]",
        "--env-kwarg",
        "max_episode_steps=3",
        "--horizon",
        "6",
        "--episodes",
        "2",
        "--iterations",
        "1",
        "--set",
        "num_candidates=2",
        "--no-gif",
        "--out-dir",
        str(tmp_path),
    )
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "longer than the episode limit" in line]
    assert warnings == [
        "mpc-grasp run: warning: --horizon 6 is longer than the episode limit of 3 steps "
        "(Pendulum-v1's max_episode_steps); plan steps past the episode's end are never executed"
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [episode["goal"] for episode in summary["episodes_detail"]] == [[1.0, 0.0, 0.0]] * 2


def test_missing_goal_names_the_goal_flag_before_planning(
    pendulum_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_planning: None
) -> None:
    code, _, err = _run(capsys, PENDULUM, "--model", str(pendulum_checkpoint), "--out-dir", str(tmp_path))
    assert code == 1
    assert "Pendulum-v1 has no goal in its observations; pass --goal '[...]' (a JSON list of 3 numbers" in err
    assert "goal=" not in err and "goal_observation" not in err  # no Python argument names


def test_an_output_folder_that_cannot_be_one_fails_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_planning: None
) -> None:
    a_file = tmp_path / "model.pt"
    a_file.write_text("not a folder")
    missing_model = str(tmp_path / "never-read.pt")  # the folder check comes first: the model is never opened
    code, _, err = _run(capsys, PENDULUM, "--model", missing_model, "--goal", "[1, 0, 0]", "--out-dir", str(a_file))
    assert code == 1 and f"--out-dir {a_file} is a file, not a folder" in err and "Traceback" not in err
    code, _, err = _run(
        capsys, PENDULUM, "--model", missing_model, "--goal", "[1, 0, 0]", "--out-dir", str(a_file / "sub")
    )
    assert code == 1 and f"--out-dir {a_file / 'sub'} cannot be created" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("goal", "message"),
    [
        ("[1, 0]", "--goal has 2 numbers but the model's state has 3; pass --goal '[...]' with 3 numbers"),
        ("[1, 0, 0, 0]", "--goal has 4 numbers but the model's state has 3"),
        ("up", "--goal must be a JSON list of numbers, got 'up'"),
        ('[1, "a", 0]', "--goal must be a non-empty JSON list of numbers"),
        ("[NaN, 0, 0]", "--goal must be finite"),
    ],
)
def test_bad_goal_is_a_cli_error(
    pendulum_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_planning: None,
    goal: str,
    message: str,
) -> None:
    code, _, err = _run(
        capsys, PENDULUM, "--model", str(pendulum_checkpoint), "--goal", goal, "--out-dir", str(tmp_path)
    )
    assert code == 1 and message in err


def test_discrete_action_space_is_refused(
    pendulum_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_planning: None
) -> None:
    code, _, err = _run(capsys, "CartPole-v1", "--model", str(pendulum_checkpoint), "--out-dir", str(tmp_path))
    assert code == 1 and "mpc-grasp run needs a Box (continuous) action space; CartPole-v1 has Discrete(2)" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("num_candidates=abc", "--set num_candidates=abc: expected an integer for GraspConfig.num_candidates"),
        ("num_candidates=2.5", "--set num_candidates=2.5: expected an integer for GraspConfig.num_candidates"),
        (
            "keep_solved_warm_start=maybe",
            "--set keep_solved_warm_start=maybe: expected true or false for GraspConfig.keep_solved_warm_start",
        ),
        ("goal_tolerance=far", "--set goal_tolerance=far: expected a number or null for GraspConfig.goal_tolerance"),
        ("warm_iterations=x", "--set warm_iterations=x: expected an integer or null for GraspConfig.warm_iterations"),
        ("dense_goal_weight=heavy", "--set dense_goal_weight=heavy: expected a number for Planner.dense_goal_weight"),
        ("horizon=5", "--set horizon=5: use --horizon instead"),
        ("oops", "--set: expected KEY=VALUE, got 'oops'"),
    ],
)
def test_set_values_are_typed_before_planning(
    pendulum_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_planning: None,
    option: str,
    message: str,
) -> None:
    code, _, err = _run(
        capsys,
        PENDULUM,
        "--model",
        str(pendulum_checkpoint),
        "--goal",
        "[1, 0, 0]",
        "--set",
        option,
        "--out-dir",
        str(tmp_path),
    )
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_set_rejections_from_the_planner_are_one_line_and_name_set(
    pendulum_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        PENDULUM,
        "--model",
        str(pendulum_checkpoint),
        "--goal",
        "[1, 0, 0]",
        "--out-dir",
        str(tmp_path),
        "--no-gif",
    ]
    code, _, err = _run(capsys, *base, "--set", "num_candidate=4")
    assert code == 1 and err.startswith(
        "mpc-grasp run: error: --set: unknown option(s) ['num_candidate'] for GraspConfig"
    )
    assert "also accepted: [" in err and "'dense_goal_weight'" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, *base, "--set", "num_candidates=0")
    assert (
        code == 1
        and "planner options rejected: num_candidates must be >= 1, got 0 (given: --set num_candidates=0)" in err
    )
    code, _, err = _run(capsys, *base, "--iterations", "3", "--set", "iterations=5")
    assert code == 1 and "--iterations 3 and --set iterations=5 both given" in err
