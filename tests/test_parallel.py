"""mpc_grasp.parallel: in-process and Ray task execution, the planner gym on Ray and Ray collection.

Ray tests share one local Ray (2 CPUs, no dashboard) started once for the module; they are
skipped with a reason when Ray is not installed (``pip install 'mpc-grasp[ray]'``).
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from bench.suites.gym import GymSuite, run_gym

from mpc_grasp.data import collect_transitions_parallel, shard_seeds
from mpc_grasp.parallel import ParallelOptions, run_tasks

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'mpc-grasp[ray]')")
WALL = "mpc_grasp/GridWorldWall-v0"


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("task 3 failed")
    return x


# ----------------------------------------------------------------------------- local backend


def test_local_run_tasks_keeps_order_reports_progress_and_results(capsys) -> None:
    seen = []
    results = run_tasks(
        square, [3, 1, 2, 5], on_result=lambda index, value: seen.append((index, value)), desc="squares"
    )
    assert results == [9, 1, 4, 25]
    assert seen == [(0, 9), (1, 1), (2, 4), (3, 25)]
    assert "squares" in capsys.readouterr().err and run_tasks(square, [], progress=False) == []


def test_bad_backend_address_and_workers_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown backend 'dask'"):
        run_tasks(square, [1], backend="dask")
    with pytest.raises(ValueError, match="bad Ray address"):
        run_tasks(square, [1], backend="ray", address="not an address!")
    with pytest.raises(ValueError, match="only applies to backend='ray'"):
        run_tasks(square, [1], address="auto")
    with pytest.raises(ValueError, match="num_workers"):
        ParallelOptions(backend="ray", num_workers=0)
    with pytest.raises(TypeError, match="callable"):
        run_tasks(42, [1])


def test_missing_ray_gives_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'mpc-grasp\[ray\]'"):
        run_tasks(square, [1, 2], backend="ray", progress=False)


def test_parallel_collection_is_valid_sized_and_deterministic() -> None:
    a = collect_transitions_parallel(WALL, 150, shards=3, seed=4, num_envs=2, progress=False)
    b = collect_transitions_parallel(WALL, 150, shards=3, seed=4, num_envs=2, progress=False)
    c = collect_transitions_parallel(WALL, 150, shards=3, seed=5, num_envs=2, progress=False)
    assert len(a) == 150 and a.metadata["shards"] == 3 and a.metadata["shard_steps"] == [50, 50, 50]
    assert a.metadata["shard_seeds"] == shard_seeds(4, 3) and len(set(a.metadata["shard_seeds"])) == 3
    assert a.metadata["n_steps"] == 150 and a.metadata["env_id"] == WALL
    for name in ("observations", "actions", "next_observations", "episode_ids", "step_ids"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.actions, c.actions)
    # episodes of different shards never merge; transitions chain inside each episode
    for trajectory in a.trajectories():
        np.testing.assert_allclose(trajectory.observations[1:], trajectory.next_observations[:-1])
    assert a.num_episodes >= 3 * 2
    with pytest.raises(ValueError, match="shards"):
        collect_transitions_parallel(WALL, 10, shards=0)
    with pytest.raises(ValueError, match="unknown Gymnasium env id"):
        collect_transitions_parallel("mpc_grasp/NoSuchEnv-v0", 10, shards=2)


# ----------------------------------------------------------------------------- Ray backend


@pytest.fixture(scope="module")
def ray_cluster():
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'mpc-grasp[ray]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@needs_ray
def test_ray_run_tasks_keeps_order_and_reraises_task_errors(ray_cluster) -> None:
    seen = []
    assert run_tasks(
        square, list(range(7)), backend="ray", num_workers=2, progress=False, on_result=lambda i, v: seen.append(i)
    ) == [i * i for i in range(7)]
    assert sorted(seen) == list(range(7))
    with pytest.raises(ValueError, match="task 3 failed"):
        run_tasks(fail_on_three, [1, 2, 3, 4], backend="ray", num_workers=2, progress=False)


TIMING_KEYS = {"median_time_s"}


def _without_timings(rows):
    return [{key: value for key, value in row.items() if key not in TIMING_KEYS} for row in rows]


@needs_ray
def test_ray_planner_gym_matches_the_in_process_run(ray_cluster, tmp_path) -> None:
    """Was ``test_ray_planner_bench_matches_the_in_process_run`` (the planner bench became the gym suite)."""
    suite = GymSuite(("double_integrator_2d", "mountain_car"), ("grasp", "cem", "mppi"), instances=2, time_cap=None)
    local = run_gym(suite, tmp_path / "local", command="local", progress=False)
    remote = run_gym(
        suite, tmp_path / "ray", command="ray", parallel=ParallelOptions("ray", num_workers=2), progress=False
    )
    assert remote["backend"] == "ray" and len(remote["rows"]) == 2 * 3 and remote["units_reused_from_log"] == 0
    on_disk = json.loads((tmp_path / "ray" / "planner_gym.json").read_text())
    assert _without_timings(on_disk["rows"]) == _without_timings(json.loads(json.dumps(local["rows"])))
    assert on_disk["settings"] == json.loads(json.dumps(local["settings"]))


@needs_ray
def test_ray_collection_equals_the_in_process_collection(ray_cluster) -> None:
    local = collect_transitions_parallel(WALL, 120, shards=3, seed=2, num_envs=2, progress=False)
    remote = collect_transitions_parallel(
        WALL, 120, shards=3, seed=2, num_envs=2, progress=False, backend="ray", num_workers=2
    )
    assert len(remote) == 120 and remote.metadata["collection_backend"] == "ray"
    for name in (
        "observations",
        "actions",
        "next_observations",
        "terminated",
        "truncated",
        "rewards",
        "episode_ids",
        "step_ids",
    ):
        np.testing.assert_array_equal(getattr(local, name), getattr(remote, name), err_msg=name)
