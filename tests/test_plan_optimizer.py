"""The planners' small optimiser matches torch.optim's Adam and SGD updates (mpc_grasp/planners/optim.py)."""

from __future__ import annotations

import pytest
import torch

from mpc_grasp.planners.optim import PlanOptimizer


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_plan_optimizer_matches_torch_optim(kind: str) -> None:
    torch.manual_seed(0)
    ours = [torch.randn(3, 4, requires_grad=True), torch.randn(5, requires_grad=True)]
    theirs = [t.detach().clone().requires_grad_(True) for t in ours]
    mine = PlanOptimizer([(ours[0], 0.1), (ours[1], 0.01)], kind)
    groups = [{"params": [theirs[0]], "lr": 0.1}, {"params": [theirs[1]], "lr": 0.01}]
    reference = torch.optim.Adam(groups) if kind == "adam" else torch.optim.SGD(groups)
    for step in range(20):
        for tensors, optimizer in ((ours, mine), (theirs, reference)):
            optimizer.zero_grad()
            loss = (tensors[0] ** 3).sum() + ((tensors[1] - step) ** 2).sum()
            loss.backward()
            optimizer.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(t.grad is not None for t in ours)
    mine.zero_grad()
    assert all(t.grad is None for t in ours)


def test_plan_optimizer_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="'adam' or 'sgd'"):
        PlanOptimizer([(torch.zeros(2, requires_grad=True), 0.1)], "lbfgs")
