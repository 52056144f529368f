"""Face crops → L2-normalised embeddings with an ``InceptionResnetV1``, in batches.

Input standardisation depends on the weights: Sandberg's FaceNet (msceleb-128) was
trained with per-image prewhitening, facenet-pytorch's own weights with
``(x - 127.5) / 128``. With ``flip`` each face is also embedded mirrored, in the same
batch, and the two embeddings averaged: a cheap test-time augmentation that makes the
embedding less sensitive to pose and lighting asymmetry.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def prewhiten(faces: torch.Tensor) -> torch.Tensor:
    """Per-image (x - mean) / max(std, 1/sqrt(n)), as in Sandberg's facenet.prewhiten."""
    flat = faces.reshape(faces.shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=False, keepdim=True)
    std = std.clamp(min=1.0 / float(flat.shape[1]) ** 0.5)
    return ((flat - mean) / std).reshape(faces.shape)


def fixed_standardization(faces: torch.Tensor) -> torch.Tensor:
    """facenet-pytorch's ``fixed_image_standardization``: (x - 127.5) / 128."""
    return (faces - 127.5) / 128.0


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit


class Embedder:
    """Runs the embedding network on uint8 face crops (N x H x W x 3).

    ``max_batch`` bounds memory: larger inputs are split into several forward passes.
    The model must already be in eval mode; the caller sets torch's thread count.
    """

    def __init__(
        self, model: nn.Module, *, prewhiten: bool, flip: bool = True, max_batch: int = 64,
    ) -> None:
        self.model = model.eval()
        self.prewhiten = prewhiten
        self.flip = flip
        self.max_batch = max_batch

    @property
    def embedding_dim(self) -> int:
        """Length of one embedding (128 or 512), read from the model's last layer."""
        last_bn = self.model.get_submodule("last_bn")
        assert isinstance(last_bn, nn.BatchNorm1d)
        return int(last_bn.num_features)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """float32 N x D, each row L2-normalised."""
        if faces.ndim != 4 or faces.shape[-1] != 3:
            raise ValueError(f"expected N x H x W x 3 face crops, got shape {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        chunks = [self._embed_chunk(faces[i:i + self.max_batch])
                  for i in range(0, len(faces), self.max_batch)]
        return np.concatenate(chunks)

    def _embed_chunk(self, faces: np.ndarray) -> np.ndarray:
        device = next(self.model.parameters()).device  # the model's (cuda on a GPU)
        batch = torch.from_numpy(np.ascontiguousarray(faces)).to(device)
        batch = batch.permute(0, 3, 1, 2).float()
        batch = prewhiten(batch) if self.prewhiten else fixed_standardization(batch)
        count = batch.shape[0]
        if self.flip:
            batch = torch.cat([batch, batch.flip(dims=[3])])
        with torch.inference_mode():
            out = self.model(batch).float()
        # Normalise each view before averaging so neither dominates, then again.
        out = torch.nn.functional.normalize(out, dim=1)
        if self.flip:
            out = out[:count] + out[count:]
        return l2_normalise(out.cpu().numpy().astype(np.float32))
