"""Pixel world model: keypoint CNN encoder, sprite decoder, latent MLP dynamics (DESIGN.md §6).

Planning from pixels happens in the latent space of :class:`PixelWorldModel`: ``encode`` maps
images ``[..., H, W, C]`` to latents ``[..., latent_dim]``, ``forward(latent, action)`` predicts
the next latent (the planners' ``state_dim`` is ``latent_dim``) and the goal cost is the squared
latent distance to ``encode(goal_image)``. For that cost to be useful the latent distance must
grow with the true distance, so the encoder ends in a *spatial softmax* (Levine et al. 2016;
Finn et al. 2016, "Deep spatial autoencoders"): every latent pair is the expected image
coordinate of one learned feature map, so a keypoint that follows a moving object moves
linearly with it, a geometry monotone in the true position by construction.

What makes the keypoints lock onto the moving object (measured: without these they stay on the
static scene and the latent distance barely tracks the true one):

* the decoder is *local*: convolutions turn Gaussian heatmaps at the keypoints into colour and
  opacity layers composited over a learned background image, so a keypoint is only useful where
  something must be drawn that the background lacks;
* the encoder sees ``[image, image - background]`` (background = per-pixel median of training
  frames, stored in the model) and standardises each feature map before the softmax;
* the reconstruction loss up-weights pixels that differ from the background.

Training (:func:`train_pixel_world_model`) uses only images and actions: reconstruction,
reconstruction of a multi-step latent rollout, multi-step latent prediction of the encodings of
the frames reached (dynamics only, so the encoder cannot collapse to predictable static latents),
then a cheap dynamics refinement on cached encodings; weight decay regularises. True states, when
a dataset has them, are used for held-out evaluation only (:func:`latent_distance_correlation`).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as nnf

from mpc_grasp.models.checkpoint import CheckpointError, load_world_model, register_model_class, save_world_model

__all__ = [
    "PixelDataset",
    "PixelWorldModel",
    "collect_pixel_dataset",
    "decode_latent_strip",
    "evaluate_pixel_world_model",
    "image_strip",
    "latent_distance_correlation",
    "load_or_train_pixel_world_model",
    "load_pixel_world_model",
    "save_pixel_world_model",
    "train_pixel_world_model",
]

# --------------------------------------------------------------------------------- the model


class SpatialSoftmax(nn.Module):
    """Feature maps ``[N, K, h, w]`` -> expected coordinates ``[N, 2K]`` (x, y pairs in [-1, 1]).

    ``x`` runs left to right and ``y`` top to bottom over the pixel centres. Each map is
    standardised over space before the softmax, whose temperature is learnable.
    """

    def __init__(self, height: int, width: int, temperature: float = 1.0) -> None:
        super().__init__()
        ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2.0 - 1.0
        xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2.0 - 1.0
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        self.register_buffer("grid_x", grid_x.reshape(-1), persistent=False)
        self.register_buffer("grid_y", grid_y.reshape(-1), persistent=False)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature), dtype=torch.float32))

    def forward(self, features: Tensor) -> Tensor:
        n, k, h, w = features.shape
        flat = features.reshape(n, k, h * w)
        # standardise each map over space: a localised response (one object) becomes a sharp
        # peak whatever the feature scale, so keypoints lock onto objects from the start
        flat = (flat - flat.mean(-1, keepdim=True)) / (flat.std(-1, keepdim=True) + 1e-4)
        weights = torch.softmax(flat / self.log_temperature.exp(), dim=-1)
        x = weights @ self.grid_x
        y = weights @ self.grid_y
        return torch.stack([x, y], dim=-1).reshape(n, 2 * k)


def _mlp(inputs: int, hidden: int, outputs: int, layers: int) -> nn.Sequential:
    """``layers`` hidden SiLU layers of width ``hidden``; the output layer starts near zero (the
    dynamics then start as "nothing moves")."""
    modules: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    modules.append(nn.Linear(width, outputs))
    with torch.no_grad():
        modules[-1].weight.mul_(0.01)
        modules[-1].bias.zero_()
    return nn.Sequential(*modules)


class PixelWorldModel(nn.Module):
    """World model on images: ``encode`` (CNN + spatial softmax), ``decode`` (sprites over a
    learned background), latent MLP dynamics.

    * ``encode(images)``: uint8 ``[..., H, W, C]`` (0..255) or float in [0, 1] (numpy or torch,
      or a dict observation whose ``"observation"`` holds them) -> latents ``[..., latent_dim]``
      (``latent_dim / 2`` keypoints, each an (x, y) image coordinate in [-1, 1]).
    * ``forward(latent, action)`` -> next latent ``latent + delta_std * MLP((latent - latent_mean) /
      latent_std, action)`` on any leading batch shape (the WorldModel contract; ``state_dim ==
      latent_dim``).
    * ``decode(latent)`` -> float image ``[..., H, W, C]`` in [0, 1] (for visualising plans).

    ``latent_mean`` / ``latent_std`` / ``delta_std`` (buffers, saved with the model) are the
    statistics of the training latents and of their one-step changes: the dynamics normalisation,
    and reference scales for planner noise and tolerances. ``training_info`` holds what
    :func:`train_pixel_world_model` measured (empty for an untrained model), ``metadata`` what a
    checkpoint recorded (e.g. ``env_id``).
    """

    training_info: dict[str, Any]
    metadata: dict[str, Any]
    plans_in_latent_space = True
    """Planners work on learned keypoint latents: GRASP keeps its stop-gradient by default."""

    def __init__(
        self,
        action_dim: int,
        latent_dim: int = 16,
        image_size: int = 64,
        channels: int = 3,
        hidden_dim: int = 256,
        encoder_width: int = 32,
        heatmap_sigma: float = 0.1,
        keypoint_temperature: float = 0.1,
        dynamics_layers: int = 3,
    ) -> None:
        super().__init__()
        if int(action_dim) != action_dim or action_dim < 1:
            raise ValueError(f"action_dim must be a positive integer, got {action_dim}")
        if int(latent_dim) != latent_dim or latent_dim < 2 or latent_dim % 2:
            raise ValueError(f"latent_dim must be an even integer >= 2 (x, y per keypoint), got {latent_dim}")
        if int(image_size) != image_size or image_size < 16 or image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 and >= 16, got {image_size}")
        if int(channels) != channels or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels}")
        if hidden_dim < 1 or encoder_width < 4 or dynamics_layers < 1:
            raise ValueError(
                f"hidden_dim and dynamics_layers must be >= 1 and encoder_width >= 4, got {hidden_dim}, "
                f"{dynamics_layers}, {encoder_width}"
            )
        if not keypoint_temperature > 0:
            raise ValueError(f"keypoint_temperature must be > 0, got {keypoint_temperature}")
        if not 0.0 < heatmap_sigma < 1.0:
            raise ValueError(f"heatmap_sigma must be in (0, 1) (image half-widths), got {heatmap_sigma}")
        self.action_dim = int(action_dim)
        self.latent_dim = int(latent_dim)
        self.state_dim = self.latent_dim
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.num_keypoints = self.latent_dim // 2
        self.hidden_dim = int(hidden_dim)
        self.encoder_width = int(encoder_width)
        self.heatmap_sigma = float(heatmap_sigma)
        self.keypoint_temperature = float(keypoint_temperature)
        grid = self.image_size // 4  # keypoint / heatmap resolution (16x16 for 64x64 images)
        width = self.encoder_width
        k = self.num_keypoints

        self.encoder = nn.Sequential(
            nn.Conv2d(2 * self.channels, width // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width // 2, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, k, 3, padding=1),
        )
        self.keypoints = SpatialSoftmax(grid, grid, self.keypoint_temperature)

        # sprite decoder: local convolutions turn the keypoint heatmaps into colour + opacity
        # layers composited over a learned full-resolution background. Being local, the layers
        # cannot paint the static scene, so reconstruction pulls every keypoint toward the
        # moving object it must draw (a free-form decoder learns to use them for background).
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * k, width, 3, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width // 2, self.channels + 1, 4, stride=2, padding=1),
        )
        with torch.no_grad():  # start transparent: the decoder initially draws the background only
            self.decoder[-1].bias[-1].fill_(-4.0)
        self.background_logits = nn.Parameter(torch.zeros(self.channels, self.image_size, self.image_size))
        coords = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2.0 - 1.0
        self.register_buffer("heatmap_coords", coords, persistent=False)

        self.dynamics_layers = int(dynamics_layers)
        self.dynamics = _mlp(self.latent_dim + self.action_dim, self.hidden_dim, self.latent_dim, self.dynamics_layers)
        # dynamics normalisation (set from data by training, saved with the model): inputs are
        # standardised latents, outputs are latent deltas in units of their typical one-step size.
        # Without it the small deltas make the MLP learn a blurred world (it drives through walls).
        self.register_buffer("latent_mean", torch.zeros(self.latent_dim))
        self.register_buffer("latent_std", torch.ones(self.latent_dim))
        self.register_buffer("delta_std", torch.ones(self.latent_dim))
        # static scene estimated from training frames (per-pixel median, [C, H, W] in [0, 1]); the
        # encoder sees [image, image - background] so moving objects stand out from the start
        self.register_buffer("background_image", torch.zeros(self.channels, self.image_size, self.image_size))
        self.training_info = {}
        self.metadata = {}  # e.g. env_id; stored in and restored from checkpoints

    # ------------------------------------------------------------------ configuration
    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (enough to rebuild the architecture for loading)."""
        return {
            "action_dim": self.action_dim,
            "latent_dim": self.latent_dim,
            "image_size": self.image_size,
            "channels": self.channels,
            "hidden_dim": self.hidden_dim,
            "encoder_width": self.encoder_width,
            "heatmap_sigma": self.heatmap_sigma,
            "keypoint_temperature": self.keypoint_temperature,
            "dynamics_layers": self.dynamics_layers,
        }

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Expected observation shape ``(H, W, C)``."""
        return (self.image_size, self.image_size, self.channels)

    def _device(self) -> torch.device:
        return self.background_logits.device

    # ------------------------------------------------------------------ images
    def preprocess(self, images: Any) -> tuple[Tensor, tuple[int, ...]]:
        """Validate images ``[..., H, W, C]`` and return float ``[N, C, H, W]`` in [0, 1] plus the
        leading shape. uint8 / integer images are read as 0..255, float images must be in [0, 1]."""
        if isinstance(images, Mapping):
            if "observation" not in images:
                raise ValueError(f"dict observations must have an 'observation' image, got keys {sorted(images)}")
            images = images["observation"]
        if isinstance(images, Tensor):
            tensor = images
        else:
            try:
                array = np.asarray(images)
            except (TypeError, ValueError) as error:
                raise ValueError(f"images must be array-like, got {type(images).__name__}: {error}") from error
            if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
                raise ValueError(f"images must hold numbers, got dtype {array.dtype}")
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        expected = self.image_shape
        if tensor.ndim < 3 or tuple(tensor.shape[-3:]) != expected:
            hint = ""
            if tensor.ndim >= 3 and tuple(tensor.shape[-3:]) == (expected[2], expected[0], expected[1]):
                hint = " (this looks channel-first; pass channel-last HWC images)"
            raise ValueError(f"images must have shape [..., {expected[0]}, {expected[1]}, {expected[2]}], got {tuple(tensor.shape)}{hint}")
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise ValueError(f"images must be uint8 (0..255) or float in [0, 1], got dtype {tensor.dtype}")
        lead = tuple(tensor.shape[:-3])
        tensor = tensor.to(self._device())
        if tensor.is_floating_point():
            x = tensor.float()
            if not bool(torch.isfinite(x).all()):
                raise ValueError("images contain NaN or inf values")
            lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
            if lo < -1e-3 or hi > 1.0 + 1e-3:
                raise ValueError(
                    f"float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                    "pass uint8 images for the 0..255 range"
                )
        else:
            if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) > 255):
                raise ValueError(f"integer images must be in 0..255, got dtype {tensor.dtype} out of range")
            x = tensor.float() / 255.0
        x = x.reshape(-1, *expected).permute(0, 3, 1, 2)
        return x, lead

    def encode(self, images: Any) -> Tensor:
        """Images ``[..., H, W, C]`` (uint8 or float in [0, 1], numpy or torch) -> ``[..., latent_dim]``."""
        x, lead = self.preprocess(images)
        if x.shape[0] == 0:
            return x.new_zeros(*lead, self.latent_dim)
        features = self.encoder(torch.cat([x, x - self.background_image], dim=1))
        return self.keypoints(features).reshape(*lead, self.latent_dim)

    def heatmaps(self, latent: Tensor) -> Tensor:
        """Gaussian blobs ``[N, 2K, h, w]`` at the keypoints of latents ``[N, latent_dim]``.

        Two widths per keypoint: ``heatmap_sigma`` to draw sharp objects and 4x that so the
        reconstruction error reaches keypoints that are still far from their object.
        """
        points = latent.reshape(-1, self.num_keypoints, 1, 2)
        sigmas = torch.tensor([self.heatmap_sigma, 4.0 * self.heatmap_sigma], device=latent.device)[:, None]  # [2,1]
        gx = torch.exp(-((self.heatmap_coords - points[..., 0:1]) ** 2) / (2 * sigmas**2))  # [N,K,2,w]
        gy = torch.exp(-((self.heatmap_coords - points[..., 1:2]) ** 2) / (2 * sigmas**2))  # [N,K,2,h]
        maps = gy[..., :, None] * gx[..., None, :]  # [N,K,2,h,w]
        return maps.reshape(latent.shape[0], 2 * self.num_keypoints, *maps.shape[-2:])

    def decode(self, latent: Any) -> Tensor:
        """Latents ``[..., latent_dim]`` -> float images ``[..., H, W, C]`` in [0, 1]."""
        z = self._as_latent(latent, "latent")
        lead = tuple(z.shape[:-1])
        flat = z.reshape(-1, self.latent_dim)
        maps = self.heatmaps(flat)
        layer = self.decoder(maps)
        colour, alpha = torch.sigmoid(layer[:, : self.channels]), torch.sigmoid(layer[:, self.channels :])
        image = (1.0 - alpha) * torch.sigmoid(self.background_logits) + alpha * colour
        return image.permute(0, 2, 3, 1).reshape(*lead, *self.image_shape)

    # ------------------------------------------------------------------ dynamics
    def _as_latent(self, value: Any, name: str) -> Tensor:
        tensor = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value, dtype=np.float32))
        if tensor.ndim < 1 or tensor.shape[-1] != self.latent_dim:
            raise ValueError(f"{name} must end in latent_dim={self.latent_dim}, got shape {tuple(tensor.shape)}")
        return tensor.to(device=self._device(), dtype=torch.float32)

    def forward(self, latent: Tensor, action: Tensor) -> Tensor:
        """Next latent ``latent + delta_std * MLP([(latent - latent_mean) / latent_std, action])``;
        leading shapes broadcast (``[B, T, L]`` with ``[B, T, A]``, or one latent with many actions)."""
        z = self._as_latent(latent, "latent")
        a = action if isinstance(action, Tensor) else torch.as_tensor(np.asarray(action, dtype=np.float32))
        if a.ndim < 1 or a.shape[-1] != self.action_dim:
            raise ValueError(f"action must end in action_dim={self.action_dim}, got shape {tuple(a.shape)}")
        a = a.to(device=z.device, dtype=torch.float32)
        lead = torch.broadcast_shapes(z.shape[:-1], a.shape[:-1])
        z = z.expand(*lead, self.latent_dim)
        a = a.expand(*lead, self.action_dim)
        features = torch.cat([(z - self.latent_mean) / self.latent_std, a], dim=-1)
        return z + self.dynamics(features) * self.delta_std

    def rollout(self, latent: Tensor, actions: Tensor) -> Tensor:
        """Open-loop latent rollout: ``latent [..., L]``, ``actions [..., T, A]`` -> ``[..., T+1, L]``."""
        states = [self._as_latent(latent, "latent")]
        for t in range(actions.shape[-2]):
            states.append(self(states[-1], actions[..., t, :]))
        return torch.stack(states, dim=-2)


# --------------------------------------------------------------------------------- data


@dataclass
class PixelDataset:
    """Image trajectories stored once per frame (no obs/next_obs duplication).

    ``frames[i]`` is an observation image, ``actions[i]`` the action taken there, and
    ``segment_ids`` marks uninterrupted trajectories: ``frames[i + 1]`` is the result of
    ``actions[i]`` iff ``segment_ids[i + 1] == segment_ids[i]`` (the action of a segment's last
    frame is unused). ``states`` holds the true low-dim states for evaluation only (may be None).
    """

    frames: np.ndarray  # uint8 [N, H, W, C]
    actions: np.ndarray  # float32 [N, A]
    segment_ids: np.ndarray  # int64 [N]
    states: np.ndarray | None = None  # float64 [N, D]

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.segment_ids = np.asarray(self.segment_ids, dtype=np.int64)
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4:
            raise ValueError(f"frames must be uint8 [N, H, W, C], got {self.frames.dtype} {self.frames.shape}")
        n = len(self.frames)
        if self.actions.ndim != 2 or len(self.actions) != n:
            raise ValueError(f"actions must be [N={n}, A], got {self.actions.shape}")
        if self.segment_ids.shape != (n,):
            raise ValueError(f"segment_ids must be [N={n}], got {self.segment_ids.shape}")
        if n and np.any(np.diff(self.segment_ids) < 0):
            raise ValueError("segment_ids must be non-decreasing (frames of a segment are contiguous)")
        if self.states is not None:
            self.states = np.asarray(self.states, dtype=np.float64)
            if self.states.ndim != 2 or len(self.states) != n:
                raise ValueError(f"states must be [N={n}, D], got {self.states.shape}")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_transitions(self) -> int:
        """Number of (frame, action, next frame) transitions."""
        return int(np.sum(self.segment_ids[1:] == self.segment_ids[:-1])) if len(self) else 0

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return int(self.frames.nbytes + self.actions.nbytes + self.segment_ids.nbytes + (self.states.nbytes if self.states is not None else 0))

    def window_starts(self, length: int) -> np.ndarray:
        """Indices ``i`` such that frames ``i .. i + length`` lie in one segment (``length`` actions)."""
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        n = len(self)
        if n <= length:
            return np.zeros(0, dtype=np.int64)
        starts = np.arange(n - length)
        return starts[self.segment_ids[starts] == self.segment_ids[starts + length]]

    def subset_segments(self, segments: np.ndarray) -> "PixelDataset":
        """The dataset restricted to the given segment ids (order preserved)."""
        mask = np.isin(self.segment_ids, segments)
        return PixelDataset(
            self.frames[mask], self.actions[mask], self.segment_ids[mask], None if self.states is None else self.states[mask]
        )

    def split(self, validation_fraction: float, seed: int = 0) -> tuple["PixelDataset", "PixelDataset"]:
        """Split by whole segments into (train, validation)."""
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        segments = np.unique(self.segment_ids)
        rng = np.random.default_rng(seed)
        n_val = int(round(validation_fraction * len(segments)))
        if validation_fraction > 0 and len(segments) >= 2:
            n_val = min(max(n_val, 1), len(segments) - 1)
        val = rng.choice(segments, size=n_val, replace=False) if n_val else np.zeros(0, dtype=np.int64)
        return self.subset_segments(np.setdiff1d(segments, val)), self.subset_segments(np.sort(val))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a compressed ``.npz`` (format tag and version included)."""
        arrays: dict[str, np.ndarray] = {
            "format": np.array("mpc_grasp.pixel_dataset"),
            "version": np.array(1),
            "frames": self.frames,
            "actions": self.actions,
            "segment_ids": self.segment_ids,
        }
        if self.states is not None:
            arrays["states"] = self.states
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "PixelDataset":
        """Read a dataset written by :meth:`save`, with a clear error for other files."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data or str(data["format"]) != "mpc_grasp.pixel_dataset":
                    raise ValueError(f"{path} is not an mpc_grasp pixel dataset (missing or wrong format tag)")
                if int(data["version"]) != 1:
                    raise ValueError(f"{path}: unsupported pixel dataset version {int(data['version'])} (expected 1)")
                states = data["states"] if "states" in data else None
                return cls(data["frames"], data["actions"], data["segment_ids"], states)
        except (OSError, KeyError, EOFError) as error:
            raise ValueError(f"could not read pixel dataset {path}: {error}") from error

    @classmethod
    def from_transitions(
        cls, dataset: Any, states: np.ndarray | None = None, next_states: np.ndarray | None = None
    ) -> "PixelDataset":
        """Convert a transition dataset (``observations``, ``actions``, ``next_observations`` and
        optionally ``episode_ids`` / ``step_ids`` arrays, e.g. ``mpc_grasp.data.TransitionDataset``
        collected with ``obs_key="observation"`` on a pixel env) into frame sequences.

        Rows are ordered by (episode, step) when ``step_ids`` exist, so interleaved vector-env rows
        chain up. ``states`` / ``next_states`` (optional, evaluation only) are the true states of each
        row's start / end frame; by default they come from ``dataset.extras["state"]`` /
        ``["next_state"]`` when present. Frames without a known state get NaN.
        """
        try:
            obs = np.asarray(dataset.observations)
            act = np.asarray(dataset.actions, dtype=np.float32)
            nxt = np.asarray(dataset.next_observations)
            episodes = np.asarray(getattr(dataset, "episode_ids", np.zeros(len(obs), dtype=np.int64)))
        except AttributeError as error:
            raise ValueError(f"transition dataset needs observations/actions/next_observations arrays: {error}") from error
        if obs.dtype != np.uint8 or obs.ndim != 4 or nxt.shape != obs.shape:
            raise ValueError(
                f"observations must be uint8 images [N, H, W, C] (collect from a Pixel* env with obs_key='observation'), got {obs.dtype} {obs.shape}"
            )
        extras = getattr(dataset, "extras", None) or {}
        if states is None and next_states is None and "state" in extras and "next_state" in extras:
            states, next_states = extras["state"], extras["next_state"]
        n = len(obs)
        for name, value in (("states", states), ("next_states", next_states)):
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows but the dataset has {n} transitions")
        step_ids = getattr(dataset, "step_ids", None)
        order = np.lexsort((np.asarray(step_ids), episodes)) if step_ids is not None and n else np.arange(n)
        has_states = states is not None or next_states is not None
        state_dim = np.shape(states if states is not None else next_states)[1:] if has_states else ()
        nan_state = np.full(state_dim, np.nan)

        def state_of(values: np.ndarray | None, t: int) -> np.ndarray:
            return nan_state if values is None else np.asarray(values[t], dtype=np.float64)

        frames: list[np.ndarray] = []
        actions: list[np.ndarray] = []
        segments: list[int] = []
        frame_states: list[np.ndarray] = []
        segment = -1
        previous = -1
        for t in order:
            chained = (
                previous >= 0
                and episodes[t] == episodes[previous]
                and (step_ids is None or step_ids[t] == step_ids[previous] + 1)
                and np.array_equal(obs[t], nxt[previous])
            )
            if not chained:
                segment += 1
                frames.append(obs[t])
                actions.append(act[t])
                segments.append(segment)
                frame_states.append(state_of(states, t))
            else:
                actions[-1] = act[t]  # the previous next-frame is this frame: record its action
                if states is not None:
                    frame_states[-1] = state_of(states, t)
            frames.append(nxt[t])
            actions.append(np.zeros_like(act[t]))
            segments.append(segment)
            frame_states.append(state_of(next_states, t))
            previous = t
        return cls(
            np.stack(frames) if frames else np.zeros((0, 1, 1, 1), np.uint8),
            np.stack(actions) if actions else np.zeros((0, act.shape[-1] if act.ndim == 2 else 1), np.float32),
            np.asarray(segments, dtype=np.int64),
            np.stack(frame_states) if has_states and frames else None,
        )


def collect_pixel_dataset(
    env: Any,
    n_steps: int,
    *,
    seed: int = 0,
    episode_length: int = 50,
    smoothing: float = 0.8,
    policy: Callable[[Any, np.random.Generator], np.ndarray] | None = None,
    reset_options: Callable[[np.random.Generator], dict[str, Any] | None] | None = None,
    num_envs: int = 1,
    progress: bool = False,
) -> PixelDataset:
    """Roll out ``n_steps`` environment steps from a pixel env and keep the image sequences.

    A thin layer over :func:`mpc_grasp.data.collect_transitions` (the package's one collection
    loop) followed by :meth:`PixelDataset.from_transitions`. ``env`` is a Gymnasium env or id.
    Actions come from ``policy(obs, rng)`` or, by default, temporally correlated noise ``n_t =
    smoothing * n_{t-1} + sqrt(1 - smoothing²) * N(0, 1)`` clipped to [-1, 1] and mapped onto the
    action box (long pushes cover the space and hit walls more than white noise).
    ``reset_options(rng)`` may supply reset options per episode (e.g. random start states).
    Episodes end at termination or after ``episode_length`` steps. ``info["state"]`` (when the
    env reports it) is recorded as ``states`` for evaluation only.
    """
    import gymnasium

    from mpc_grasp.data import collect_transitions, make_env

    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps}")
    if int(episode_length) != episode_length or episode_length < 1:
        raise ValueError(f"episode_length must be a positive integer, got {episode_length}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    probe = make_env(env) if isinstance(env, str) else env
    try:
        space = probe.observation_space
        image_space = space["observation"] if isinstance(space, gymnasium.spaces.Dict) and "observation" in space.spaces else space
        if not isinstance(image_space, gymnasium.spaces.Box) or image_space.dtype != np.uint8 or len(image_space.shape) != 3:
            raise ValueError(
                f"pixel data collection needs uint8 image observations [H, W, C] (or a dict with one under "
                f"'observation'), got {image_space}; use a Pixel* env such as mpc_grasp/PixelGridWorldWall-v0"
            )
        _, info = probe.reset(seed=seed)
        info_keys = ("state",) if "state" in info else ()
    finally:
        if isinstance(env, str):
            probe.close()
    if isinstance(env, str):
        source: Any = env
        env_kwargs: dict[str, Any] = {"max_episode_steps": int(episode_length)}
    else:
        source, env_kwargs = gymnasium.wrappers.TimeLimit(env, max_episode_steps=int(episode_length)), {}
    wrapped_policy = None
    if policy is not None:
        policy_rng = np.random.default_rng([seed, 2**16])

        def wrapped_policy(obs: Any) -> np.ndarray:
            return np.asarray(policy(obs, policy_rng))

    transitions = collect_transitions(
        source,
        n_steps,
        policy=wrapped_policy,
        seed=seed,
        num_envs=num_envs,
        exploration="correlated",
        obs_key="observation",
        progress=progress,
        env_kwargs=env_kwargs,
        policy_noise=0.0,
        correlation=smoothing,
        noise_scale=1.0,
        info_keys=info_keys,
        reset_options=reset_options,
    )
    return PixelDataset.from_transitions(transitions)


# --------------------------------------------------------------------------------- training


def _as_pixel_dataset(
    data: Any, n_steps: int, seed: int, episode_length: int, progress: bool, collect_kwargs: Mapping[str, Any]
) -> tuple[PixelDataset, dict[str, Any]]:
    """Dataset from a PixelDataset, a transition dataset, a Gymnasium env or an env id."""
    if isinstance(data, PixelDataset):
        return data, {"source": "dataset"}
    if isinstance(data, os.PathLike) or (isinstance(data, str) and data.endswith(".npz")):
        if not Path(data).is_file():
            raise FileNotFoundError(f"pixel dataset file {data} does not exist")
        return PixelDataset.load(data), {"source": str(data)}
    if isinstance(data, str) or hasattr(data, "step"):
        name = data if isinstance(data, str) else getattr(getattr(data, "spec", None), "id", type(data).__name__)
        start = time.perf_counter()
        dataset = collect_pixel_dataset(data, n_steps, seed=seed, episode_length=episode_length, progress=progress, **collect_kwargs)
        return dataset, {"source": name, "collect_seconds": time.perf_counter() - start}
    if hasattr(data, "next_observations"):
        return PixelDataset.from_transitions(data), {"source": type(data).__name__}
    raise TypeError(f"expected a PixelDataset, transition dataset, .npz path, Gymnasium env or env id, got {type(data).__name__}")


def _batch_images(frames: np.ndarray, index: np.ndarray) -> Tensor:
    """uint8 frames at ``index`` (any shape) -> float tensor ``[*index.shape, H, W, C]`` in [0, 1]."""
    return torch.from_numpy(frames[index.reshape(-1)]).float().div_(255.0).reshape(*index.shape, *frames.shape[1:])


def _background_image(frames: np.ndarray, rng: np.random.Generator, sample: int = 512) -> Tensor:
    """Per-pixel median of a frame sample, float ``[H, W, C]`` in [0, 1]: the static scene."""
    index = np.sort(rng.choice(len(frames), size=min(sample, len(frames)), replace=False))
    return torch.from_numpy(np.median(frames[index], axis=0).astype(np.float32) / 255.0)


def _weighted_mse(prediction: Tensor, target: Tensor, background: Tensor | None, foreground_weight: float) -> Tensor:
    """Pixel MSE with pixels that differ from the static background (in the target or in the
    prediction) weighted ``1 + foreground_weight``: small moving objects then dominate the loss
    instead of the easy, static background."""
    error = (prediction - target).pow(2)
    if background is None or foreground_weight <= 0:
        return error.mean()
    with torch.no_grad():
        moving = torch.maximum((target - background).abs().amax(-1), (prediction - background).abs().amax(-1)) > 0.1
        weight = 1.0 + foreground_weight * moving.float()
    return (error.mean(-1) * weight).mean()


def _model_loss(
    model: PixelWorldModel,
    images: Tensor,
    actions: Tensor,
    dynamics_weight: float,
    predicted_recon_weight: float,
    background: Tensor | None = None,
    foreground_weight: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """Loss on windows ``images [B, R+1, H, W, C]`` (float in [0, 1]) and ``actions [B, R, A]``.

    * reconstruction of the first frame of every window (shapes the encoder);
    * multi-step latent rollout error against the encodings of frames 1..R; both the rollout start
      and the targets are detached, so this term trains the dynamics only and cannot make the
      encoder collapse to static (trivially predictable) latents;
    * reconstruction of the last frame from the latent rolled out from the (attached) first
      encoding: a pixel-grounded multi-step term that also makes decoded virtual states accurate.
    Only two frames per window are decoded: decoding dominates the cost on CPU.
    """
    latents = model.encode(images)  # [B, R+1, L]
    recon_loss = _weighted_mse(model.decode(latents[:, 0]), images[:, 0], background, foreground_weight)
    targets = latents.detach()
    actions_r = actions.unbind(1)
    pred = torch.stack(_rollout_steps(model, targets[:, 0], actions_r), dim=1)  # [B, R, L]
    dyn_loss = (pred - targets[:, 1:]).pow(2).sum(-1).mean()
    loss = recon_loss + dynamics_weight * dyn_loss
    stats = {"recon": recon_loss.item(), "dynamics": dyn_loss.item()}
    if predicted_recon_weight > 0:
        last = _rollout_steps(model, latents[:, 0], actions_r)[-1]
        pred_recon_loss = _weighted_mse(model.decode(last), images[:, -1], background, foreground_weight)
        loss = loss + predicted_recon_weight * pred_recon_loss
        stats["pred_recon"] = pred_recon_loss.item()
    stats["loss"] = loss.item()
    return loss, stats


def _rollout_steps(model: PixelWorldModel, start: Tensor, actions: tuple[Tensor, ...]) -> list[Tensor]:
    """Predicted latents after each of ``actions`` (a list of ``[B, A]``), from ``start``."""
    states = []
    current = start
    for action in actions:
        current = model(current, action)
        states.append(current)
    return states


@torch.no_grad()
def _encode_frames(model: PixelWorldModel, frames: np.ndarray, device: torch.device | str, chunk: int = 256) -> Tensor:
    """Encode uint8 frames ``[N, H, W, C]`` in chunks (no gradients) -> ``[N, latent_dim]``."""
    return torch.cat([model.encode(torch.from_numpy(frames[i : i + chunk]).to(device)) for i in range(0, len(frames), chunk)])


def _fit_dynamics(
    model: PixelWorldModel,
    dataset: PixelDataset,
    *,
    iterations: int,
    batch_size: int,
    rollout_steps: int,
    lr: float,
    rng: np.random.Generator,
    seed: int,
    device: torch.device | str,
    progress: bool,
) -> list[dict[str, float]]:
    """Fit the latent dynamics afresh on frozen encodings, with data-derived normalisation.

    Sets ``latent_mean`` / ``latent_std`` / ``delta_std`` from the encodings, re-initialises the
    dynamics MLP (seeded) and minimises the ``rollout_steps``-step latent rollout error on cached
    encodings. Encoding every frame once makes thousands of updates cost seconds, far cheaper than
    training the dynamics only inside the image-batch loop. The loss is reported in units of the
    mean squared one-step change (1.0 = as bad as a model that predicts no motion at all).
    """
    from tqdm.auto import tqdm

    starts = dataset.window_starts(rollout_steps)
    if len(starts) == 0:
        starts, rollout_steps = dataset.window_starts(1), 1
    latents = _encode_frames(model, dataset.frames, device)
    consecutive = torch.from_numpy(np.flatnonzero(dataset.segment_ids[1:] == dataset.segment_ids[:-1])).to(device)
    deltas = latents[consecutive + 1] - latents[consecutive]
    with torch.no_grad():
        std = latents.std(0)
        model.latent_mean.copy_(latents.mean(0))
        # floor: keypoints parked on static features barely move; dividing by ~0 would blow them up
        model.latent_std.copy_(std.clamp_min(max(1e-3, 0.05 * float(std.max()))))
        delta_rms = deltas.pow(2).mean(0).sqrt()
        model.delta_std.copy_(delta_rms.clamp_min(max(1e-6, 0.05 * float(delta_rms.max()))))
        torch.manual_seed(seed + 1)
        model.dynamics = _mlp(model.latent_dim + model.action_dim, model.hidden_dim, model.latent_dim, model.dynamics_layers).to(device)
    unit = float(deltas.pow(2).sum(-1).mean().clamp_min(1e-12))
    actions = torch.from_numpy(dataset.actions).to(device)
    optimizer = torch.optim.Adam(model.dynamics.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations, eta_min=lr * 0.05)
    history = []
    for it in tqdm(range(iterations), desc="fit latent dynamics", disable=not progress):
        chosen = rng.choice(starts, size=batch_size, replace=len(starts) < batch_size)
        index = torch.from_numpy(chosen[:, None] + np.arange(rollout_steps + 1)).to(device)
        z = latents[index]  # [B, R+1, L]
        pred = torch.stack(_rollout_steps(model, z[:, 0], actions[index[:, :-1]].unbind(1)), dim=1)
        loss = (pred - z[:, 1:]).pow(2).sum(-1).mean() / unit
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if it % 100 == 0 or it == iterations - 1:
            history.append({"iteration": float(it), "dynamics": loss.item()})
    return history


@torch.no_grad()
def evaluate_pixel_world_model(
    model: PixelWorldModel,
    dataset: PixelDataset,
    *,
    horizon: int = 10,
    max_windows: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out quality from images and actions only.

    ``recon_mse``: per-pixel MSE (images in [0, 1]) of ``decode(encode(x))``. ``one_step_error`` and
    ``h_step_error``: mean squared latent error of 1-step / ``horizon``-step open-loop predictions
    divided by that of the "nothing moves" prediction ``z_0`` (< 1 means better than standing still).
    """
    model.eval()
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    starts = dataset.window_starts(horizon)
    if len(starts) == 0:
        starts = dataset.window_starts(1)
        horizon = 1
    if len(starts) == 0:
        raise ValueError("dataset has no transitions to evaluate on")
    chosen = rng.choice(starts, size=min(max_windows, len(starts)), replace=False)
    index = chosen[:, None] + np.arange(horizon + 1)
    mse = []
    latents = []
    for part in np.array_split(np.arange(len(chosen)), max(1, len(chosen) // 32)):
        images = _batch_images(dataset.frames, index[part])
        z = model.encode(images)
        mse.append(float(nnf.mse_loss(model.decode(z[:, :1]), images[:, :1], reduction="sum")))
        latents.append(z)
    z = torch.cat(latents)
    actions = torch.from_numpy(dataset.actions[index[:, :-1]])
    pred = model.rollout(z[:, 0], actions)
    still = (z[:, 0:1] - z[:, 1:]).pow(2).sum(-1).mean(0)  # [H]
    err = (pred[:, 1:] - z[:, 1:]).pow(2).sum(-1).mean(0)
    out["recon_mse"] = float(sum(mse) / (len(chosen) * np.prod(dataset.frames.shape[1:])))
    out["one_step_error"] = float(err[0] / still[0].clamp_min(1e-12))
    out["h_step_error"] = float(err[-1] / still[-1].clamp_min(1e-12))
    out["horizon"] = float(horizon)
    return out


def train_pixel_world_model(
    data: Any,
    *,
    latent_dim: int = 16,
    iterations: int = 600,
    batch_size: int = 32,
    rollout_steps: int = 4,
    lr: float = 2e-3,
    weight_decay: float = 1e-5,
    dynamics_weight: float = 1.0,
    predicted_recon_weight: float = 0.5,
    foreground_weight: float = 20.0,
    dynamics_iterations: int = 3000,
    dynamics_rollout_steps: int = 4,
    n_steps: int = 10000,
    episode_length: int = 50,
    collect_kwargs: Mapping[str, Any] | None = None,
    validation_fraction: float = 0.1,
    hidden_dim: int = 256,
    dynamics_layers: int = 3,
    encoder_width: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    model: PixelWorldModel | None = None,
) -> PixelWorldModel:
    """Train a :class:`PixelWorldModel` from images and actions (never true states).

    ``data``: a :class:`PixelDataset`, a transition dataset of images, a saved dataset ``.npz``, a
    Gymnasium pixel env or an env id such as ``"mpc_grasp/PixelGridWorldWall-v0"`` (then
    ``n_steps`` steps are collected with correlated random actions, episodes of ``episode_length``;
    ``collect_kwargs`` go to :func:`collect_pixel_dataset`, e.g. ``reset_options``).

    Phase 1 (``iterations`` AdamW steps on windows of ``rollout_steps`` actions): foreground-weighted
    reconstruction of the first frame + ``dynamics_weight`` × multi-step latent prediction error
    against the (detached) encodings of the frames reached + ``predicted_recon_weight`` ×
    reconstruction of the last frame from the rolled-out latent; weight decay regularises.
    Phase 2 (``dynamics_iterations`` steps, batch 256): the dynamics MLP, re-initialised with
    normalisation statistics of the final encodings, alone on cached encodings with a
    ``dynamics_rollout_steps``-step rollout loss (with ``dynamics_iterations=0`` the phase-1
    dynamics and unit normalisation are kept). Deterministic given ``seed`` (on CPU).

    The returned model (eval mode) carries ``model.training_info``: data sizes, timings, loss
    histories and held-out metrics (``validation``: reconstruction MSE, 1-step and 10-step latent
    prediction error relative to predicting no motion, and, when the data has true states,
    Spearman/Pearson correlation of latent with true pairwise distances).
    """
    if iterations < 1 or batch_size < 1 or rollout_steps < 1:
        raise ValueError(f"iterations, batch_size and rollout_steps must be >= 1, got {iterations}, {batch_size}, {rollout_steps}")
    if lr <= 0 or min(weight_decay, dynamics_weight, predicted_recon_weight, foreground_weight, dynamics_iterations) < 0:
        raise ValueError(
            "lr must be > 0 and weight_decay, dynamics_weight, predicted_recon_weight, foreground_weight, "
            "dynamics_iterations >= 0"
        )
    if dynamics_rollout_steps < 1:
        raise ValueError(f"dynamics_rollout_steps must be >= 1, got {dynamics_rollout_steps}")
    from tqdm.auto import tqdm

    total_start = time.perf_counter()
    dataset, source = _as_pixel_dataset(data, n_steps, seed, episode_length, progress, dict(collect_kwargs or {}))
    train_set, val_set = dataset.split(validation_fraction, seed=seed)
    starts = train_set.window_starts(rollout_steps)
    if len(starts) == 0:
        raise ValueError(
            f"no training window of {rollout_steps} consecutive transitions in {len(train_set)} frames; "
            "collect longer episodes or lower rollout_steps"
        )
    height, width, channels = dataset.frames.shape[1:]
    if height != width:
        raise ValueError(f"images must be square, got {height}x{width}")
    torch.manual_seed(seed)
    if model is None:
        model = PixelWorldModel(
            action_dim=dataset.actions.shape[1],
            latent_dim=latent_dim,
            image_size=height,
            channels=channels,
            hidden_dim=hidden_dim,
            encoder_width=encoder_width,
            dynamics_layers=dynamics_layers,
        )
    elif model.image_shape != (height, width, channels) or model.action_dim != dataset.actions.shape[1]:
        raise ValueError(
            f"model expects images {model.image_shape} and {model.action_dim}-dim actions, data has "
            f"{(height, width, channels)} and {dataset.actions.shape[1]}"
        )
    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations, eta_min=lr * 0.05)
    rng = np.random.default_rng(seed)
    background = _background_image(train_set.frames, rng).to(device)
    if not bool(model.background_image.any()):  # fresh model (a given trained model keeps its own)
        with torch.no_grad():
            model.background_image.copy_(background.permute(2, 0, 1))
            model.background_logits.copy_(torch.logit(model.background_image.clamp(0.02, 0.98)))
    history: list[dict[str, float]] = []
    train_start = time.perf_counter()
    bar = tqdm(range(iterations), desc="train pixel model", disable=not progress)
    for it in bar:
        chosen = rng.choice(starts, size=batch_size, replace=len(starts) < batch_size)
        index = chosen[:, None] + np.arange(rollout_steps + 1)
        images = _batch_images(train_set.frames, index).to(device)
        actions = torch.from_numpy(train_set.actions[index[:, :-1]]).to(device)
        loss, stats = _model_loss(model, images, actions, dynamics_weight, predicted_recon_weight, background, foreground_weight)
        if not math.isfinite(stats["loss"]):
            raise FloatingPointError(f"pixel model loss became {stats['loss']} at iteration {it}; lower lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        scheduler.step()
        if it % 25 == 0 or it == iterations - 1:
            history.append({"iteration": float(it), **stats})
            bar.set_postfix(recon=f"{stats['recon']:.2e}", dyn=f"{stats['dynamics']:.2e}")
    train_seconds = time.perf_counter() - train_start
    model.eval()
    dynamics_start = time.perf_counter()
    dynamics_history = (
        _fit_dynamics(
            model,
            train_set,
            iterations=dynamics_iterations,
            batch_size=256,
            rollout_steps=dynamics_rollout_steps,
            lr=lr,
            rng=rng,
            seed=seed,
            device=device,
            progress=progress,
        )
        if dynamics_iterations > 0
        else []
    )
    dynamics_seconds = time.perf_counter() - dynamics_start
    info: dict[str, Any] = {
        **source,
        "frames": len(dataset),
        "transitions": dataset.num_transitions,
        "train_frames": len(train_set),
        "validation_frames": len(val_set),
        "dataset_megabytes": dataset.nbytes / 2**20,
        "iterations": iterations,
        "batch_size": batch_size,
        "rollout_steps": rollout_steps,
        "seed": seed,
        "train_seconds": train_seconds,
        "dynamics_seconds": dynamics_seconds,
        "history": history,
        "dynamics_history": dynamics_history,
    }
    eval_set = val_set if len(val_set.window_starts(1)) else train_set
    info["validation"] = evaluate_pixel_world_model(model, eval_set, seed=seed)
    if eval_set.states is not None:
        take = np.random.default_rng(seed).choice(len(eval_set), size=min(400, len(eval_set)), replace=False)
        corr = latent_distance_correlation(model, eval_set.frames[take], eval_set.states[take], seed=seed)
        info["validation"].update({"latent_spearman": corr["spearman"], "latent_pearson": corr["pearson"], "latent_monotonic": corr["monotonic"]})
    info["total_seconds"] = time.perf_counter() - total_start
    model.training_info = info
    return model


# --------------------------------------------------------------------------------- diagnostics


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

    Encodes ``observations [N, H, W, C]``, draws up to ``max_pairs`` random pairs and compares the
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
        [model.encode(frames[i : i + batch_size]).detach().cpu().numpy() for i in range(0, n, batch_size)]
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
    Stacked-frame models show the most recent frame (last three channels). ``scale`` enlarges
    pixels (nearest neighbour); gaps are white.
    """
    z = model._as_latent(latents, "latents")
    if z.ndim != 2:
        raise ValueError(f"latents must be [T, latent_dim], got shape {tuple(z.shape)}")
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


# --------------------------------------------------------------------------------- checkpoints

# pixel models use the package's versioned, hashed checkpoint format (mpc_grasp.models.checkpoint)
register_model_class(PixelWorldModel)


def save_pixel_world_model(model: PixelWorldModel, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a versioned, SHA-256-checked checkpoint (``save_world_model`` format) incl. ``training_info``."""
    if not isinstance(model, PixelWorldModel):
        raise TypeError(f"expected a PixelWorldModel, got {type(model).__name__}")
    meta = {"training_info": getattr(model, "training_info", {}), **dict(metadata or {})}
    return save_world_model(model, path, metadata=meta)


def load_pixel_world_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> PixelWorldModel:
    """Load and verify a pixel-model checkpoint (eval mode) and restore ``training_info``.

    Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` (a ``ValueError``) for a
    corrupt file, another format/version, a failed hash check, or a checkpoint of another model class.
    """
    model = load_world_model(path, device=device)
    if not isinstance(model, PixelWorldModel):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(model).__name__}, not a PixelWorldModel")
    model.training_info = dict(model.metadata.pop("training_info", {}) or {})
    return model


def load_or_train_pixel_world_model(
    env_id: str,
    path: str | os.PathLike[str] | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    **train_kwargs: Any,
) -> PixelWorldModel:
    """One call from an env id to a planning-ready pixel model: load ``path`` if it exists, else
    collect data in ``gymnasium.make(env_id, **env_kwargs)``, train, and save to ``path``.

    e.g. ``load_or_train_pixel_world_model("mpc_grasp/PixelGridWorldWall-v0", "results/pixel_wall.pt")``.
    ``train_kwargs`` go to :func:`train_pixel_world_model`. A checkpoint made for another env id /
    kwargs or with other image/action shapes raises ``CheckpointError`` instead of being used.
    """
    import gymnasium

    env_kwargs = dict(env_kwargs or {})
    env = gymnasium.make(env_id, **env_kwargs)
    try:
        obs_space = env.observation_space["observation"] if isinstance(env.observation_space, gymnasium.spaces.Dict) else env.observation_space
        if path is not None and Path(path).exists():
            model = load_pixel_world_model(path)
            made_for = (model.metadata.get("env_id"), model.metadata.get("env_kwargs", {}))
            if made_for != (env_id, json.loads(json.dumps(env_kwargs))):
                raise CheckpointError(f"{path} was trained on {made_for[0]!r} with kwargs {made_for[1]}, not {env_id!r} with {env_kwargs}")
            if tuple(obs_space.shape) != model.image_shape or env.action_space.shape != (model.action_dim,):
                raise CheckpointError(
                    f"{path} holds a model for images {model.image_shape} and {model.action_dim}-dim actions, "
                    f"but {env_id} has {tuple(obs_space.shape)} and {env.action_space.shape}"
                )
            return model
        model = train_pixel_world_model(env, **train_kwargs)
    finally:
        env.close()
    model.training_info["source"] = env_id
    if path is not None:
        model.metadata = {"env_id": env_id, "env_kwargs": json.loads(json.dumps(env_kwargs))}
        save_pixel_world_model(model, path)
    return model
