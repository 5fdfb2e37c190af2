"""The paper-tasks suite (bench.suites.paper_tasks): units, one open-loop unit end to end on UMaze with
a tiny model, the whole report at a tiny scale, and the suite's success test against the envs' own flags."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="needs the robotics extra: pip install 'mpc-grasp[robotics]'")

from bench.suites import paper_tasks as pt  # noqa: E402

from mpc_grasp.data import collect_transitions, make_env  # noqa: E402
from mpc_grasp.models import save_world_model, train_world_model  # noqa: E402

UMAZE = pt.TASKS["umaze"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A tiny UMaze model saved where ``load_or_build_model`` looks for the suite's (so nothing is trained at scale)."""
    folder = tmp_path_factory.mktemp("paper_models")
    data = collect_transitions(UMAZE.env_id, 600, seed=0, progress=False)
    model = train_world_model(data, hidden_sizes=(32, 32), epochs=3, seed=0, progress=False, num_threads=1)
    meta = {"task": "umaze", "env_id": UMAZE.env_id, "data_steps": UMAZE.data_steps, "seed": 0}
    save_world_model(model, pt.model_path(UMAZE, 0, folder), metadata=meta)
    return folder


def test_units_cover_the_cells_and_pairs_are_fixed():
    suite = pt.PaperSuite(
        tasks=("umaze",),
        planners=("grasp", "cem"),
        horizons=(5, 8),
        pairs=3,
        chunk=2,
        planner_pairs={"cem": 1},
        closed_loop_pairs=2,
        closed_loop_planners=("grasp",),
    )
    units = suite.units()
    open_loop = [u for u in units if u.key["mode"] == "open_loop"]
    assert [(u.key["planner"], u.key["horizon"], u.key["first_pair"]) for u in open_loop] == [
        ("grasp", 5, 0),
        ("grasp", 5, 2),
        ("grasp", 8, 0),
        ("grasp", 8, 2),
        ("cem", 5, 0),
        ("cem", 8, 0),
    ]
    assert [len(u.settings["pairs"]) for u in open_loop] == [2, 1, 2, 1, 1, 1]
    closed = [u for u in units if u.key["mode"] == "closed_loop"]
    assert len(closed) == 1 and len(closed[0].settings["pairs"]) == 2
    again = pt.make_pairs(UMAZE, 3, 0)
    assert again == open_loop[0].settings["pairs"] + open_loop[1].settings["pairs"]
    assert [p["difficulty"] for p in again] == [1, 2, 3]
    with pytest.raises(ValueError, match="unknown planner"):
        pt.PaperSuite(planners=("nope",))


def test_one_open_loop_unit_end_to_end(tiny_model_dir):
    pairs = pt.make_pairs(UMAZE, 1, 0)
    task = {
        "mode": "open_loop",
        "task": "umaze",
        "planner": "grasp",
        "horizon": 6,
        "first_pair": 0,
        "seed": 0,
        "model_dir": str(tiny_model_dir),
        "pairs": pairs,
        "time_cap": None,
    }
    (record,) = pt.run_open_loop_unit(task)
    assert record["pair"] == 0 and isinstance(record["success_env"], bool) and isinstance(record["success_model"], bool)
    assert record["wall_time"] > 0 and record["model_calls"] > 0 and record["min_distance_env"] > 0
    summary = pt.summarize([record])
    assert summary["n"] == 1 and summary["success_ci95"] is not None


def test_report_at_a_tiny_scale(tiny_model_dir, tmp_path):
    suite = pt.PaperSuite(
        tasks=("umaze",),
        planners=("grasp", "cem"),
        horizons=(5,),
        pairs=1,
        closed_loop_pairs=1,
        closed_loop_steps=3,
        closed_loop_planners=("grasp",),
        closed_loop_horizon=5,
        model_dir=tiny_model_dir,
    )
    report = pt.run_paper_tasks(suite, tmp_path, command="test", progress=False)
    assert {(r["mode"], r["planner"]) for r in report["rows"]} == {
        ("open_loop", "grasp"),
        ("open_loop", "cem"),
        ("closed_loop", "grasp"),
    }
    assert all((tmp_path / f"paper_tasks.{ext}").is_file() for ext in ("json", "md", "csv", "png"))
    assert json.loads((tmp_path / "paper_tasks.json").read_text())["scale"]["pairs"] == {"umaze": 1}
    assert "Open loop" in (tmp_path / "paper_tasks.md").read_text()
    again = pt.run_paper_tasks(suite, tmp_path, command="test", progress=False, resume=True)
    assert again["units_reused_from_log"] == 3


def test_the_open_loop_unit_takes_planner_options(tiny_model_dir):
    unit = {
        "task": "umaze",
        "seed": 0,
        "model_dir": str(tiny_model_dir),
        "planner": "grasp",
        "horizon": 5,
        "pairs": pt.make_pairs(UMAZE, 1, 0),
        "options": {"num_candidates": 0},
    }
    with pytest.raises(ValueError, match="num_candidates must be >= 1"):
        pt.run_open_loop_unit(unit)


def test_paired_time_ratio_compares_only_the_pairs_both_planners_solve():
    def record(pair: int, success: bool, seconds: float) -> dict:
        return {"pair": pair, "success_env": success, "episode_time": seconds}

    grasp = [record(0, True, 2.0), record(1, True, 9.0), record(2, False, 20.0), record(3, True, 3.0)]
    cem = [record(0, True, 5.0), record(1, False, 20.0), record(2, True, 4.0), record(3, True, 4.0)]
    # pairs 0 and 3 only: ratios 0.4 and 0.75; GRASP's own median (3.0 s) would mix in pair 1, which CEM fails
    assert pt.paired_time_ratio(grasp, cem) == {"paired_pairs": 2, "paired_time_ratio": pytest.approx(0.575)}
    assert pt.paired_time_ratio(grasp[2:3], cem[:1]) == {"paired_pairs": 0, "paired_time_ratio": None}


def test_maze_success_test_matches_the_env_flag_on_a_scripted_run():
    env = make_env(UMAZE.env_id)
    pair = pt.make_pairs(UMAZE, 1, 0)[0]
    obs, info = env.reset(seed=pair["reset_seed"], options=pair["options"])
    goal = np.asarray(pair["goal"])
    states, flags = [obs["observation"]], [info["is_success"]]
    for _ in range(150):  # a PD controller drives the ball to the goal one cell away
        state = obs["observation"]
        obs, _, terminated, _, info = env.step(np.clip(3.0 * (goal[:2] - state[:2]) - 0.5 * state[2:], -1, 1))
        states.append(obs["observation"])
        flags.append(info["is_success"])
        if terminated:
            break
    assert flags[-1] and not flags[0]  # the run crosses into the goal region
    np.testing.assert_array_equal(pt.model_success_steps(UMAZE, np.array(states), goal), np.array(flags))
    unwrapped = env.unwrapped
    for offset in (0.0, 0.3, 0.44, 0.46, 0.8):  # teleported states on both sides of the 0.45 radius
        state = unwrapped.set_ball_state(unwrapped.goal + np.array([offset, 0.0]))["observation"]
        assert (
            bool(pt.model_success_steps(UMAZE, state[None], goal)[0]) == unwrapped.is_success(state) == (offset <= 0.45)
        )
    env.close()


def test_pusht_coverage_matches_the_env():
    pytest.importorskip("gym_pusht", reason="needs gym-pusht (docs/paper_tasks.md)")
    task = pt.TASKS["pusht"]
    env = make_env(task.env_id)
    goal = np.array([100.0, 100.0, 250.0, 260.0, 0.7])
    outcomes = []
    for shift, turn in ((0.0, 0.0), (1.0, 0.0), (3.0, 0.0), (0.0, 0.05), (20.0, 0.3)):
        start = np.array([450.0, 450.0, 250.0 + shift, 260.0, 0.7 + turn])
        obs, info = env.reset(seed=0, options={"state": start, "goal": goal})
        coverage = pt.tee_coverage(start[None, 2:5], goal[2:5])[0]
        assert coverage == pytest.approx(info["coverage"], abs=2e-3)
        assert (
            bool(pt.model_success_steps(task, obs["observation"][None], obs["desired_goal"])[0]) == info["is_success"]
        )
        outcomes.append(bool(info["is_success"]))
    assert outcomes == [True, True, False, False, False]  # the env's criterion is strict: 3 px or 0.05 rad fail
    env.close()
