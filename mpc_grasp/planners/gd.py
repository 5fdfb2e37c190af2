"""Gradient descent through the full rollout ("shooting"): the classic gradient-based baseline."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mpc_grasp.planners.base import Candidates, Planner, PlannerConfig, Problem
from mpc_grasp.planners.optim import PlanOptimizer
from mpc_grasp.validation import check_positive


@dataclass(frozen=True)
class GDConfig(PlannerConfig):
    """Adam on B candidate action sequences, backpropagating the rollout cost through T model calls."""

    iterations: int = 300
    warm_iterations: int | None = 30
    num_candidates: int = 16
    lr_actions: float = 0.05
    """Adam learning rate of the actions."""
    action_noise: float = 0.3
    """Std of the Gaussian initial actions of candidates 2..B, in units of the half action range
    (candidate 1 starts at zero / the warm start)."""
    max_grad_norm: float | None = None
    """Optional per-candidate gradient-norm clip; None is plain GD shooting."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1, got {self.num_candidates}")
        check_positive(self.lr_actions, "lr_actions")
        check_positive(self.action_noise, "action_noise", allow_zero=True)


class GDPlanner(Planner):
    """Shooting: minimise the rollout cost w.r.t. the actions only."""

    name = "gd"
    config_class = GDConfig
    config: GDConfig

    def _optimize(self, problem: Problem) -> Candidates:
        config = self.config
        budget = self.iteration_budget(problem)
        actions = self.initial_actions(problem, config.num_candidates, config.action_noise).requires_grad_(True)
        optimizer = PlanOptimizer([(actions, config.lr_actions)])
        history = {name: torch.zeros(budget, device=self.device) for name in ("loss", "action_grad_norm")}
        iteration, early_stopped = 0, False
        for iteration in range(budget):
            optimizer.zero_grad()
            states = self.rollout(problem.start, actions)
            cost = self.trajectory_cost(states, actions, problem.goal)
            cost.sum().backward()
            assert actions.grad is not None
            with torch.no_grad():
                grad_norm = actions.grad.flatten(2).norm(dim=-1)
                if config.max_grad_norm is not None:
                    actions.grad.mul_(
                        (config.max_grad_norm / grad_norm.clamp_min(config.max_grad_norm))[..., None, None]
                    )
                history["loss"][iteration] = cost.mean()
                history["action_grad_norm"][iteration] = grad_norm.mean()
            optimizer.step()
            with torch.no_grad():
                actions.copy_(self.clamp_actions(actions))
            if self.callback is not None:
                self.callback(iteration, None, actions.detach())
            if self.should_stop(iteration, problem, actions.detach()):
                early_stopped = True
                break
        iterations = iteration + 1
        return Candidates(
            actions=actions.detach(),
            history={name: values[:iterations] for name, values in history.items()},
            iterations=iterations,
            early_stopped=early_stopped,
        )
