"""Benchmarks: the work-unit engine (``engine``, ``parallel``), the report writer (``report``) and the
suites (planner gym problems, the real-env benchmark, ...). Nothing is imported here, so that
``mpc_grasp.data`` can use ``mpc_grasp.parallel`` without import cycles."""
