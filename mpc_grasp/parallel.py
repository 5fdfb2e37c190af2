"""Run independent tasks in-process or as Ray remote tasks: the one place the package scales out.

``run_tasks(function, tasks)`` calls ``function(task)`` for every task and returns the results in
task order. ``backend="local"`` (default) runs them one after another in this process;
``backend="ray"`` runs them as Ray remote tasks, on a local Ray started for the call or on an
existing cluster (``address="auto"`` or ``"ray://host:10001"``). Results are identical either way
as long as each task seeds itself from its own content (never from execution order) — the
experiment scripts are written that way.

Ray is an optional dependency (``pip install 'mpc-grasp[ray]'``); nothing here imports it unless
the Ray backend is asked for.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = [
    "BACKENDS",
    "ParallelOptions",
    "RAY_INSTALL_HINT",
    "add_parallel_arguments",
    "ray_session",
    "require_ray",
    "ship_by_value",
    "run_tasks",
]

BACKENDS = ("local", "ray")
RAY_INSTALL_HINT = "the Ray backend needs Ray: pip install 'mpc-grasp[ray]'"
_ADDRESS = re.compile(r"^(auto|local|ray://[\w.\-]+(:\d+)?|[\w.\-]+:\d+)$")

Task = TypeVar("Task")
Result = TypeVar("Result")


@dataclass(frozen=True)
class ParallelOptions:
    """Where ``run_tasks`` runs: the ``--backend / --address / --workers`` flags of the scripts."""

    backend: str = "local"
    """``"local"`` (in-process, sequential) or ``"ray"``."""
    address: str | None = None
    """Ray only: None starts a local Ray for the call; ``"auto"`` joins the running cluster; or
    ``"ray://host:port"`` / ``"host:port"``."""
    num_workers: int | None = None
    """Ray only: tasks in flight at once (and CPUs of a local Ray); None = all CPUs."""
    threads: int = 1
    """``torch.set_num_threads`` inside every Ray task (small tensors: 1 is fastest and fair)."""

    def __post_init__(self) -> None:
        check_backend(self.backend, self.address, self.num_workers)
        if int(self.threads) != self.threads or self.threads < 1:
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ParallelOptions:
        """Build from the flags added by :func:`add_parallel_arguments`."""
        return cls(
            backend=args.backend,
            address=args.address,
            num_workers=args.workers,
            threads=getattr(args, "threads", 1) or 1,
        )

    def run(self, function: Callable[[Task], Result], tasks: Sequence[Task], **kwargs: Any) -> list[Result]:
        """``run_tasks`` with these options."""
        return run_tasks(
            function,
            tasks,
            backend=self.backend,
            address=self.address,
            num_workers=self.num_workers,
            threads=self.threads,
            **kwargs,
        )


def add_parallel_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend {local,ray}``, ``--address`` and ``--workers`` to a script's parser."""
    group = parser.add_argument_group("scale-out (mpc_grasp.parallel)")
    group.add_argument(
        "--backend", choices=BACKENDS, default="local", help="run the independent tasks in-process or as Ray tasks"
    )
    group.add_argument(
        "--address", default=None, help="Ray cluster address ('auto' = the running cluster); default: start a local Ray"
    )
    group.add_argument(
        "--workers", type=int, default=None, help="Ray: tasks in flight (and CPUs of a local Ray); default: all CPUs"
    )


def check_backend(backend: str, address: str | None, num_workers: int | None) -> None:
    """Raise ``ValueError`` for an unknown backend, a malformed address or a bad worker count."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if address is not None:
        if backend != "ray":
            raise ValueError(f"address={address!r} only applies to backend='ray' (got backend={backend!r})")
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise ValueError(f"bad Ray address {address!r}: use 'auto', 'local', 'ray://host:port' or 'host:port'")
    if num_workers is not None and (
        isinstance(num_workers, bool) or int(num_workers) != num_workers or num_workers < 1
    ):
        raise ValueError(f"num_workers must be a positive integer or None, got {num_workers!r}")


def require_ray() -> Any:
    """Import and return ``ray``, or raise ``ImportError`` with the install command."""
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise ImportError(f"{RAY_INSTALL_HINT} ({error})") from None


@contextmanager
def ray_session(address: str | None = None, num_workers: int | None = None) -> Iterator[Any]:
    """Yield an initialised ``ray`` module; shut it down afterwards only if this call started it.

    An already initialised Ray (e.g. a test fixture or the caller's own ``ray.init``) is reused
    as is. ``address=None`` starts a local Ray with ``num_workers`` CPUs and no dashboard.
    """
    check_backend("ray", address, num_workers)
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING", "configure_logging": True}
    if address is None or address == "local":
        options["num_cpus"] = int(num_workers or os.cpu_count() or 1)
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address!r}" if options.get("address") else "a local Ray"
        raise RuntimeError(f"could not start or join {where}: {type(error).__name__}: {error}") from error
    try:
        yield ray
    finally:
        ray.shutdown()


def run_tasks(
    function: Callable[[Task], Result],
    tasks: Sequence[Task],
    backend: str = "local",
    address: str | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    *,
    threads: int = 1,
    desc: str = "tasks",
    on_result: Callable[[int, Result], None] | None = None,
) -> list[Result]:
    """``[function(task) for task in tasks]``, in-process or on Ray; results in task order.

    ``function`` and the tasks must be picklable for Ray (module-level functions; functions of a
    script run as ``__main__`` or loaded from a file are shipped by value). ``on_result(index,
    result)`` is called in this process as each result arrives (in completion order on Ray), e.g.
    to checkpoint. A task's exception is re-raised here with its original type.
    """
    check_backend(backend, address, num_workers)
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}")
    tasks = list(tasks)
    results: list[Any] = [None] * len(tasks)
    bar = tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress, dynamic_ncols=True)
    try:
        if backend == "local":
            for index, task in enumerate(tasks):
                results[index] = function(task)
                if on_result is not None:
                    on_result(index, results[index])
                bar.update(1)
        elif tasks:
            _run_on_ray(function, tasks, results, address, num_workers, threads, bar, on_result)
    finally:
        bar.close()
    return results


def _run_on_ray(
    function: Callable[[Any], Any],
    tasks: list[Any],
    results: list[Any],
    address: str | None,
    num_workers: int | None,
    threads: int,
    bar: Any,
    on_result: Callable[[int, Any], None] | None,
) -> None:
    """Submit at most ``num_workers`` tasks at a time (back-pressure), collect as they finish."""
    with ray_session(address, num_workers) as ray:
        ship_by_value(function, ray)
        remote = ray.remote(num_cpus=1, max_retries=0)(_call_in_worker)
        function_ref = ray.put(function)
        limit = int(num_workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        pending: dict[Any, int] = {}
        next_index = 0
        try:
            while next_index < len(tasks) or pending:
                while next_index < len(tasks) and len(pending) < limit:
                    pending[remote.remote(function_ref, tasks[next_index], threads)] = next_index
                    next_index += 1
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    index = pending.pop(ref)
                    try:
                        results[index] = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        raise error.as_instanceof_cause() from None
                    if on_result is not None:
                        on_result(index, results[index])
                    bar.update(1)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


def _call_in_worker(function: Callable[[Any], Any], task: Any, threads: int) -> Any:
    """Body of every Ray task: pin torch's thread count (workers share the machine), then call."""
    import torch

    torch.set_num_threads(threads)
    return function(task)


def ship_by_value(function: Any, ray: Any) -> None:
    """Make Ray pickle ``function`` (any object with a ``__module__``) by value when its module is neither this
    package nor an installed distribution (an experiment script or harness loaded from a checkout, a test
    module): Ray workers could not import it by name. The module's whole top-level package is registered, so
    the helpers it calls from sibling modules travel with it."""
    module_name = getattr(function, "__module__", None)
    if not module_name or module_name == "__main__" or module_name.split(".")[0] == "mpc_grasp":
        return  # cloudpickle ships __main__ by value already; the package is importable everywhere
    top = sys.modules.get(module_name.split(".")[0])
    module = sys.modules.get(module_name)
    origin = getattr(module, "__file__", None)
    if top is None or module is None or origin is None:
        return
    path = Path(origin).resolve()
    installed = {"site-packages", "dist-packages"} & set(path.parts) or Path(sys.base_prefix).resolve() in path.parents
    if installed:
        return
    ray.cloudpickle.register_pickle_by_value(top)  # Ray serialises with its own cloudpickle; covers submodules
