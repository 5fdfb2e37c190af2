"""The benchmark: GRASP vs CEM vs MPPI vs GD, GRASP ablations and RL rows across horizons,
executed in the real environments. The logic lives in :mod:`bench.suites.benchmark`.

    python experiments/benchmark.py --quick                                  # ~2-3 min smoke run
    python experiments/benchmark.py                                          # full: 50 pairs, all envs, both modes
    python experiments/benchmark.py --envs wall maze --model learned analytic --horizons 50 80 --modes open_loop --resume
    python experiments/benchmark.py --configs my_options.json                # per-planner options: {"grasp": {...}, "cem": {...}}

Writes results/benchmark.{json,csv,md}, results/benchmark_success_vs_horizon.png and
results/benchmark_success_vs_time.png (``--quick``: prefix benchmark_quick).
"""

from __future__ import annotations

from bench.suites.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
