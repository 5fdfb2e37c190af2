"""Property-based input checks (hypothesis): whatever shapes, dtypes, bounds and NaN/inf a user passes,
a planner or GraspMPC either returns finite actions inside the bounds or raises a ValueError that
names the offending argument — never a NaN action, never a raw library error."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpc_grasp import GraspMPC, make_planner
from mpc_grasp.models.analytic import LinearSystem

PLANNER_NAMES = ("grasp", "cem", "icem", "mppi", "gd")
TINY = {
    "grasp": dict(iterations=2, num_candidates=2, sync_every=1),
    "cem": dict(iterations=2, num_candidates=8, elites=2),
    "icem": dict(iterations=2, num_candidates=8),
    "mppi": dict(iterations=2, num_candidates=8),
    "gd": dict(iterations=2, num_candidates=2),
}
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
MODEL = LinearSystem.point()  # state_dim 2, action_dim 2

special = st.sampled_from([np.nan, np.inf, -np.inf])
finite = st.floats(-10, 10, allow_nan=False, width=32)


@st.composite
def arrays(draw: st.DrawFn, valid_shape: tuple[int, ...]) -> np.ndarray:
    """Mostly arrays of ``valid_shape``; sometimes another shape, dtype, or a NaN/inf entry."""
    shape = draw(st.one_of(st.just(valid_shape), st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
    values = np.asarray(draw(st.lists(finite, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))).reshape(
        shape
    )
    values = values.astype(dtype)
    if values.size and values.dtype.kind == "f" and draw(st.booleans()):
        values.flat[draw(st.integers(0, values.size - 1))] = draw(special)
    return values


def _is_valid(value: np.ndarray, shape: tuple[int, ...]) -> bool:
    return value.shape == shape and bool(np.isfinite(value).all())


@SETTINGS
@given(name=st.sampled_from(PLANNER_NAMES), state=arrays((2,)), goal=arrays((2,)))
def test_plan_returns_finite_bounded_actions_or_names_the_bad_argument(
    name: str, state: np.ndarray, goal: np.ndarray
) -> None:
    planner = make_planner(name, MODEL, horizon=3, **TINY[name])
    if _is_valid(state, (2,)) and _is_valid(goal, (2,)):
        actions = planner.plan(state, goal).actions.numpy()
        assert actions.shape == (3, 2) and np.isfinite(actions).all() and (np.abs(actions) <= 1.0).all()
    else:
        bad = "state" if not _is_valid(state, (2,)) else "goal"
        with pytest.raises(ValueError, match=bad):
            planner.plan(state, goal)


@SETTINGS
@given(
    name=st.sampled_from(PLANNER_NAMES),
    rows=st.integers(1, 3),
    goal_rows=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_plan_batch_checks_rows_and_plans_each_problem(name: str, rows: int, goal_rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    planner = make_planner(name, MODEL, horizon=3, **TINY[name])
    states, goals = rng.normal(size=(rows, 2)), rng.normal(size=(goal_rows, 2))
    if rows != goal_rows:
        with pytest.raises(ValueError, match="goals has"):
            planner.plan_batch(states, goals)
        return
    actions = planner.plan_batch(states, goals).actions.numpy()
    assert actions.shape == (rows, 3, 2) and np.isfinite(actions).all() and (np.abs(actions) <= 1.0).all()


@SETTINGS
@given(
    name=st.sampled_from(PLANNER_NAMES),
    low=st.one_of(finite, st.lists(finite, min_size=0, max_size=3)),
    width=st.one_of(st.floats(-1, 3, allow_nan=False), special),
)
def test_bounds_are_respected_or_rejected_by_name(name: str, low, width: float) -> None:
    low = np.asarray(low, dtype=np.float64)
    high = low + width
    valid = low.ndim == 0 or low.shape == (1,) or low.shape == (2,)
    # the planner holds bounds in float32: a width below its resolution (1 + 1e-12) is an empty range there
    valid = valid and bool(np.isfinite(high).all()) and bool((high.astype(np.float32) > low.astype(np.float32)).all())
    if not valid:
        with pytest.raises(ValueError, match="action_low|action_high"):
            make_planner(name, MODEL, horizon=3, action_low=low, action_high=high, **TINY[name])
        return
    planner = make_planner(name, MODEL, horizon=3, action_low=low, action_high=high, **TINY[name])
    actions = planner.plan([0.0, 0.0], [1.0, -1.0]).actions.numpy()
    assert np.isfinite(actions).all()
    assert (actions >= np.broadcast_to(low, (2,)) - 1e-6).all() and (
        actions <= np.broadcast_to(high, (2,)) + 1e-6
    ).all()


@SETTINGS
@given(name=st.sampled_from(PLANNER_NAMES), observation=arrays((2,)))
def test_agent_acts_inside_the_action_space_or_names_the_observation(name: str, observation: np.ndarray) -> None:
    space = gym.spaces.Box(-0.5, 0.5, (2,), np.float32)
    agent = GraspMPC(MODEL, name, horizon=3, action_space=space, goal=[1.0, 1.0], **TINY[name])
    batched_ok = observation.ndim == 2 and observation.shape[1] == 2 and observation.shape[0] >= 1
    if (_is_valid(observation, (2,)) or batched_ok) and np.isfinite(observation).all():
        action, _ = agent.predict(observation)
        assert (
            action.shape == observation.shape and np.isfinite(action).all() and space.contains(action.reshape(-1, 2)[0])
        )
    else:
        with pytest.raises(ValueError, match="observation"):
            agent.predict(observation)
