"""Pixel world model: keypoint CNN encoder, sprite decoder, latent MLP dynamics.

Planning from pixels happens in the latent space of :class:`PixelWorldModel`: ``encode`` maps
images ``[..., H, W, C]`` to latents ``[..., latent_dim]``, ``forward(latent, action)`` predicts
the next latent (the planners' ``state_dim`` is ``latent_dim``) and the goal cost is the squared
latent distance to ``encode(goal_image)``. For that cost to be useful the latent distance must
grow with the true distance, so the encoder ends in a *spatial softmax* (Levine et al. 2016;
Finn et al. 2016, "Deep spatial autoencoders"): every latent pair is the expected image
coordinate of one learned feature map, so a keypoint that follows a moving object moves
linearly with it, a geometry monotone in the true position by construction.

What makes the keypoints lock onto the moving object (without these they stay on the static scene
and the latent distance barely tracks the true one):

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

The package: :mod:`.model` (the network and its checkpoints), :mod:`.data` (image datasets),
:mod:`.training` (training, evaluation, cached load-or-train), :mod:`.diagnostics`.
"""

from __future__ import annotations

from mpc_grasp.models.pixel.data import PixelDataset, collect_pixel_dataset
from mpc_grasp.models.pixel.diagnostics import decode_latent_strip, image_strip, latent_distance_correlation
from mpc_grasp.models.pixel.model import PixelWorldModel, load_pixel_world_model, save_pixel_world_model
from mpc_grasp.models.pixel.training import (
    PixelTrainingConfig,
    evaluate_pixel_world_model,
    load_or_train_pixel_world_model,
    train_pixel_world_model,
)

__all__ = [
    "PixelDataset",
    "PixelTrainingConfig",
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
