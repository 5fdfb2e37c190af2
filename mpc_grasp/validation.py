"""Input checks shared by planners, models and the agent: clear errors instead of silent NaNs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_float_tensor(
    value: Any,
    name: str,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    trailing_shape: Sequence[int] | None = None,
    allowed_ndims: Sequence[int] | None = None,
) -> Tensor:
    """Convert ``value`` to a finite float tensor, raising ``ValueError`` naming ``name`` otherwise.

    ``trailing_shape`` pins the last dimensions (e.g. ``(state_dim,)``); ``allowed_ndims`` the rank.
    """
    try:
        tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be array-like of numbers, got {type(value).__name__}: {error}") from error
    if not (
        tensor.is_floating_point()
        or tensor.dtype in (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8, torch.bool)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    tensor = tensor.to(device=device, dtype=dtype)
    if allowed_ndims is not None and tensor.ndim not in allowed_ndims:
        raise ValueError(
            f"{name} must have {' or '.join(str(n) for n in allowed_ndims)} dimension(s), got shape {tuple(tensor.shape)}"
        )
    if trailing_shape is not None:
        trailing = tuple(trailing_shape)
        if tensor.ndim < len(trailing) or tuple(tensor.shape[tensor.ndim - len(trailing) :]) != trailing:
            raise ValueError(f"{name} must end in shape {trailing}, got shape {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or inf values: {tensor.detach().cpu().numpy()}")
    return tensor


def is_integer_at_least(value: Any, minimum: int) -> bool:
    """Whether ``value`` is a Python or NumPy integer (not a bool) of at least ``minimum``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value >= minimum)


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite positive (or non-negative) number."""
    ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
