"""The planner gym (mpc_grasp.problems) and the default GRASP on it (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mpc_grasp.planners import GraspConfig, make_planner
from mpc_grasp.problems import PROBLEMS, make_problem

REPO = Path(__file__).resolve().parents[1]


def _solved(problem_name: str, planner: str, count: int, **options) -> int:
    problem = make_problem(problem_name, count, seed=0)
    runner = make_planner(planner, problem.model, problem.horizon, **problem.planner_kwargs, **options)
    return sum(problem.solved(runner.plan(start, goal).states.numpy(), goal) for start, goal in problem.instances)


def test_default_grasp_brakes_on_the_double_integrator_where_the_paper_preset_overshoots() -> None:
    assert _solved("double_integrator_2d", "grasp", 3) == 3
    assert _solved("double_integrator_2d", "grasp", 3, config=GraspConfig.paper()) == 0  # the greedy fixed point


def test_default_grasp_swings_up_the_exact_cartpole() -> None:
    assert _solved("cartpole_swingup", "grasp", 2) == 2


def test_the_paper_preset_keeps_the_papers_mechanisms() -> None:
    paper = GraspConfig.paper()
    assert paper.detach_states is True and paper.lifted_goal_weight == 1.0 and paper.noise_scale > 0
    assert paper.sync_steps == 10 and paper.sync_every == 50 and paper.sync_samples == 0
    assert paper.noise_at(0) == paper.noise_scale and paper.noise_at(paper.iterations - 1) < 0.01
    planner = make_planner("grasp", make_problem("double_integrator_2d", 1).model, 10, config=paper)
    assert planner.detach_states and planner.lifted_goal_weight == 1.0


def test_default_grasp_resolves_the_stop_gradient_from_the_model_kind() -> None:
    problem = make_problem("double_integrator_2d", 1)
    state_space = make_planner("grasp", problem.model, 10)
    assert not state_space.detach_states and state_space.sync_every == 4  # full gradients, frequent sampling syncs

    class Latent(torch.nn.Module):
        state_dim, action_dim, plans_in_latent_space = 4, 2, True

        def forward(self, state, action):
            return problem.model(state, action)

    latent = make_planner("grasp", Latent(), 10)
    assert latent.detach_states and latent.lifted_goal_weight == 1.0  # the paper's setting where it matters
    assert latent.sync_every == 10 and make_planner("grasp", Latent(), 10, sync_every=3).sync_every == 3


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_every_problem_builds_seeded_instances_and_a_rollout_can_be_judged(name: str) -> None:
    first, again = make_problem(name, 3, seed=1), make_problem(name, 3, seed=1)
    assert len(first.instances) == 3
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first.instances, again.instances))
    start, goal = first.instances[0]
    states = first.model(torch.as_tensor(start)[None].expand(first.horizon, -1), torch.zeros(first.horizon, first.model.action_dim))
    assert states.shape == (first.horizon, first.model.state_dim)
    assert first.solved(np.concatenate([start[None], states.numpy()]), goal) in (True, False)
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("nope")


def test_planner_gym_and_speed_scripts_write_their_reports(tmp_path: Path) -> None:
    gym_out, speed_out = tmp_path / "gym", tmp_path / "speed"
    subprocess.run([sys.executable, "experiments/planner_gym.py", "--instances", "1", "--problems", "double_integrator_2d",
                    "--planners", "grasp", "mppi", "--out", str(gym_out)], cwd=REPO, check=True, capture_output=True)
    report = json.loads((gym_out / "planner_gym.json").read_text())
    assert {row["planner"] for row in report["rows"]} == {"grasp", "mppi"} and (gym_out / "planner_gym.png").exists()
    subprocess.run([sys.executable, "experiments/speed.py", "--horizons", "5", "--steps", "2", "--threads", "1",
                    "--candidates", "4", "--iterations", "2", "--out", str(speed_out)], cwd=REPO, check=True, capture_output=True)
    speed = json.loads((speed_out / "speed.json").read_text())
    assert {row["planner"] for row in speed["rows"]} == {"grasp", "cem", "mppi", "gd"}
    assert all(row["warm_ms_median"] > 0 and row["cold_ms"] > 0 for row in speed["rows"])
    assert {(row["planner"], row["candidates"]) for row in speed["iteration_rows"]} == {(p, 4) for p in ("grasp", "cem", "mppi", "gd")}
    assert "ms per iteration" in (speed_out / "speed.md").read_text() and (speed_out / "speed.png").exists()
    assert "Command: `python experiments/speed.py --horizons 5" in (speed_out / "speed.md").read_text() and "commit" in speed
