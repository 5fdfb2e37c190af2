"""Model-predictive path integral control (Williams et al.): exponentially weighted sample averaging."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mpc_grasp.planners.base import Candidates, Planner, PlannerConfig, Problem, path_integral_weights
from mpc_grasp.validation import check_positive


@dataclass(frozen=True)
class MPPIConfig(PlannerConfig):
    """Perturb the nominal action sequence, weight samples by exp(−cost / temperature), average."""

    iterations: int = 30
    warm_iterations: int | None = 5
    num_candidates: int = 256
    """K sampled action sequences per iteration."""
    temperature: float = 0.1
    """λ, applied to costs normalised by their per-problem spread (so it is scale-free)."""
    action_noise: float = 0.5
    """Sampling std in units of the half action range."""
    normalize_costs: bool = True
    """Divide (cost − min) by the cost std before weighting (robust across cost scales)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_candidates < 2:
            raise ValueError(f"num_candidates must be >= 2, got {self.num_candidates}")
        check_positive(self.temperature, "temperature")
        check_positive(self.action_noise, "action_noise")


class MPPIPlanner(Planner):
    """Iterated MPPI update of a nominal plan (one iteration = classic per-step MPPI)."""

    name = "mppi"
    config_class = MPPIConfig
    config: MPPIConfig

    def _optimize(self, problem: Problem) -> Candidates:
        config = self.config
        budget = self.iteration_budget(problem)
        std = config.action_noise * (self.action_high - self.action_low) / 2
        nominal = self.initial_actions(problem, 1)[:, 0]  # [N, T, A]
        shape = (problem.size, config.num_candidates, self.horizon, self.action_dim)
        history = {name: torch.zeros(budget, device=self.device) for name in ("loss", "min_cost", "effective_samples")}
        iteration, early_stopped = 0, False
        with torch.no_grad():
            for iteration in range(budget):
                noise = self.randn(shape[1:]) * std  # per-problem generators: independent of the batch
                noise[:, 0] = 0.0  # keep the nominal plan in the population
                samples = self.clamp_actions(nominal[:, None] + noise)
                costs = self.trajectory_cost(self.rollout(problem.start, samples), samples, problem.goal)
                costs = torch.nan_to_num(costs, nan=float("inf"), posinf=float("inf"))
                weights = path_integral_weights(costs, config.temperature, config.normalize_costs)  # [N, K]
                nominal = self.clamp_actions((weights[..., None, None] * samples).sum(1))
                history["loss"][iteration] = torch.where(torch.isfinite(costs), costs, torch.zeros_like(costs)).mean()
                history["min_cost"][iteration] = costs.min(dim=1).values.mean()
                history["effective_samples"][iteration] = (1.0 / (weights**2).sum(1)).mean()
                if self.callback is not None:
                    self.callback(iteration, None, nominal)
                if self.should_stop(iteration, problem, nominal[:, None]):
                    early_stopped = True
                    break
        iterations = iteration + 1
        return Candidates(
            actions=nominal[:, None],
            history={name: values[:iterations] for name, values in history.items()},
            iterations=iterations,
            early_stopped=early_stopped,
        )
