"""GraspMPC in closed loop with a learned MLP world model vs the RL baselines, at equal env-step budgets.

The suite is :mod:`bench.suites.agent_vs_rl` (envs ``wall_across``, ``wall_random``, ``cartpole``; agent
settings per env, ``--set [ENV:]KEY=VALUE`` for planner options); writes ``results/agent_vs_rl.{json,md}``.

    python experiments/closed_loop.py                      # full (tens of minutes to hours on 2 CPUs)
    python experiments/closed_loop.py --quick              # smoke run -> agent_vs_rl_quick.*
    python experiments/closed_loop.py --envs cartpole --set cartpole:num_candidates=8 --resume
"""

from bench.suites.agent_vs_rl import main

if __name__ == "__main__":
    raise SystemExit(main())
