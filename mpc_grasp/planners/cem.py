"""Cross-entropy method over action sequences (the sampling baseline of DINO-WM / PETS)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from mpc_grasp.planners.base import Candidates, Planner, PlannerConfig, Problem
from mpc_grasp.validation import check_positive


@dataclass(frozen=True)
class CEMConfig(PlannerConfig):
    """Gaussian over action sequences, refit to the elites of each population."""

    iterations: int = 30
    warm_iterations: int | None = 5
    num_candidates: int = 256
    """Population: sampled action sequences per iteration."""
    elites: int = 32
    action_noise: float = 1.0
    """Initial sampling std in units of the half action range."""
    min_std: float = 0.05
    momentum: float = 0.1
    """Fraction of the previous mean/std kept at each refit (0 = plain CEM)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.elites <= self.num_candidates:
            raise ValueError(
                f"need 1 <= elites <= num_candidates, got elites={self.elites}, num_candidates={self.num_candidates}"
            )
        check_positive(self.action_noise, "action_noise")
        check_positive(self.min_std, "min_std", allow_zero=True)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


class EliteSamplingPlanner(Planner):
    """What CEM and iCEM share: their candidates are the best sample seen and the final mean of the sampling
    distribution (selection keeps the cheaper), for every problem of a batch and for one frozen by the early stop."""

    def _finish(
        self,
        best_actions: torch.Tensor,
        mean: torch.Tensor,
        history: dict[str, torch.Tensor],
        iterations: int,
        early_stopped: bool,
    ) -> Candidates:
        """The candidates (:meth:`_candidates`) and the first ``iterations`` entries of each ``history`` series."""
        series = {name: values[:iterations] for name, values in history.items()}
        return Candidates(self._candidates(best_actions, mean), None, series, iterations, early_stopped)

    def _frozen(self, best_actions: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The candidates of a problem frozen by the early stop (no virtual states)."""
        return self._candidates(best_actions, mean), None

    def _candidates(self, best_actions: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """[N, 2, T, A]: the best sample seen and the final mean (selection picks the cheaper)."""
        return torch.cat([best_actions, self.clamp_actions(mean)[:, None]], dim=1)


class CEMPlanner(EliteSamplingPlanner):
    """Sample, score by model rollout, refit mean/std to the elites; return the best of mean and samples."""

    name = "cem"
    config_class = CEMConfig
    config: CEMConfig

    def _optimize(self, problem: Problem) -> Candidates:
        config = self.config
        budget = self.iteration_budget(problem)
        half_range = (self.action_high - self.action_low) / 2
        mean = self.initial_actions(problem, 1)[:, 0]  # [N, T, A]
        std = (config.action_noise * half_range).expand_as(mean).clone()
        size, shape = problem.size, (problem.size, config.num_candidates, self.horizon, self.action_dim)
        best_actions = mean[:, None].clone()
        best_cost = torch.full((size, 1), float("inf"), device=self.device)
        history = {name: torch.zeros(budget, device=self.device) for name in ("loss", "elite_cost", "mean_std")}
        iteration, early_stopped = 0, False
        with torch.no_grad():
            for iteration in range(budget):
                noise = self.randn(shape[1:])  # per-problem generators: independent of the batch
                samples = self.clamp_actions(mean[:, None] + std[:, None] * noise)
                samples[:, 0] = mean  # always score the current mean
                costs = self.trajectory_cost(self.rollout(problem.start, samples), samples, problem.goal)
                costs = torch.nan_to_num(costs, nan=float("inf"))
                elite_costs, elite_index = costs.topk(config.elites, dim=1, largest=False)
                elites = samples.gather(1, elite_index[..., None, None].expand(-1, -1, self.horizon, self.action_dim))
                improved = elite_costs[:, :1] < best_cost
                best_cost = torch.where(improved, elite_costs[:, :1], best_cost)
                best_actions = torch.where(improved[..., None, None], elites[:, :1], best_actions)
                mean = config.momentum * mean + (1 - config.momentum) * elites.mean(1)
                std = (config.momentum * std + (1 - config.momentum) * elites.std(1)).clamp_min(config.min_std)
                history["loss"][iteration] = costs.mean()
                history["elite_cost"][iteration] = elite_costs.mean()
                history["mean_std"][iteration] = std.mean()
                if self.callback is not None:
                    self.callback(iteration, None, mean)
                if self.should_stop(iteration, problem, best_actions, partial(self._frozen, best_actions, mean)):
                    early_stopped = True
                    break
        return self._finish(best_actions, mean, history, iteration + 1, early_stopped)
