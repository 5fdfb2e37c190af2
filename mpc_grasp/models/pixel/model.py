"""The pixel world model: keypoint CNN encoder (spatial softmax), sprite decoder, latent MLP
dynamics; its checkpoints use the package's versioned, hashed format."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mpc_grasp.models.checkpoint import CheckpointError, load_world_model, register_model_class, save_world_model


class SpatialSoftmax(nn.Module):
    """Feature maps ``[N, K, h, w]`` -> expected coordinates ``[N, 2K]`` (x, y pairs in [-1, 1]).

    ``x`` runs left to right and ``y`` top to bottom over the pixel centres. Each map is
    standardised over space before the softmax, whose temperature is learnable.
    """

    grid_x: Tensor  # buffers (register_buffer)
    grid_y: Tensor

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
    output = nn.Linear(width, outputs)
    modules.append(output)
    with torch.no_grad():
        output.weight.mul_(0.01)
        output.bias.zero_()
    return nn.Sequential(*modules)


def _check_pixel_architecture(
    action_dim: int,
    latent_dim: int,
    image_size: int,
    channels: int,
    hidden_dim: int,
    encoder_width: int,
    dynamics_layers: int,
    history: int = 1,
) -> None:
    """Raise ``ValueError`` for a :class:`PixelWorldModel` size that cannot be built."""
    if isinstance(history, bool) or int(history) != history or history < 1:
        raise ValueError(f"history must be a positive integer (frames of context), got {history!r}")
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
            f"hidden_dim and dynamics_layers must be >= 1 and encoder_width >= 4, got {hidden_dim}, {dynamics_layers}, {encoder_width}"
        )


def _keypoint_encoder(channels: int, width: int, keypoints: int) -> nn.Sequential:
    """CNN from ``[image, image - background]`` (``2 * channels``) to ``keypoints`` feature maps at 1/4 resolution."""
    return nn.Sequential(
        nn.Conv2d(2 * channels, width // 2, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width // 2, width, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, keypoints, 3, padding=1),
    )


def _sprite_decoder(keypoints: int, width: int, channels: int) -> nn.Sequential:
    """Keypoint heatmaps (x and y per keypoint) -> colour + opacity layers at full resolution.

    Local convolutions composited over a learned full-resolution background: being local, the layers
    cannot paint the static scene, so reconstruction pulls every keypoint toward the moving object it
    must draw (a free-form decoder learns to use them for background)."""
    first = nn.Conv2d(2 * keypoints, width, 3, padding=1)
    middle = nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1)
    output = nn.ConvTranspose2d(width // 2, channels + 1, 4, stride=2, padding=1)
    with torch.no_grad():  # start transparent: the decoder initially draws the background only
        assert output.bias is not None
        output.bias[-1].fill_(-4.0)
    return nn.Sequential(first, nn.ReLU(), middle, nn.ReLU(), output)


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

    ``history=k > 1`` conditions the dynamics on the last k frames (the WorldModel history contract,
    :mod:`mpc_grasp.models.base`): the planning state is the k per-frame latents, oldest first
    (``state_dim = k * latent_dim``); ``encode`` takes stacks ``[..., k, H, W, C]`` -> ``[..., k * latent_dim]``
    (``encode_frames`` encodes frames one by one); ``forward`` feeds the k standardised latents and the action
    to the MLP, which predicts the change of the newest latent, and returns the shifted stack; ``decode`` of a
    stacked state draws its newest latent. ``latent_dim`` stays the per-frame size.

    ``latent_mean`` / ``latent_std`` / ``delta_std`` (buffers, saved with the model) are the
    statistics of the training latents and of their one-step changes: the dynamics normalisation,
    and reference scales for planner noise and tolerances. ``training_info`` holds what
    :func:`train_pixel_world_model` measured (empty for an untrained model), ``metadata`` what a
    checkpoint recorded (e.g. ``env_id``).
    """

    training_info: dict[str, Any]
    metadata: dict[str, Any]
    # buffers (register_buffer): declared so type checkers see Tensors, not ``Tensor | Module``
    heatmap_coords: Tensor
    latent_mean: Tensor
    latent_std: Tensor
    delta_std: Tensor
    background_image: Tensor
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
        history: int = 1,
    ) -> None:
        super().__init__()
        _check_pixel_architecture(
            action_dim, latent_dim, image_size, channels, hidden_dim, encoder_width, dynamics_layers, history
        )
        if not keypoint_temperature > 0:
            raise ValueError(f"keypoint_temperature must be > 0, got {keypoint_temperature}")
        if not 0.0 < heatmap_sigma < 1.0:
            raise ValueError(f"heatmap_sigma must be in (0, 1) (image half-widths), got {heatmap_sigma}")
        self.action_dim = int(action_dim)
        self.latent_dim = int(latent_dim)
        self.history = int(history)
        """Frames of context k: the planning state stacks the latents of the last k observations, oldest first."""
        self.state_dim = self.history * self.latent_dim
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

        self.encoder = _keypoint_encoder(self.channels, width, k)
        self.keypoints = SpatialSoftmax(grid, grid, self.keypoint_temperature)
        self.decoder = _sprite_decoder(k, width, self.channels)
        self.background_logits = nn.Parameter(torch.zeros(self.channels, self.image_size, self.image_size))
        coords = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2.0 - 1.0
        self.register_buffer("heatmap_coords", coords, persistent=False)

        self.dynamics_layers = int(dynamics_layers)
        self.dynamics = self.new_dynamics()
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
            "history": self.history,
        }

    def new_dynamics(self) -> nn.Sequential:
        """A freshly initialised dynamics MLP (from torch's global RNG): the k standardised latents and the
        action in, the newest latent's change (in units of ``delta_std``) out."""
        return _mlp(self.state_dim + self.action_dim, self.hidden_dim, self.latent_dim, self.dynamics_layers)

    @property
    def state_scale(self) -> Tensor:
        """[state_dim] the natural scale planners work in: the std of the training encodings (per frame of the
        stacked state when ``history > 1``)."""
        return self.latent_std if self.history == 1 else self.latent_std.repeat(self.history)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Expected observation shape ``(H, W, C)``."""
        return (self.image_size, self.image_size, self.channels)

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        """The shape of one observation frame (``image_shape``): how the agent tells one frame from a batch."""
        return self.image_shape

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
            raise ValueError(
                f"images must have shape [..., {expected[0]}, {expected[1]}, {expected[2]}], got {tuple(tensor.shape)}{hint}"
            )
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
                    f"float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; pass uint8 images for the 0..255 range"
                )
        else:
            if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) > 255):
                raise ValueError(f"integer images must be in 0..255, got dtype {tensor.dtype} out of range")
            x = tensor.float() / 255.0
        x = x.reshape(-1, *expected).permute(0, 3, 1, 2)
        return x, lead

    def encode(self, images: Any) -> Tensor:
        """Images ``[..., H, W, C]`` (uint8 or float in [0, 1], numpy or torch) -> ``[..., latent_dim]``.

        With ``history = k > 1``: stacks of the last k frames, oldest first, ``[..., k, H, W, C]`` -> planning
        states ``[..., k * latent_dim]``."""
        if self.history == 1:
            return self.encode_frames(images)
        x, lead = self.preprocess(images)
        k = self.history
        if len(lead) == 0 or lead[-1] != k:
            raise ValueError(
                f"this model has history={k}: encode needs a stack of the last {k} frames, oldest first, "
                f"[..., {k}, {', '.join(map(str, self.image_shape))}], got frames of leading shape {lead} "
                f"(encode_frames encodes frames one by one; repeat a single frame {k} times to start an episode)"
            )
        return self._encode_preprocessed(x, lead).reshape(*lead[:-1], self.state_dim)

    def encode_frames(self, images: Any) -> Tensor:
        """Each image of ``[..., H, W, C]`` on its own -> per-frame latents ``[..., latent_dim]`` (``encode``
        when ``history == 1``)."""
        x, lead = self.preprocess(images)
        return self._encode_preprocessed(x, lead)

    def _encode_preprocessed(self, x: Tensor, lead: tuple[int, ...]) -> Tensor:
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
        """Latents ``[..., latent_dim]`` -> float images ``[..., H, W, C]`` in [0, 1]; a stacked state
        ``[..., k * latent_dim]`` (``history = k > 1``) is drawn from its newest latent."""
        z = self.newest_latent(latent, "latent")
        lead = tuple(z.shape[:-1])
        flat = z.reshape(-1, self.latent_dim)
        maps = self.heatmaps(flat)
        layer = self.decoder(maps)
        colour, alpha = torch.sigmoid(layer[:, : self.channels]), torch.sigmoid(layer[:, self.channels :])
        image = (1.0 - alpha) * torch.sigmoid(self.background_logits) + alpha * colour
        return image.permute(0, 2, 3, 1).reshape(*lead, *self.image_shape)

    # ------------------------------------------------------------------ dynamics
    def _as_latent(self, value: Any, name: str, size: int | None = None) -> Tensor:
        """``value`` as a float tensor on the model's device whose last axis is ``size`` (default ``latent_dim``)."""
        size = self.latent_dim if size is None else size
        tensor = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value, dtype=np.float32))
        if tensor.ndim < 1 or tensor.shape[-1] != size:
            what = (
                f"latent_dim={size}"
                if size == self.latent_dim
                else f"state_dim={size} (history {self.history} x latent_dim={self.latent_dim})"
            )
            raise ValueError(f"{name} must end in {what}, got shape {tuple(tensor.shape)}")
        return tensor.to(device=self._device(), dtype=torch.float32)

    def newest_latent(self, value: Any, name: str = "latent") -> Tensor:
        """The newest per-frame latent ``[..., latent_dim]`` of a latent or of a stacked state ``[..., state_dim]``."""
        tensor = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value, dtype=np.float32))
        if self.history > 1 and tensor.ndim >= 1 and tensor.shape[-1] == self.state_dim:
            return self._as_latent(tensor, name, self.state_dim)[..., -self.latent_dim :]
        return self._as_latent(tensor, name)

    def forward(self, latent: Tensor, action: Tensor) -> Tensor:
        """Next latent ``latent + delta_std * MLP([(latent - latent_mean) / latent_std, action])``;
        leading shapes broadcast (``[B, T, L]`` with ``[B, T, A]``, or one latent with many actions).

        With ``history = k > 1`` the state holds k latents (oldest first): the MLP sees all k standardised and
        moves the newest, and the next state is the k - 1 newest latents followed by the predicted one."""
        z = self._as_latent(latent, "latent", self.state_dim)
        a = action if isinstance(action, Tensor) else torch.as_tensor(np.asarray(action, dtype=np.float32))
        if a.ndim < 1 or a.shape[-1] != self.action_dim:
            raise ValueError(f"action must end in action_dim={self.action_dim}, got shape {tuple(a.shape)}")
        a = a.to(device=z.device, dtype=torch.float32)
        lead = torch.broadcast_shapes(z.shape[:-1], a.shape[:-1])
        z = z.expand(*lead, self.state_dim)
        a = a.expand(*lead, self.action_dim)
        if self.history == 1:
            features = torch.cat([(z - self.latent_mean) / self.latent_std, a], dim=-1)
            return z + self.dynamics(features) * self.delta_std
        frames = z.unflatten(-1, (self.history, self.latent_dim))
        normalised = ((frames - self.latent_mean) / self.latent_std).flatten(-2)
        newest = frames[..., -1, :]
        predicted = newest + self.dynamics(torch.cat([normalised, a], dim=-1)) * self.delta_std
        return torch.cat([z[..., self.latent_dim :], predicted], dim=-1)

    def rollout(self, latent: Tensor, actions: Tensor) -> Tensor:
        """Open-loop rollout: ``latent [..., S]``, ``actions [..., T, A]`` -> ``[..., T+1, S]`` (S = ``state_dim``)."""
        states = [self._as_latent(latent, "latent", self.state_dim)]
        for t in range(actions.shape[-2]):
            states.append(self(states[-1], actions[..., t, :]))
        return torch.stack(states, dim=-2)


# --------------------------------------------------------------------------------- checkpoints

# pixel models use the package's versioned, hashed checkpoint format (mpc_grasp.models.checkpoint)
register_model_class(PixelWorldModel)


def save_pixel_world_model(
    model: PixelWorldModel, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
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
