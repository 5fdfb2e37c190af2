"""GRASP: Gradient RelAxed Stochastic Planner (Psenka et al., 2026).

Read top to bottom, one iteration is:

1. lifted loss — the T model calls F(s_t, a_t) for t = 0..T-1 are ONE batched call on [N·B·T]
   rows, and
       L = Σ_t ‖(F(s_t, a_t) − s_{t+1}) / c‖²  +  γ Σ_t ‖F(s_t, a_t) − g‖²_w      (s_0 fixed, s_T := g),
   with c the state scale (every state-side option acts in its units: the virtual states are optimised as
   s / c) and w the objective's goal weights (default 1 / c²); s_T := g only in the dimensions w weighs (a
   dimension the goal ignores, e.g. a history model's older frames, ends free);
   with ``detach_states`` the model's state input is s̄ = stop-gradient(s) (the paper's *gradient
   reshaping*);
2. Adam step on actions (then clip to bounds) and on virtual states s_1..s_{T-1};
3. fresh Gaussian noise σ_k ξ on every virtual state (stochastic state iterates, annealed);
4. every ``sync_every`` iterations a sync re-grounds the plan in true model rollouts: a sampling
   step (one MPPI update per candidate from coloured-noise perturbations) and/or a few GD steps on the
   shooting loss, then the virtual states are reset to the rollout;
5. every ``check_every`` iterations, stop early if a rollout already reaches the goal.

With the stop-gradient and the dense goal term the fixed point of L is the one-step-greedy rollout, so
the defaults resolve by model kind: state-space models get full state gradients and no dense term (the
terminal constraint s_T = g then reaches every virtual state, as in direct collocation), latent models
keep the paper's stop-gradient and γ = 1; both use the sampling sync, which carries the non-greedy
information a local gradient cannot see. With a reward objective (``reward_fn`` / ``terminal_value``;
nothing anchors the end of the lifted chain) the task term games the free virtual states and the lifted
action steps are one-step greedy, so by default steps 1-3 are skipped there and every iteration is a
sampling sync (``lifted_updates``) whose samples include a line search along the rollout return's gradient
(``sync_gradient_steps``, one sync in ``sync_gradient_every``). Each mechanism has a flag, so the ablations
(no detach / no noise / no goal term / no sync / no lifted steps) run through this same code. Why each default: see
docs/decisions.md#grasp.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self, cast

import torch
from torch import Tensor

from mpc_grasp.planners.base import Candidates, Planner, PlannerConfig, Problem, path_integral_weights
from mpc_grasp.planners.icem import coloured_noise_from_white
from mpc_grasp.planners.optim import PlanOptimizer
from mpc_grasp.validation import check_positive


@dataclass(frozen=True)
class GraspConfig(PlannerConfig):
    """GRASP options. A default of None resolves per model kind or objective (the field says how; the
    resolved values are attributes of :class:`GraspPlanner`); the published planner's settings are
    :meth:`paper`. See docs/decisions.md#graspconfig-defaults."""

    iterations: int = 60
    warm_iterations: int | None = None
    """Iterations of a warm-started plan, each ending on a sync. None resolves by objective: 4 with the lifted
    steps (goal objectives), 1 where the syncs are the whole optimisation (reward objectives: one sampling
    update per candidate per control step). See docs/decisions.md#graspconfigwarm_iterations."""
    first_plan_iterations: int | None = 20
    """Iterations of an MPC episode's first plan (``GraspMPC`` replanning every step: warm plans of
    ``warm_iterations`` follow it, each ending on a sampling sync), at most ``iterations``; None =
    ``iterations``. Why fewer than a cold plan: the first plan gives one action, then warm plans refine it.
    See docs/decisions.md#graspconfigfirst_plan_iterations."""
    num_candidates: int = 16
    """B candidate plans optimised in parallel; the best by model rollout is returned."""
    warm_num_candidates: int | None = None
    """Candidates of a warm-started plan; None (default) keeps ``num_candidates``. Half of them start from
    the shifted previous plan, and the sampling sync around each is what finds the way around a wall or holds
    a swing-up: fewer rows make the control step cheaper but fail more. See
    docs/decisions.md#graspconfigwarm_num_candidates."""
    lr_states: float = 0.1
    """Adam learning rate of the virtual states, in units of the state scale (``Planner.state_scale``: the
    iterates are s / scale, so the step holds in any units)."""
    lr_actions: float = 0.05
    """Adam learning rate of the actions (the authors' 0.005 suits 750+ iterations)."""
    action_grad_scale: float = 1.0
    """Emphasis factor on the action gradient (only matters with ``optimizer='sgd'``: Adam is scale-invariant)."""
    lifted_goal_weight: float | None = None
    """γ, weight of the dense goal term Σ_t ‖F(s_t, a_t) − g‖² in the lifted loss (the objective's
    ``dense_goal_weight`` scores rollouts and is added to it as ``dense_goal_weight / T``); 0 is the
    'no goal term' ablation. None (default): 1.0 with the stop-gradient (the paper: the detached loss
    needs it), 0.0 with full state gradients (the terminal constraint s_T = g then reaches every virtual
    state, and γ > 0 only makes plans greedy). See docs/decisions.md#graspconfigdetach_states."""
    detach_states: bool | None = None
    """Stop-gradient on the model's state input (the paper's gradient reshaping). None (default):
    on for models that plan in a learned latent space (``model.plans_in_latent_space``, e.g. pixel
    models, where state-input gradients are adversarially brittle), off for state-space models
    (their full Jacobian is what lets the lifted loss plan non-greedily: swing-up, braking). See
    docs/decisions.md#graspconfigdetach_states."""
    noise_scale: float = 0.05
    """σ_0 of the Gaussian noise added to the virtual states each iteration, in units of the state scale."""
    noise_schedule: str = "linear"
    """'constant' or 'linear' (σ decays linearly to 0 over ``noise_decay_iterations``)."""
    noise_decay_iterations: int | None = None
    """Length of the linear decay; None means the first half of the run (the second half then
    converges without noise: exploration early, precision at the end)."""
    init_state_noise: float = 0.05
    """ε of the initial virtual states s_t = (t/T) g + (1 − t/T) s_0 + scale · N(0, ε²) (units of the state scale)."""
    action_noise: float = 0.0
    """Std of Gaussian noise on the initial actions of candidates 2..B, in units of the half action
    range (candidate 1 keeps the init)."""
    warm_start_fraction: float = 0.5
    """With a warm start, the fraction of candidates started from it; the others start fresh."""
    sync_every: int | None = None
    """Iterations between syncs (sampling and/or shooting GD, then states reset to the rollout);
    0 disables sync (the 'no sync' ablation). None (default) is 1 without lifted updates (reward
    objectives, see ``lifted_updates``: every iteration is a sync), else resolves by model kind: 4 for
    state-space models (the syncs carry swing-ups, and a warm plan of 4 iterations ends on one, so closed
    loop keeps sampling every step), 10 for latent models (there the lifted steps between syncs do the
    work). See docs/decisions.md#graspconfigsync_every."""
    sync_steps: int = 0
    """Plain GD steps on the shooting loss per sync (the paper's sync; :meth:`paper` uses 10)."""
    sync_lr: float = 0.05
    sync_max_grad_norm: float | None = 10.0
    """Per-candidate clip of the shooting gradient during sync (long rollouts can explode); None = off."""
    sync_samples: int = 16
    """Sampling sync: before the GD steps, each candidate takes one MPPI update from this many
    perturbed copies of its actions, scored by full model rollouts (0 = off). It is what carries
    non-greedy information (a detour's, a swing-up's) that a local gradient step cannot see."""
    warm_sync_samples: int | None = None
    """Samples of a warm-started plan's syncs. None resolves by objective: half of ``sync_samples`` with the lifted
    steps (goal objectives: the gradient steps share the work, and the sampled rollouts are most of a warm step's
    time), ``sync_samples`` where the syncs are the whole optimisation (reward objectives). See
    docs/decisions.md#graspconfigwarm_sync_samples."""
    final_sync_samples: int | None = 64
    """Samples of the last sync of a cold plan (the one whose candidates are returned), when the sampling
    sync is on; None = ``sync_samples``. A wider last look closes near misses for a little more time per
    cold plan; warm plans keep ``sync_samples`` (their cost is the control step's). See
    docs/decisions.md#graspconfigfinal_sync_samples."""
    sync_sample_std: float = 0.5
    """Std of the sampling sync's perturbations, in units of the half action range (cold plans)."""
    final_sync_local: bool | None = None
    """Whether the last sync of a cold plan takes a local look: white perturbations at half ``sync_sample_std``.
    None resolves by objective and model kind: on with the lifted steps on a state-space model (goal objectives: the
    earlier syncs search with coloured noise, whose low frequencies move an arrive-and-stop plan's end point past a
    tight tolerance; the last one polishes), off where the syncs are the whole optimisation (reward objectives: the
    last sync still searches) and on latent models (a polished latent distance is not a polished state; the search
    is worth more there). See docs/decisions.md#graspconfigfinal_sync_local."""
    warm_final_mean: bool = False
    """Whether the last sync of a warm-started plan rolls out each candidate's MPPI mean and keeps it where it beats
    the best sample (as every other sync does), or keeps the best sample (default): the mean's rollout is a second
    sequential rollout per control step, and the next plan's sync re-centres on the kept sample anyway. See
    docs/decisions.md#graspconfigwarm_final_mean."""
    warm_sync_sample_std: float | None = None
    """Std of the sampling sync's perturbations in warm-started plans, in units of the half action range;
    None (default) is half of ``sync_sample_std``. A warm plan refines the shifted previous plan, and wide
    perturbations picked by a learned model's score jolt a balanced system. See
    docs/decisions.md#graspconfigwarm_sync_sample_std."""
    sync_noise_beta: float | None = None
    """Colour of the sampling sync's perturbations along time: power spectrum ∝ 1/f^β (iCEM's coloured noise;
    0 = white). None resolves by objective: 2 with the lifted steps (goal objectives: smooth, low-frequency
    perturbations move a whole plan, a pump or a detour, where white noise averages out over the horizon), 0 where
    the syncs are the whole optimisation (reward objectives). See
    docs/decisions.md#graspconfigsync_noise_beta."""
    sync_gradient_steps: tuple[float, ...] | None = None
    """Step sizes, in sampling stds, of the gradient samples of a sampling sync (e.g. ``(1.0, 0.3, 0.1)``): extra
    samples that step from the plan along the negative gradient of its rollout cost (backpropagated through the model
    rollout, scaled to unit RMS per candidate) and compete with the random samples for the MPPI update and the
    best-sample pick. A fixed-width random search stalls where actions are costly (torque costs); a line search along
    the gradient does not. None resolves by objective: ``(1.0, 0.3, 0.1)`` where the syncs are the whole optimisation
    (reward objectives: the gradient's only way into the plan), ``()`` with the lifted steps (goal objectives: the
    lifted loss carries the gradient). See docs/decisions.md#graspconfigsync_gradient_steps."""
    sync_gradient_every: int = 4
    """The gradient samples run in one sampling sync out of this many, counted per planner across plans (a reward
    objective's warm plan is one sync, so one control step in four): the backward pass through the rollout costs more
    than the random samples' rollout, and a warm plan inherits the last gradient step through the shifted plan.
    1 = every sync. See docs/decisions.md#graspconfigsync_gradient_every."""
    sync_temperature: float = 0.1
    """MPPI temperature of the sampling sync, on costs normalised by their spread."""
    sync_reset_states: bool = True
    """After a sync, reset the virtual states to the synced rollout (keeps the lifted plan consistent)."""
    lifted_updates: bool | None = None
    """Take the Adam steps on the lifted loss (steps 1-3 above). None (default) resolves by objective:
    on for goal objectives, off when the planner maximises a predicted return (``reward_fn`` or
    ``terminal_value``): there the task term games the free virtual states and the lifted action steps
    are one-step greedy, which undoes the syncs' non-greedy plans. With them off, ``sync_every`` resolves
    to 1. See docs/decisions.md#graspconfiglifted_updates."""
    dynamics_loss: str = "mse"
    """'mse', or 'nll' (Gaussian NLL under ``model.predict_distribution``)."""
    optimizer: str = "adam"
    """'adam' or 'sgd'."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1, got {self.num_candidates}")
        if self.warm_num_candidates is not None and self.warm_num_candidates < 1:
            raise ValueError(f"warm_num_candidates must be >= 1 or None, got {self.warm_num_candidates}")
        if self.sync_samples < 0:
            raise ValueError(f"sync_samples must be >= 0, got {self.sync_samples}")
        if self.warm_sync_samples is not None and self.warm_sync_samples < 0:
            raise ValueError(f"warm_sync_samples must be >= 0 or None, got {self.warm_sync_samples}")
        if self.final_sync_samples is not None and self.final_sync_samples < 0:
            raise ValueError(f"final_sync_samples must be >= 0 or None, got {self.final_sync_samples}")
        check_positive(self.sync_sample_std, "sync_sample_std")
        if self.warm_sync_sample_std is not None:
            check_positive(self.warm_sync_sample_std, "warm_sync_sample_std")
        check_positive(self.sync_temperature, "sync_temperature")
        if self.sync_gradient_steps is not None:
            steps = tuple(self.sync_gradient_steps)
            if not all(isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0 for step in steps):
                raise ValueError(f"sync_gradient_steps must be positive step sizes, got {steps!r}")
            object.__setattr__(self, "sync_gradient_steps", tuple(float(step) for step in steps))
        if self.sync_gradient_every < 1:
            raise ValueError(f"sync_gradient_every must be >= 1, got {self.sync_gradient_every}")
        if self.final_sync_local not in (None, True, False):
            raise ValueError(f"final_sync_local must be True, False or None, got {self.final_sync_local!r}")
        if self.sync_noise_beta is not None:
            check_positive(self.sync_noise_beta, "sync_noise_beta", allow_zero=True)
        for name in ("lr_states", "lr_actions", "sync_lr", "action_grad_scale"):
            check_positive(getattr(self, name), name, allow_zero=name == "lr_states")
        if not 0.0 < self.warm_start_fraction <= 1.0:
            raise ValueError(f"warm_start_fraction must be in (0, 1], got {self.warm_start_fraction}")
        for name in ("noise_scale", "init_state_noise", "action_noise"):
            check_positive(getattr(self, name), name, allow_zero=True)
        if self.lifted_goal_weight is not None:
            check_positive(self.lifted_goal_weight, "lifted_goal_weight", allow_zero=True)
        if self.noise_schedule not in ("constant", "linear"):
            raise ValueError(f"noise_schedule must be 'constant' or 'linear', got {self.noise_schedule!r}")
        if self.noise_decay_iterations is not None and self.noise_decay_iterations < 1:
            raise ValueError(f"noise_decay_iterations must be >= 1, got {self.noise_decay_iterations}")
        if (self.sync_every is not None and self.sync_every < 0) or self.sync_steps < 0:
            raise ValueError("sync_every and sync_steps must be >= 0")
        if self.dynamics_loss not in ("mse", "nll"):
            raise ValueError(f"dynamics_loss must be 'mse' or 'nll', got {self.dynamics_loss!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")

    def resolve(self, *, latent_model: bool, maximises_return: bool) -> Self:
        """Every None default filled in for this model kind and objective (pure; see each field for its rule):
        the stop-gradient and γ by model kind; lifted steps, warm iterations, warm samples, the sync noise's colour
        and the gradient samples by objective; the sync period and the last sync's locality by both; warm
        candidates, warm sampling std and the last sync's samples from their cold counterparts."""
        detach = latent_model if self.detach_states is None else self.detach_states
        lifted = not maximises_return if self.lifted_updates is None else self.lifted_updates
        warm = (4 if lifted else 1) if self.warm_iterations is None else self.warm_iterations
        config = super(GraspConfig, dataclasses.replace(self, warm_iterations=warm)).resolve(
            latent_model=latent_model, maximises_return=maximises_return
        )
        default_sync = (10 if latent_model else 4) if lifted else 1
        return dataclasses.replace(
            config,
            detach_states=detach,
            lifted_goal_weight=(1.0 if detach else 0.0) if self.lifted_goal_weight is None else self.lifted_goal_weight,
            lifted_updates=lifted,
            sync_every=default_sync if self.sync_every is None else self.sync_every,
            warm_num_candidates=self.warm_num_candidates or self.num_candidates,
            warm_sync_sample_std=self.warm_sync_sample_std or self.sync_sample_std / 2,
            sync_noise_beta=(2.0 if lifted else 0.0) if self.sync_noise_beta is None else self.sync_noise_beta,
            final_sync_local=(lifted and not latent_model) if self.final_sync_local is None else self.final_sync_local,
            sync_gradient_steps=(
                ((1.0, 0.3, 0.1) if not lifted else ())
                if self.sync_gradient_steps is None
                else self.sync_gradient_steps
            ),
            warm_sync_samples=(
                (self.sync_samples // 2 if lifted else self.sync_samples)
                if self.warm_sync_samples is None
                else self.warm_sync_samples
            ),
            final_sync_samples=self.sync_samples if self.final_sync_samples is None else self.final_sync_samples,
        )

    @classmethod
    def paper(cls, **overrides: Any) -> GraspConfig:
        """The published GRASP's mechanisms: stop-gradient on the state input, dense goal term γ = 1,
        state noise decaying linearly over the whole run, plain GD shooting syncs (10 steps every 50
        iterations), no sampling, 300 iterations. ``overrides`` replace any field (e.g. the authors' ``lr_actions=0.005``,
        ``iterations=750``, ``noise_schedule='constant'``, ``noise_scale=0.005``)."""
        settings: dict[str, Any] = dict(
            iterations=300,
            warm_iterations=None,
            first_plan_iterations=None,
            warm_num_candidates=overrides.get("num_candidates", cls.num_candidates),
            detach_states=True,
            lifted_goal_weight=1.0,
            noise_scale=0.05,
            noise_schedule="linear",
            noise_decay_iterations=None,
            sync_every=50,
            sync_steps=10,
            sync_samples=0,
        )
        settings.update(overrides)
        if settings["warm_iterations"] is None:  # the published planner runs its full budget on every plan
            settings["warm_iterations"] = settings["iterations"]
        if settings["noise_decay_iterations"] is None and settings["noise_schedule"] == "linear":
            settings["noise_decay_iterations"] = settings["iterations"]
        return cls(**settings)

    def noise_at(self, iteration: int, budget: int | None = None) -> float:
        """σ_k, the state-noise scale at 0-based ``iteration`` of a run of ``budget`` iterations
        (default ``iterations``; a decay length beyond the budget is shortened to it)."""
        if self.noise_schedule == "constant":
            return self.noise_scale
        budget = self.iterations if budget is None else budget
        decay = min(self.noise_decay_iterations or max(1, budget // 2), budget)
        return self.noise_scale * max(0.0, 1.0 - iteration / decay)


class GraspPlanner(Planner):
    """Lifted, stochastic, gradient-reshaped planning over actions and virtual states."""

    name = "grasp"
    config_class = GraspConfig
    config: GraspConfig
    """The resolved config (:meth:`GraspConfig.resolve`): no None left but ``noise_decay_iterations``, whose
    None means half of each plan's own budget."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        config = self.config
        self._sampling_syncs = 0  # sampling syncs so far, for ``sync_gradient_every``
        if not config.lifted_updates and not (config.sync_every and (config.sync_samples or config.sync_steps)):
            raise ValueError(
                "lifted_updates=False leaves GRASP nothing to optimise without syncs: "
                "keep sync_every > 0 and sync_samples or sync_steps > 0"
            )
        if self.config.dynamics_loss == "nll" and not hasattr(self.model, "predict_distribution"):
            raise ValueError(
                "dynamics_loss='nll' needs a model with predict_distribution(state, action) -> (mean, std)"
            )

    # -------------------------------------------------------------- the lifted loss
    def lifted_loss(self, problem: Problem, virtual_states: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-candidate (dynamics, goal, task) losses, each [N, B], from ONE batched model call.

        ``virtual_states`` [N, B, T-1, S] (or [N, B, T, S] with no goal), ``actions`` [N, B, T, A].
        The task loss is ``Σ_t running_cost(F(s_t, a_t), a_t) − Σ_t discount^t reward_fn(s_t, a_t,
        F(s_t, a_t)) − discount^T terminal_value(F(s_{T-1}, a_{T-1}))``: the objective's task terms
        with the virtual states as s_t and the model's prediction as s_{t+1}, so rewards cost no extra
        model call. The reward sees the states the model sees (stop-gradient with ``detach_states``).

        A reward objective can be gamed by the lifted loss alone: the virtual states park at the reward's
        maximum for a small dynamics penalty while the rollout falls. The syncs, which score true
        rollouts, are what ground reward plans: receding-horizon reward planning needs a sync inside every
        warm-started plan (``sync_every <= warm_iterations``). See docs/decisions.md#graspconfiglifted_updates.
        """
        size, candidates = actions.shape[:2]
        scale = problem.scale[:, None, None, :]
        states = virtual_states * scale  # the iterates live in natural units (see _initial_states)
        start = problem.start[:, None, None, :].expand(size, candidates, 1, self.state_dim)
        inputs = torch.cat([start, states], dim=2)[:, :, : self.horizon]  # s_0..s_{T-1}
        if self.config.detach_states:
            inputs = inputs.detach()  # the gradient reshaping: no gradient into the state input
        if problem.goal is not None:
            goal = problem.goal[:, None, None, :].expand(size, candidates, 1, self.state_dim)
            targets = torch.cat([states, goal], dim=2)  # s_1..s_{T-1}, g
        else:
            targets = states  # s_1..s_T, s_T free

        if self.config.dynamics_loss == "nll":
            flat_mean, flat_std = self.model.predict_distribution(
                inputs.reshape(-1, self.state_dim), actions.reshape(-1, self.action_dim)
            )
            self._model_calls += 1
            self._model_transitions += inputs[..., 0].numel()
            predicted = flat_mean.reshape(inputs.shape)
            std = flat_std.reshape(inputs.shape)
            residual = ((predicted - targets) / std) ** 2 / 2 + std.log()
        else:
            predicted = self.predict(inputs, actions)
            residual = ((predicted - targets) / scale).square()  # the residual in natural units
        if problem.goal is not None:  # s_T := g only where the goal weighs: the other dimensions end free
            goal_dims = (self._goal_weights > 0).to(residual.dtype)[:, None, None, :]
            residual = torch.cat([residual[:, :, :-1], residual[:, :, -1:] * goal_dims], dim=2)
        dynamics = residual.sum((-1, -2))

        zero = torch.zeros_like(dynamics)
        goal_term = self.goal_distance(predicted, problem.goal).sum(-1) if problem.goal is not None else zero
        task = self.running_cost(predicted, actions).sum(-1) if self.running_cost is not None else zero
        if self.reward_fn is not None or self.terminal_value is not None:
            task = task - self.predicted_return(inputs, actions, predicted, predicted[:, :, -1])
        return dynamics, goal_term, task

    # -------------------------------------------------------------- the optimisation
    def _optimize(self, problem: Problem) -> Candidates:
        config = self.config
        budget = self.iteration_budget(problem)
        candidates = self.candidate_count(problem)
        actions = self.initial_actions(problem, candidates, config.action_noise, self.warm_candidates(candidates))
        virtual_states = self._initial_states(problem, candidates)
        optimizer = self._lifted_optimizer(virtual_states, actions) if config.lifted_updates else None

        history = {
            name: torch.zeros(budget, device=self.device)
            for name in ("loss", "dynamics_loss", "goal_loss", "state_grad_norm", "action_grad_norm", "noise_scale")
        }
        iteration, early_stopped, synced_states = 0, False, None
        sync_every = config.sync_every or 0  # resolved: never None here
        scale = problem.scale[:, None, None, :]
        for iteration in range(budget):
            if optimizer is not None:
                self._lifted_step(problem, virtual_states, actions, optimizer, iteration, budget, history)
            synced_states = None
            if sync_every and (config.sync_steps or config.sync_samples) and (iteration + 1) % sync_every == 0:
                synced_states = self._sync(problem, actions, virtual_states, last=iteration + 1 == budget)
                if optimizer is None and synced_states is not None:  # the syncs are the whole optimisation
                    with torch.no_grad():
                        history["loss"][iteration] = self.trajectory_cost(synced_states, actions, problem.goal).mean()
            if self.callback is not None:
                self.callback(iteration, virtual_states.detach() * scale, actions.detach())
            if self.should_stop(
                iteration,
                problem,
                actions.detach(),
                lambda: (actions, (virtual_states * scale)[:, :, : self.num_virtual_states]),
            ):
                early_stopped = True
                break

        iterations = iteration + 1
        return Candidates(
            actions=actions.detach(),
            virtual_states=(virtual_states.detach() * scale)[:, :, : self.num_virtual_states],
            history={name: values[:iterations] for name, values in history.items()},
            iterations=iterations,
            early_stopped=early_stopped,
            states=synced_states,  # a run that ends on a sync has its rollouts already: selection reuses them
        )

    def _lifted_optimizer(self, virtual_states: Tensor, actions: Tensor) -> PlanOptimizer:
        """Adam (or SGD) on the virtual states and the actions, each with its own learning rate."""
        config = self.config
        virtual_states.requires_grad_(True)
        actions.requires_grad_(True)
        groups = [(virtual_states, config.lr_states), (actions, config.lr_actions)]
        return PlanOptimizer(groups, config.optimizer)

    def _lifted_step(
        self,
        problem: Problem,
        virtual_states: Tensor,
        actions: Tensor,
        optimizer: PlanOptimizer,
        iteration: int,
        budget: int,
        history: dict[str, Tensor],
    ) -> None:
        """Steps 1-3 of an iteration: the lifted loss, one optimizer step, clipping, fresh state noise."""
        config = self.config
        # γ plus the objective's own dense term (dense_goal_weight · mean over the T predicted states)
        goal_weight = cast(float, config.lifted_goal_weight) + self.dense_goal_weight / self.horizon
        optimizer.zero_grad()
        dynamics, goal_term, running = self.lifted_loss(problem, virtual_states, actions)
        loss = dynamics + goal_weight * goal_term + running  # [N, B]
        loss.sum().backward()  # candidates are independent: summing keeps their gradients separate
        assert actions.grad is not None and virtual_states.grad is not None
        if config.action_grad_scale != 1.0:
            actions.grad.mul_(config.action_grad_scale)
        sigma = config.noise_at(iteration, budget)
        with torch.no_grad():
            history["loss"][iteration] = loss.mean()
            history["dynamics_loss"][iteration] = dynamics.mean()
            history["goal_loss"][iteration] = goal_term.mean()
            history["state_grad_norm"][iteration] = virtual_states.grad.flatten(2).norm(dim=-1).mean()
            history["action_grad_norm"][iteration] = actions.grad.flatten(2).norm(dim=-1).mean()
            history["noise_scale"][iteration] = sigma
        optimizer.step()
        with torch.no_grad():
            actions.copy_(self.clamp_actions(actions))
            if sigma > 0:  # fresh noise per state, per candidate, per iteration
                virtual_states.add_(self.randn(virtual_states.shape[1:]), alpha=sigma)

    def candidate_count(self, problem: Problem) -> int:
        """B for this plan: the resolved ``warm_num_candidates`` with a warm start, else ``num_candidates``."""
        return cast(int, self.config.warm_num_candidates) if problem.init is not None else self.config.num_candidates

    def warm_candidates(self, candidates: int) -> int:
        """How many of ``candidates`` start from a warm start (the rest start fresh)."""
        return max(1, round(self.config.warm_start_fraction * candidates))

    def _initial_states(self, problem: Problem, candidates: int) -> Tensor:
        """[N, B, T-1, S] virtual states: warm start for the first candidates, else the straight line
        s_0 → g (g at rest for a history model; s_0 without a goal); plus noise ε."""
        config = self.config
        count = self.num_virtual_states if problem.goal is not None else self.horizon
        shape = (problem.size, candidates, count, self.state_dim)
        if problem.goal is not None:
            fraction = torch.arange(1, count + 1, device=self.device, dtype=torch.float32) / self.horizon
            fraction = fraction[None, None, :, None]
            goal = self.resting_goal(problem.goal)
            states = (
                (fraction * goal[:, None, None] + (1 - fraction) * problem.start[:, None, None]).expand(shape).clone()
            )
        else:
            states = problem.start[:, None, None].expand(shape).clone()
        if problem.init is not None:
            if problem.init.virtual_states is not None:
                warm = problem.init.virtual_states[:, None]
                if count > warm.shape[2]:  # goal-free: the free terminal state starts at the last one
                    warm = torch.cat([warm, warm[:, :, -1:]], dim=2)
            else:  # actions only: start the states on the model rollout
                with torch.no_grad():
                    warm = self.rollout(problem.start, problem.init.actions[:, None])[:, :, 1 : count + 1]
            states[:, : self.warm_candidates(candidates)] = warm
        states = states / problem.scale[:, None, None, :]  # optimised in units of the natural scale
        if config.init_state_noise > 0:
            states = states + config.init_state_noise * self.randn(shape[1:])
        return states

    def _sync(self, problem: Problem, actions: Tensor, virtual_states: Tensor, last: bool = False) -> Tensor | None:
        """Re-ground the plan in true model rollouts: the sampling step, then ``sync_steps`` plain GD
        steps on the shooting objective (full backprop through the rollout); reset the states. ``last``: the
        plan's last sync (a cold plan's takes ``final_sync_samples``, locally with ``final_sync_local``; a warm
        plan's syncs take ``warm_sync_samples``, and its last skips the mean's rollout unless ``warm_final_mean``).
        Returns the rollout [N, B, T+1, S] of the synced actions when it was computed, else None."""
        config = self.config
        synced, states = actions.detach().clone(), None
        if config.sync_samples:
            if problem.init is not None:  # warm
                count, keep_mean, local = config.warm_sync_samples, not last or config.warm_final_mean, False
            else:
                count, keep_mean = (config.final_sync_samples if last else config.sync_samples), True
                local = last and bool(config.final_sync_local)
            synced, states = self._sample_sync(problem, synced, cast(int, count), keep_mean, local)
        for _ in range(config.sync_steps):
            gradient = self._rollout_cost_gradient(problem, synced)
            with torch.no_grad():
                if config.sync_max_grad_norm is not None:
                    norm = gradient.flatten(2).norm(dim=-1)[..., None, None]
                    gradient = gradient * (config.sync_max_grad_norm / norm.clamp_min(config.sync_max_grad_norm))
                synced = self.clamp_actions(synced - config.sync_lr * gradient)
            states = None  # the actions moved: the sampling step's rollout no longer matches
        with torch.no_grad():
            actions.copy_(synced)
            if config.sync_reset_states:
                states = self.rollout(problem.start, synced) if states is None else states
                virtual_states.copy_(states[:, :, 1 : virtual_states.shape[2] + 1] / problem.scale[:, None, None, :])
        return states

    def _rollout_cost_gradient(self, problem: Problem, actions: Tensor) -> Tensor:
        """[N, B, T, A] the gradient of each candidate's rollout cost in its actions (full backprop through the
        model rollout; NaN/inf set to 0)."""
        with torch.enable_grad():
            probe = actions.detach().clone().requires_grad_(True)
            cost = self.trajectory_cost(self.rollout(problem.start, probe), probe, problem.goal)
            (gradient,) = torch.autograd.grad(cost.sum(), probe)
        return torch.nan_to_num(gradient, nan=0.0, posinf=0.0, neginf=0.0)

    def _gradient_steps(self) -> tuple[float, ...]:
        """The gradient samples' step sizes for this sync: ``sync_gradient_steps`` in one sync of
        ``sync_gradient_every``, else none."""
        steps = cast(tuple[float, ...], self.config.sync_gradient_steps)
        if not steps:
            return steps
        self._sampling_syncs += 1
        return steps if (self._sampling_syncs - 1) % self.config.sync_gradient_every == 0 else ()

    def _sync_noise(self, candidates: int, count: int, white: bool = False) -> Tensor:
        """[N, B, K, T, A] unit-variance perturbations of the sampling sync, white or coloured (``sync_noise_beta``)."""
        beta = 0.0 if white else cast(float, self.config.sync_noise_beta)
        if beta == 0:
            return self.randn((candidates, count, self.horizon, self.action_dim))
        spectrum = self.randn((candidates, count, self.action_dim, 2, self.horizon // 2 + 1))
        return coloured_noise_from_white(spectrum, beta, self.horizon).transpose(-1, -2)

    def _sample_sync(
        self, problem: Problem, actions: Tensor, sample_count: int, keep_mean: bool = True, local: bool = False
    ) -> tuple[Tensor, Tensor]:
        """One MPPI update per candidate: K perturbed copies (the first unperturbed), rollout costs,
        exp(-normalised cost / temperature)-weighted average; the best sample replaces it if cheaper (without
        ``keep_mean`` the best sample is kept and the mean is never rolled out; ``local``: white noise at half the
        std; the ``sync_gradient_steps`` samples follow the random ones). Returns the new actions [N, B, T, A] and
        their model rollout [N, B, T+1, S] (reused by the reset)."""
        config = self.config
        size, candidates = actions.shape[:2]
        scale = cast(float, config.warm_sync_sample_std) if problem.init is not None else config.sync_sample_std
        std = (scale / 2 if local else scale) * (self.action_high - self.action_low) / 2
        steps = self._gradient_steps()
        if steps:  # gradient samples: a line search along the normalised descent direction, after the random ones
            gradient = self._rollout_cost_gradient(problem, actions)
            direction = -gradient / gradient.square().mean((-1, -2), keepdim=True).sqrt().clamp_min(1e-12)
        with torch.no_grad():
            noise = self._sync_noise(candidates, sample_count + 1, white=local)
            noise[:, :, 0] = 0.0
            if steps:
                sizes = torch.tensor(steps, device=noise.device, dtype=noise.dtype)[:, None, None]
                noise = torch.cat([noise, sizes * direction[:, :, None]], dim=2)
            count = noise.shape[2]
            samples = self.clamp_actions(actions[:, :, None] + noise * std)  # [N, B, K, T, A]
            flat = samples.reshape(size, candidates * count, self.horizon, self.action_dim)
            sample_states = self.rollout(problem.start, flat).reshape(
                size, candidates, count, self.horizon + 1, self.state_dim
            )
            costs = self.trajectory_cost(sample_states.flatten(1, 2), flat, problem.goal).reshape(
                size, candidates, count
            )
            costs = torch.nan_to_num(costs, nan=float("inf"), posinf=float("inf"))
            best_cost, best = costs.min(dim=-1)
            best_sample = samples.gather(
                2, best[..., None, None, None].expand(-1, -1, 1, self.horizon, self.action_dim)
            )[:, :, 0]
            best_states = sample_states.gather(
                2, best[..., None, None, None].expand(-1, -1, 1, self.horizon + 1, self.state_dim)
            )[:, :, 0]
            if not keep_mean:
                return best_sample, best_states
            weights = path_integral_weights(costs, config.sync_temperature)
            mean = self.clamp_actions((weights[..., None, None] * samples).sum(2))
            mean_states = self.rollout(problem.start, mean)
            mean_cost = self.trajectory_cost(mean_states, mean, problem.goal)
            pick = (best_cost < mean_cost)[..., None, None]
            return torch.where(pick, best_sample, mean), torch.where(pick, best_states, mean_states)
