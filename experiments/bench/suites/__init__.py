"""The suites run by the engine: planner gym (``problems``, ``gym``, ``tuning``, ``scale_out``), the real-env
benchmark (``real_env``, ``benchmark``, ``benchmark_report``), pixels (``pixel``, ``pixel_report``), studies
(``warm_start``, ``speed``, ``model_eval``) and the RL side (``rl``, ``mbrl``, ``agent_vs_rl``). Each is plain
functions over :class:`~bench.engine.WorkUnit` lists; ``experiments/`` holds one entry point per suite."""
