"""Improved cross-entropy method, iCEM (Pinneri et al. 2020, "Sample-efficient cross-entropy method for
real-time planning"): CEM with temporally coloured sampling noise, a decaying population, elites kept from
one iteration to the next, the mean scored in the last iteration, and the previous plan shifted in as an
elite of the next MPC step (through the warm start, ``problem.init``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from typing import Self

import torch
from torch import Tensor

from mpc_grasp.planners.base import Candidates, PlannerConfig, Problem
from mpc_grasp.planners.cem import EliteSamplingPlanner
from mpc_grasp.validation import check_positive


@dataclass(frozen=True)
class ICEMConfig(PlannerConfig):
    """iCEM's options; the defaults are the paper's where it gives one (β = 2, population decay γ = 1.25,
    kept-elite fraction ξ = 0.3, momentum α = 0.1, initial std 0.5 half action ranges, about 10% elites).

    Default budget (a contract): a cold plan runs 40 iterations and a warm one 6, each starting from 256
    samples that decay to 52 (2 K), i.e. 3045 scored sequences cold and 988 warm against CEM's defaults' 7680
    and 1280, in 4/3 and 6/5 of CEM's 30 and 5 iterations. A plan's wall time is therefore comparable to a
    :class:`~mpc_grasp.planners.cem.CEMConfig` plan's at the same horizon: somewhat less where the samples
    dominate (a large world model on a CPU), somewhat more where the sequential model calls do (a small model,
    a GPU). See docs/decisions.md#icemconfig-budget.
    """

    iterations: int = 40
    warm_iterations: int | None = 6
    num_candidates: int = 256
    """Population of the first iteration (N); iteration i samples ``max(ceil(N / γ^i), 2 K)`` fresh
    sequences (at most N), plus the kept elites and, in the last iteration, the mean."""
    elites: int | None = None
    """K: the best samples the Gaussian is refit to; None = 10% of ``num_candidates`` (rounded up)."""
    action_noise: float = 0.5
    """Initial sampling std in units of the half action range (re-initialised every plan, warm or cold)."""
    min_std: float = 0.05
    """Floor on the sampling std, in half action ranges (keeps a long cold budget searching)."""
    momentum: float = 0.1
    """α: fraction of the previous mean/std kept at each refit."""
    noise_beta: float = 2.0
    """β: the sampling noise has power spectrum ∝ 1/f^β along the horizon (0 = white noise as in CEM; larger
    = smoother, lower-frequency action sequences)."""
    population_decay: float = 1.25
    """γ >= 1: the fresh population shrinks by this factor per iteration (1 = constant)."""
    keep_elites_fraction: float = 0.3
    """ξ in [0, 1]: the best ``ceil(ξ K)`` elites of an iteration join the next iteration's population
    (scored once: the objective is deterministic)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1, got {self.num_candidates}")
        if self.elites is not None and not 1 <= self.elites <= self.num_candidates:
            raise ValueError(
                f"need 1 <= elites <= num_candidates, got elites={self.elites}, num_candidates={self.num_candidates}"
            )
        check_positive(self.action_noise, "action_noise")
        check_positive(self.min_std, "min_std", allow_zero=True)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        check_positive(self.noise_beta, "noise_beta", allow_zero=True)
        if not (math.isfinite(self.population_decay) and self.population_decay >= 1.0):
            raise ValueError(f"population_decay must be a finite number >= 1, got {self.population_decay!r}")
        if not 0.0 <= self.keep_elites_fraction <= 1.0:
            raise ValueError(f"keep_elites_fraction must be in [0, 1], got {self.keep_elites_fraction!r}")

    def resolve(self, *, latent_model: bool, maximises_return: bool) -> Self:
        """The shared defaults resolved, and ``elites`` None set to :attr:`elite_count`."""
        config = super().resolve(latent_model=latent_model, maximises_return=maximises_return)
        return dataclasses.replace(config, elites=self.elite_count)

    @property
    def elite_count(self) -> int:
        """K: ``elites``, or 10% of ``num_candidates`` rounded up when None."""
        return self.elites if self.elites is not None else math.ceil(self.num_candidates / 10)

    def population(self, iteration: int) -> int:
        """Fresh samples drawn in iteration ``iteration`` (0-based): ``N / γ^i`` rounded up, floored at twice the
        elites, capped at N."""
        decayed = math.ceil(self.num_candidates * self.population_decay ** (-iteration) - 1e-9)
        return min(self.num_candidates, max(decayed, 2 * self.elite_count))

    @property
    def kept_elites(self) -> int:
        """Elites carried into the next iteration: ``ceil(ξ · K)``."""
        return math.ceil(self.keep_elites_fraction * self.elite_count - 1e-9)


def coloured_noise_from_white(white: Tensor, beta: float, horizon: int) -> Tensor:
    """Gaussian noise [..., horizon] with power spectrum ∝ 1/f^β along the last axis, built by inverse FFT from
    standard normal ``white`` [..., 2, horizon // 2 + 1] (the real and imaginary parts of its Fourier
    coefficients). Stationary, zero mean and unit variance at every step (exactly, in expectation); β = 0 gives
    white noise. The lowest frequency's scale is used for f = 0 (the mean of the sequence). Like every FFT
    construction (and iCEM's reference implementation) the noise is periodic over the horizon: for β > 0 the last
    steps are correlated with the first ones."""
    bins = horizon // 2 + 1
    if white.shape[-2:] != (2, bins):
        raise ValueError(f"white must end in shape (2, {bins}) for horizon {horizon}, got {tuple(white.shape)}")
    frequencies = torch.fft.rfftfreq(horizon, device=white.device, dtype=white.dtype)
    frequencies[0] = 1.0 / horizon  # f = 0 gets the lowest frequency's power
    scale = frequencies ** (-beta / 2)
    real, imaginary = white[..., 0, :] * scale, white[..., 1, :] * scale
    # f = 0 and (even horizon) the Nyquist frequency are real: their real part carries the power of both parts
    real_only = torch.zeros(bins, dtype=torch.bool, device=white.device)
    real_only[0] = True
    if horizon % 2 == 0:
        real_only[-1] = True
    real = torch.where(real_only, real * math.sqrt(2.0), real)
    imaginary = torch.where(real_only, torch.zeros_like(imaginary), imaginary)
    noise = torch.fft.irfft(torch.complex(real, imaginary), n=horizon, dim=-1)
    # Var(noise_t) = (2 Σ_{real-only} s² + 4 Σ_{others} s²) / horizon², the same at every t
    power = scale.square()
    variance = (torch.where(real_only, 2 * power, 4 * power).sum() / horizon**2).clamp_min(1e-30)
    return noise / variance.sqrt()


def coloured_noise(
    shape: tuple[int, ...], beta: float, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
) -> Tensor:
    """Coloured Gaussian noise of ``shape`` (time along the last axis) with power spectrum ∝ 1/f^β and unit
    variance per step (see :func:`coloured_noise_from_white`)."""
    *lead, horizon = (int(size) for size in shape)
    white = torch.randn((*lead, 2, horizon // 2 + 1), generator=generator, device=device)
    return coloured_noise_from_white(white, beta, horizon)


class ICEMPlanner(EliteSamplingPlanner):
    """Sample with coloured noise, score by model rollout, refit mean/std (with momentum) to the elites, keep a
    fraction of them for the next iteration; return the best of the best sample seen and the final mean."""

    name = "icem"
    config_class = ICEMConfig
    config: ICEMConfig

    def _noise(self, count: int) -> Tensor:
        """[N, count, T, A] coloured noise, row i from problem i's generator (independent of the batch)."""
        white = self.randn((count, self.action_dim, 2, self.horizon // 2 + 1))
        noise = coloured_noise_from_white(white, self.config.noise_beta, self.horizon)  # [N, count, A, T]
        return noise.transpose(-1, -2)

    def _optimize(self, problem: Problem) -> Candidates:
        config = self.config
        budget = self.iteration_budget(problem)
        half_range = (self.action_high - self.action_low) / 2
        mean = self.initial_actions(problem, 1)[:, 0]  # [N, T, A]: the shifted previous plan when warm
        std = (config.action_noise * half_range).expand_as(mean).clone()
        min_std = config.min_std * half_range
        size, horizon, action_dim = problem.size, self.horizon, self.action_dim
        best_actions = mean[:, None].clone()
        best_cost = torch.full((size, 1), float("inf"), device=self.device)
        kept_actions = mean.new_zeros((size, 0, horizon, action_dim))
        kept_costs = mean.new_zeros((size, 0))
        history = {
            name: torch.zeros(budget, device=self.device) for name in ("loss", "elite_cost", "mean_std", "population")
        }
        iteration, early_stopped = 0, False
        with torch.no_grad():
            for iteration in range(budget):
                fresh = [self.clamp_actions(mean[:, None] + std[:, None] * self._noise(config.population(iteration)))]
                # the mean is scored in the last iteration and, warm, in the first: there it is the previous
                # plan shifted, the elite carried across MPC steps
                if iteration == budget - 1 or (iteration == 0 and problem.init is not None):
                    fresh.append(self.clamp_actions(mean)[:, None])
                samples = torch.cat(fresh, dim=1)
                costs = self.trajectory_cost(self.rollout(problem.start, samples), samples, problem.goal)
                costs = torch.nan_to_num(costs, nan=float("inf"))
                samples = torch.cat([samples, kept_actions], dim=1)  # kept elites: scored in an earlier iteration
                costs = torch.cat([costs, kept_costs], dim=1)
                elite_costs, elite_index = costs.topk(config.elite_count, dim=1, largest=False)  # sorted, best first
                elites = samples.gather(1, elite_index[..., None, None].expand(-1, -1, horizon, action_dim))
                kept_actions, kept_costs = elites[:, : config.kept_elites], elite_costs[:, : config.kept_elites]
                improved = elite_costs[:, :1] < best_cost
                best_cost = torch.where(improved, elite_costs[:, :1], best_cost)
                best_actions = torch.where(improved[..., None, None], elites[:, :1], best_actions)
                mean = config.momentum * mean + (1 - config.momentum) * elites.mean(1)
                elite_std = elites.std(1, unbiased=False)
                std = torch.maximum(config.momentum * std + (1 - config.momentum) * elite_std, min_std)
                finite = torch.where(torch.isfinite(costs), costs, torch.zeros_like(costs))
                history["loss"][iteration] = finite.mean()
                history["elite_cost"][iteration] = elite_costs.mean()
                history["mean_std"][iteration] = std.mean()
                history["population"][iteration] = samples.shape[1]
                if self.callback is not None:
                    self.callback(iteration, None, mean)
                if self.should_stop(iteration, problem, best_actions, partial(self._frozen, best_actions, mean)):
                    early_stopped = True
                    break
        return self._finish(best_actions, mean, history, iteration + 1, early_stopped)
