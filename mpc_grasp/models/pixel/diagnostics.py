"""Diagnostics of a pixel world model: does latent distance track true distance (rank correlation),
and decoded image strips of latent plans."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mpc_grasp.models.pixel.model import PixelWorldModel


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with ties given their average rank (for Spearman's correlation)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = 0.5 * (s + e - 1)
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 0 else 0.0


@torch.no_grad()
def latent_distance_correlation(
    model: PixelWorldModel,
    observations: Any,
    true_states: Any,
    *,
    max_pairs: int = 20_000,
    bins: int = 10,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, Any]:
    """How well latent distances track true-state distances on (held-out) frames.

    Encodes ``observations [N, H, W, C]`` frame by frame (``encode_frames``), draws up to ``max_pairs`` random pairs and compares the
    Euclidean latent distance with the Euclidean distance of ``true_states [N, D]``. Returns
    ``spearman`` and ``pearson`` correlations, ``bin_edges``/``binned_latent_distance`` (mean latent
    distance per true-distance quantile bin) and ``monotonic`` (whether that curve increases).
    """
    states = np.asarray(true_states, dtype=np.float64)
    frames = observations["observation"] if isinstance(observations, Mapping) else observations
    n = len(states)
    if states.ndim != 2 or n < 3:
        raise ValueError(f"true_states must be [N >= 3, D], got shape {states.shape}")
    if len(frames) != n:
        raise ValueError(f"got {len(frames)} observations but {n} true states")
    if not np.all(np.isfinite(states)):
        raise ValueError("true_states contain NaN or inf values")
    was_training = model.training
    model.eval()
    latents = np.concatenate(
        [model.encode_frames(frames[i : i + batch_size]).detach().cpu().numpy() for i in range(0, n, batch_size)]
    ).astype(np.float64)
    model.train(was_training)
    rng = np.random.default_rng(seed)
    all_pairs = n * (n - 1) // 2
    if all_pairs <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        i = rng.integers(0, n, size=max_pairs)
        j = (i + rng.integers(1, n, size=max_pairs)) % n  # never i == j
    latent_d = np.linalg.norm(latents[i] - latents[j], axis=1)
    true_d = np.linalg.norm(states[i] - states[j], axis=1)
    spearman = _pearson(_average_ranks(latent_d), _average_ranks(true_d))
    pearson = _pearson(latent_d, true_d)
    edges = np.quantile(true_d, np.linspace(0.0, 1.0, bins + 1))
    which = np.clip(np.searchsorted(edges, true_d, side="right") - 1, 0, bins - 1)
    binned = np.array([latent_d[which == b].mean() if np.any(which == b) else np.nan for b in range(bins)])
    valid = binned[np.isfinite(binned)]
    return {
        "spearman": spearman,
        "pearson": pearson,
        "num_frames": n,
        "num_pairs": len(i),
        "bin_edges": edges,
        "binned_latent_distance": binned,
        "monotonic": bool(len(valid) >= 2 and np.all(np.diff(valid) > 0)),
    }


def image_strip(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """uint8 RGB images ``[T, H, W, 3]`` side by side in one ``[H, T*W + (T-1)*gap, 3]`` image (white gaps)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"images must be a non-empty uint8 array [T, H, W, 3], got {images.dtype} {images.shape}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    t, h, w, _ = images.shape
    out = np.full((h, t * w + (t - 1) * gap, 3), 255, dtype=np.uint8)
    for k in range(t):
        out[:, k * (w + gap) : k * (w + gap) + w] = images[k]
    return out


@torch.no_grad()
def decode_latent_strip(
    model: PixelWorldModel,
    latents: Any,
    *,
    reference: Any = None,
    gap: int = 2,
    scale: int = 1,
) -> np.ndarray:
    """Decode a latent trajectory ``[T, latent_dim]`` into one uint8 RGB strip ``[H', T*W + gaps, 3]``.

    For figures of GRASP's virtual states or model rollouts. ``reference`` (optional images
    ``[T, H, W, C]``, e.g. the real frames reached) adds a second row underneath for comparison.
    Stacked-frame models show the most recent frame (last three channels), and history models the newest
    latent of each stacked state. ``scale`` enlarges
    pixels (nearest neighbour); gaps are white.
    """
    z = model.newest_latent(latents, "latents")
    if z.ndim != 2:
        raise ValueError(
            f"latents must be [T, latent_dim] (or stacked states [T, state_dim]), got shape {tuple(z.shape)}"
        )
    if gap < 0 or scale < 1:
        raise ValueError(f"gap must be >= 0 and scale >= 1, got {gap}, {scale}")
    was_training = model.training
    model.eval()
    decoded = (model.decode(z)[..., -3:].clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    model.train(was_training)
    rows = [decoded]
    if reference is not None:
        ref, _ = model.preprocess(reference)
        ref_images = (ref.permute(0, 2, 3, 1)[..., -3:] * 255.0).round().to(torch.uint8).cpu().numpy()
        if len(ref_images) != len(decoded):
            raise ValueError(f"reference has {len(ref_images)} frames but latents have {len(decoded)}")
        rows.append(ref_images)

    strips = [image_strip(r, gap) for r in rows]
    if len(strips) > 1:
        spacer = np.full((gap, strips[0].shape[1], 3), 255, dtype=np.uint8)
        image = np.concatenate([strips[0], spacer, strips[1]], axis=0)
    else:
        image = strips[0]
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    return image
