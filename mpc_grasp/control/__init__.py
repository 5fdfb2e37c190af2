"""Acting in environments: the receding-horizon agent (``agent``), the episode loop (``episodes``) and
pictures of episodes and plans (``media``)."""

from mpc_grasp.control.agent import GraspMPC

__all__ = ["GraspMPC"]
