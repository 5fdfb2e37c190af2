"""iCEM (improved CEM, Pinneri et al. 2020): coloured sampling noise, decaying population, kept elites,
warm starts, and the shared planner contract (deterministic, batch-independent, bad options rejected)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from mpc_grasp import GraspMPC
from mpc_grasp.models.analytic import LinearSystem, PointMassWalls
from mpc_grasp.planners import ICEMConfig, ICEMPlanner, PlanInit, make_planner
from mpc_grasp.planners.icem import coloured_noise, coloured_noise_from_white

SMALL = dict(iterations=15, num_candidates=64)


def _spectrum(noise: torch.Tensor) -> torch.Tensor:
    """Mean power per rfft frequency bin of noise [samples, T]."""
    return torch.fft.rfft(noise, dim=-1).abs().square().mean(0)


# --------------------------------------------------------------------------- coloured noise


@pytest.mark.parametrize("horizon", [1, 2, 7, 50])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0, 3.0])
def test_coloured_noise_has_zero_mean_and_unit_variance_at_every_step(horizon: int, beta: float) -> None:
    noise = coloured_noise((20000, horizon), beta, torch.Generator().manual_seed(0))
    assert noise.shape == (20000, horizon)
    variance, mean = noise.var(0), noise.mean(0)
    assert torch.allclose(variance, torch.ones(horizon), atol=0.05), variance
    assert float(mean.abs().max()) < 0.05


def test_beta_two_noise_is_dominated_by_low_frequencies_with_a_one_over_f_squared_spectrum() -> None:
    noise = coloured_noise((4000, 64), 2.0, torch.Generator().manual_seed(1))
    power = _spectrum(noise)
    frequencies = torch.fft.rfftfreq(64)
    assert float(power[1:4].mean() / power[-8:].mean()) > 50  # the slowest bins carry far more power
    slope = np.polyfit(np.log(frequencies[1:].numpy()), np.log(power[1:].numpy()), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.15)
    lag_one = float((noise[:, 1:] * noise[:, :-1]).mean())
    assert lag_one > 0.9  # smooth: neighbouring steps nearly equal


def test_beta_zero_noise_is_white() -> None:
    noise = coloured_noise((4000, 64), 0.0, torch.Generator().manual_seed(2))
    power = _spectrum(noise)
    assert float(power[1:-1].max() / power[1:-1].min()) < 1.3  # flat spectrum
    lags = [float((noise[:, lag:] * noise[:, :-lag]).mean()) for lag in (1, 2, 5)]
    assert max(abs(value) for value in lags) < 0.03, lags


def test_higher_beta_is_smoother() -> None:
    def lag_one(beta: float) -> float:
        noise = coloured_noise((2000, 30), beta, torch.Generator().manual_seed(3))
        return float((noise[:, 1:] * noise[:, :-1]).mean())

    correlations = [lag_one(beta) for beta in (0.0, 1.0, 2.0, 3.0)]
    assert correlations == sorted(correlations), correlations


def test_coloured_noise_from_white_checks_its_input_shape() -> None:
    with pytest.raises(ValueError, match=r"\(2, 6\)"):
        coloured_noise_from_white(torch.zeros(3, 2, 5), 2.0, horizon=10)


# --------------------------------------------------------------------------- planning


def test_icem_reaches_the_goal_on_a_linear_system() -> None:
    model = LinearSystem.point(step_size=0.25)
    for seed, (start, goal) in enumerate([([0.0, 0.0], [2.0, 1.5]), ([1.0, -1.0], [-1.5, 0.5])]):
        result = make_planner("icem", model, horizon=20, seed=seed, goal_tolerance=0.05, **SMALL).plan(start, goal)
        assert result.actions.shape == (20, 2) and result.info["planner"] == "icem"
        assert float(result.info["final_distance"]) < 0.1, result.info["final_distance"]


def test_icem_brakes_a_double_integrator_at_its_defaults() -> None:
    model = LinearSystem.double_integrator(dt=0.1, dims=1)
    planner = make_planner("icem", model, horizon=25, seed=0, action_low=-3.0, action_high=3.0)
    result = planner.plan([0.0, 0.0], [0.5, 0.0])
    assert float(result.info["final_distance"]) < 0.05, result.info["final_distance"]


def test_the_population_decays_to_twice_the_elites_plus_the_kept_ones() -> None:
    planner = make_planner("icem", LinearSystem.point(), horizon=6, iterations=10, num_candidates=64, seed=0)
    config = planner.config
    assert (config.elites, config.kept_elites) == (7, 3)  # 10% of 64 rounded up; ceil(0.3 · 7)
    expected = [64, 52, 41, 33, 27, 21, 17, 14, 14, 14]  # ceil(64 / 1.25^i), floored at 2 K = 14
    assert [config.population(i) for i in range(10)] == expected
    sizes = planner.plan([0.0, 0.0], [1.0, 1.0]).info["population"].tolist()
    # kept elites join from the second iteration on; the mean joins in the last one
    assert sizes == [64] + [size + 3 for size in expected[1:-1]] + [expected[-1] + 3 + 1]
    # no decay, no kept elites: plain CEM's population every iteration
    plain = make_planner(
        "icem", LinearSystem.point(), 6, iterations=4, num_candidates=32, population_decay=1.0, keep_elites_fraction=0.0
    )
    assert plain.plan([0.0, 0.0], [1.0, 1.0]).info["population"].tolist() == [32, 32, 32, 33]


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    def plan(seed: int):
        model = PointMassWalls.from_layout("wall")
        return make_planner("icem", model, horizon=12, seed=seed, iterations=8, num_candidates=64).plan(
            [2.0, 3.0], [5.5, 3.0]
        )

    first, again, other = plan(1), plan(1), plan(2)
    assert torch.equal(first.actions, again.actions) and torch.equal(first.cost, again.cost)
    assert not torch.equal(first.actions, other.actions)


@pytest.mark.parametrize("early_stop", [False, True])
def test_plan_batch_row_i_is_the_plan_with_seed_i(early_stop: bool) -> None:
    model = PointMassWalls.from_layout("wall")
    starts, goals = [[2.0, 5.0], [1.5, 1.5], [2.0, 7.5]], [[6.5, 5.0], [3.5, 6.5], [2.5, 7.0]]
    options = dict(iterations=12, num_candidates=48, seed=3)
    if early_stop:
        options.update(goal_tolerance=0.3, check_every=4)
    batch = make_planner("icem", model, 12, **options).plan_batch(starts, goals)
    for index, (start, goal) in enumerate(zip(starts, goals)):
        single = make_planner("icem", model, 12, **{**options, "seed": 3 + index}).plan(start, goal)
        torch.testing.assert_close(batch.actions[index], single.actions, atol=1e-5, rtol=0)
        assert int(batch.info["problem_iterations"][index]) == single.info["iterations"]
    if early_stop:
        assert int(batch.info["problem_iterations"][-1]) < 12  # the easy problem stopped on its own


def test_a_warm_start_is_the_mean_and_a_scored_sample_of_the_first_iteration() -> None:
    model = LinearSystem.point(step_size=0.25)
    start, goal = [0.0, 0.0], [2.0, 1.5]
    cold_planner = make_planner("icem", model, horizon=20, seed=0, iterations=30, num_candidates=128)
    cold = cold_planner.plan(start, goal)
    warm_init = cold.shifted(1)
    # one iteration from the warm start: the shifted plan is scored, so the result is no worse than it
    warm_planner = make_planner("icem", model, horizon=20, seed=0, iterations=30, warm_iterations=1)
    warm = warm_planner.plan(cold.states[1], goal, init=warm_init)
    assert warm.info["iterations"] == 1
    assert warm.info["population"].tolist() == [256 + 1]  # the fresh samples and the shifted plan
    init_cost = warm_planner.trajectory_cost(
        warm_planner.rollout(cold.states[1][None], warm_init.actions[None, None]),
        warm_init.actions[None, None],
        torch.tensor([goal]),
    )
    assert float(warm.cost) <= float(init_cost) + 1e-6
    # a one-iteration cold plan of the same budget is far worse than the warm one
    blind = warm_planner.plan(cold.states[1], goal, iterations=1)
    assert float(warm.cost) < 0.1 * float(blind.cost), (float(warm.cost), float(blind.cost))
    # the samples are drawn around the warm start: a zero-noise plan returns it unchanged
    frozen = make_planner("icem", model, horizon=20, iterations=3, action_noise=1e-6, min_std=0.0)
    assert torch.allclose(frozen.plan(cold.states[1], goal, init=warm_init).actions, warm_init.actions, atol=1e-4)


def test_graspmpc_drives_icem_with_warm_starts() -> None:
    model = LinearSystem.point(step_size=0.25)
    agent = GraspMPC(
        model,
        "icem",
        horizon=10,
        action_space=gym.spaces.Box(-1.0, 1.0, (2,)),
        goal=[1.0, 0.5],
        seed=0,
        iterations=12,
        warm_iterations=3,
        num_candidates=64,
    )
    assert isinstance(agent.planner, ICEMPlanner)
    state, closest = torch.zeros(2), float("inf")
    for _ in range(8):
        action, _ = agent.predict(state.numpy())
        state = model(state[None], torch.as_tensor(action, dtype=torch.float32)[None])[0]
        closest = min(closest, float((state - torch.tensor([1.0, 0.5])).norm()))
    assert [step.warm_started for step in agent.diagnostics] == [False] + [True] * 7
    assert [step.iterations for step in agent.diagnostics][1:] == [3] * 7
    assert closest < 0.15, closest  # a goal-only cost has slack after arrival (see GraspMPC): the approach counts


def test_bounds_hold_and_a_far_goal_is_pursued_to_the_bound() -> None:
    planner = make_planner("icem", LinearSystem.point(), horizon=8, action_low=-0.2, action_high=0.4, seed=0)
    result = planner.plan([0.0, 0.0], [10.0, -10.0])  # at the defaults
    assert bool((result.actions >= -0.2).all() and (result.actions <= 0.4).all())
    assert float(result.actions[:, 0].mean()) > 0.39 and float(result.actions[:, 1].mean()) < -0.19


# --------------------------------------------------------------------------- config


def test_defaults_resolve_with_no_open_option() -> None:
    config = ICEMConfig()
    assert config.elites is None and config.elite_count == math.ceil(config.num_candidates / 10)
    resolved = make_planner("icem", LinearSystem.point(), horizon=5).config
    assert resolved.elites == config.elite_count and resolved.warm_iterations == config.warm_iterations
    assert resolved.resolve(latent_model=False, maximises_return=False) == resolved
    assert make_planner("icem", LinearSystem.point(), 5, num_candidates=8, elites=8).config.elites == 8
    assert (config.noise_beta, config.population_decay, config.keep_elites_fraction, config.momentum) == (
        2.0,
        1.25,
        0.3,
        0.1,
    )


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("elites", 0, "elites"),
        ("elites", 300, "elites"),
        ("num_candidates", 0, "num_candidates"),
        ("noise_beta", -1.0, "noise_beta"),
        ("noise_beta", float("nan"), "noise_beta"),
        ("population_decay", 0.9, "population_decay"),
        ("population_decay", float("inf"), "population_decay"),
        ("keep_elites_fraction", 1.5, "keep_elites_fraction"),
        ("keep_elites_fraction", -0.1, "keep_elites_fraction"),
        ("momentum", 1.0, "momentum"),
        ("action_noise", 0.0, "action_noise"),
        ("min_std", -0.1, "min_std"),
        ("iterations", 0, "iterations"),
    ],
)
def test_bad_options_raise_value_error_naming_them(option: str, value: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ICEMConfig(**{option: value})
    with pytest.raises(ValueError, match=match):
        make_planner("icem", LinearSystem.point(), horizon=5, **{option: value})


def test_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(TypeError, match="unknown option.*'beta'.*noise_beta"):
        make_planner("icem", LinearSystem.point(), horizon=5, beta=2.0)


def test_warm_init_batch_rows_are_used_per_problem() -> None:
    """A batch of warm starts: each row warm-starts its own problem (a perfect warm start is kept)."""
    model = LinearSystem.point(step_size=0.25)
    actions = torch.zeros(2, 8, 2)
    actions[0, :4, 0] = 1.0  # reaches (1, 0)
    actions[1, :4, 1] = 1.0  # reaches (0, 1)
    planner = make_planner("icem", model, 8, iterations=3, num_candidates=16, seed=0)
    result = planner.plan_batch([[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], init=PlanInit(actions=actions))
    assert (result.info["final_distance"] < 1e-5).all(), result.info["final_distance"]
