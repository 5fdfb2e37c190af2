"""Versioned, integrity-checked world-model checkpoints (``torch.save`` of a plain dict).

Layout: ``{"format": "mpc_grasp.world_model", "version": 1, "model_class", "config", "state_dict",
"metadata", "sha256"}``. The hash covers class, config, metadata and every tensor's bytes, so a
corrupted or edited file is refused on load instead of silently planning with wrong weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mpc_grasp.atomic import atomic_path
from mpc_grasp.models.mlp import MLPWorldModel, ValueFunction

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "MODEL_CLASSES",
    "CheckpointError",
    "load_world_model",
    "register_model_class",
    "save_world_model",
]

CHECKPOINT_FORMAT = "mpc_grasp.world_model"
CHECKPOINT_VERSION = 1

# classes load_world_model can rebuild: ``cls(**config)`` then ``load_state_dict``
MODEL_CLASSES: dict[str, type[nn.Module]] = {"MLPWorldModel": MLPWorldModel, "ValueFunction": ValueFunction}


class CheckpointError(ValueError):
    """A world-model checkpoint that is corrupt, truncated, of another format/version or tampered with."""


def register_model_class(cls: type[nn.Module]) -> type[nn.Module]:
    """Allow ``cls`` (which must expose ``config`` and accept ``cls(**config)``) in checkpoints."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr, allow_nan=True)


def _plain(value: Any) -> Any:
    """JSON-compatible copy (only types ``torch.load(weights_only=True)`` accepts)."""
    return json.loads(_canonical_json(value))


def _digest(
    model_class: str, config: Mapping[str, Any], metadata: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> str:
    h = hashlib.sha256()
    h.update(_canonical_json({"model_class": model_class, "config": config, "metadata": metadata}).encode())
    for key in sorted(state_dict):
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"state_dict entry {key!r} is a {type(tensor).__name__}, not a tensor")
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_world_model(model: nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (its class must be in ``MODEL_CLASSES``) to ``path`` atomically; returns the path.

    ``metadata`` (e.g. ``env_id``) is merged over ``model.metadata``; ``model.training_history`` is
    stored under ``metadata["training_history"]``.
    """
    name = type(model).__name__
    if MODEL_CLASSES.get(name) is not type(model):
        raise TypeError(
            f"cannot checkpoint {name}: register it with register_model_class (known: {sorted(MODEL_CLASSES)})"
        )
    config = getattr(model, "config", None)
    if not isinstance(config, Mapping):
        raise TypeError(f"{name} must expose a dict `config` to be checkpointed")
    meta: dict[str, Any] = dict(getattr(model, "metadata", {}) or {})
    meta.update(metadata or {})
    history = getattr(model, "training_history", None)
    if history and "training_history" not in meta:
        meta["training_history"] = history
    from mpc_grasp import __version__ as package_version  # late import: mpc_grasp imports this package

    meta.setdefault("package_version", package_version)
    meta.setdefault("torch_version", torch.__version__)
    config, meta = _plain(dict(config)), _plain(meta)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_class": name,
        "config": config,
        "state_dict": state,
        "metadata": meta,
        "sha256": _digest(name, config, meta, state),
    }
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path


def load_world_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """Load a checkpoint written by :func:`save_world_model`, verified, in eval mode on ``device``.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` naming the path for
    a corrupt/truncated file, a wrong format or version, an unknown model class, a bad config or a
    hash mismatch. Uses ``torch.load(weights_only=True)`` (no arbitrary code execution).
    """
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    with path.open("rb") as handle:
        if handle.read(4) != b"PK\x03\x04":  # torch.save writes a zip archive
            raise CheckpointError(f"{where} is not a torch checkpoint (no zip archive: a text file or another format?)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises RuntimeError / EOFError / UnpicklingError / ... with its internals' text
        raise CheckpointError(f"{where} is truncated or corrupt: its zip archive cannot be read") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{where} is not an mpc_grasp world-model checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{where} has checkpoint version {payload.get('version')!r}; this mpc_grasp reads version {CHECKPOINT_VERSION}"
        )
    missing = [k for k in ("model_class", "config", "state_dict", "metadata", "sha256") if k not in payload]
    if missing:
        raise CheckpointError(f"{where} is missing fields {missing}")
    name, config, meta, state = payload["model_class"], payload["config"], payload["metadata"], payload["state_dict"]
    if not isinstance(config, dict) or not isinstance(meta, dict) or not isinstance(state, Mapping):
        raise CheckpointError(f"{where} has malformed config / metadata / state_dict")
    if _digest(name, config, meta, state) != payload["sha256"]:
        raise CheckpointError(
            f"{where} failed its integrity check (sha256 mismatch): the file was modified or corrupted"
        )
    cls = MODEL_CLASSES.get(name)
    if cls is None:
        raise CheckpointError(f"{where} holds an unknown model class {name!r} (known: {sorted(MODEL_CLASSES)})")
    try:
        model = cls(**config)
        model.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{where} does not match model class {name}: {error}") from None
    # torch annotates nn.Module.__setattr__ as taking Tensor | Module only; any value is accepted
    model.metadata = {k: v for k, v in meta.items() if k != "training_history"}  # type: ignore[assignment]
    model.training_history = meta.get("training_history", {})
    return model.to(device).eval()
