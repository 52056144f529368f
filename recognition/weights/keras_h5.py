"""Read a Keras 2 functional model file (``.h5``) with h5py alone: its graph, as the
file's own ``model_config`` describes it, and every weight tensor.

Modern Keras cannot load Sandberg's FaceNet (its Lambda layers hold Python 3.6
bytecode), and TensorFlow is far too heavy a dependency for reading arrays, so this
small reader is ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from recognition.errors import WeightsError


@dataclass(frozen=True)
class KerasLayer:
    """One layer of the Keras functional graph, as the file's config describes it."""

    name: str
    class_name: str
    config: dict[str, Any]
    inbound: tuple[str, ...]


@dataclass(frozen=True)
class KerasModel:
    """The parsed h5: graph (in config order), weights by layer, every tensor path."""

    layers: dict[str, KerasLayer]
    weights: dict[str, dict[str, tuple[str, np.ndarray]]]  # layer -> short name -> (path, array)
    tensor_paths: frozenset[str]
    keras_version: str
    output: str

    def consumers(self, name: str) -> list[KerasLayer]:
        """Layers that take ``name``'s output as an input."""
        return [layer for layer in self.layers.values() if name in layer.inbound]

def read_keras_h5(path: Path) -> KerasModel:
    """Parse ``model_config`` and load every weight tensor of a Keras 2 h5 file."""
    try:
        with h5py.File(path, "r") as f:
            return _read_open_h5(f)
    except OSError as exc:
        raise WeightsError(f"cannot read Keras weights {path}: {exc}") from exc


def _read_open_h5(f: h5py.File) -> KerasModel:
    if "model_config" not in f.attrs or "model_weights" not in f:
        raise WeightsError(f"{f.filename} is not a whole Keras model file (no model_config)")
    config = json.loads(_text(f.attrs["model_config"]))
    if config.get("class_name") != "Model":
        raise WeightsError(f"expected a functional Keras Model, found {config.get('class_name')}")
    graph = config["config"]
    layers: dict[str, KerasLayer] = {}
    for entry in graph["layers"]:
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise WeightsError(f"layer {entry['name']} is shared; the converter expects a tree")
        inbound = tuple(node[0] for node in nodes[0]) if nodes else ()
        layers[entry["name"]] = KerasLayer(entry["name"], entry["class_name"],
                                           entry["config"], inbound)
    outputs = graph.get("output_layers") or []
    if len(outputs) != 1:
        raise WeightsError(f"expected one model output, found {len(outputs)}")

    tensor_paths: set[str] = set()
    f.visititems(lambda name, obj: tensor_paths.add(name) if isinstance(obj, h5py.Dataset)
                 else None)
    group = f["model_weights"]
    weights: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
    for layer_name in (_text(n) for n in group.attrs["layer_names"]):
        if layer_name not in layers:
            raise WeightsError(f"weights for {layer_name}, which the model config lacks")
        for weight_name in (_text(n) for n in group[layer_name].attrs["weight_names"]):
            short = weight_name.rsplit("/", 1)[-1].split(":")[0]
            h5_path = f"model_weights/{layer_name}/{weight_name}"
            weights.setdefault(layer_name, {})[short] = (h5_path, np.asarray(f[h5_path]))
    return KerasModel(layers, weights, frozenset(tensor_paths),
                      _text(f.attrs.get("keras_version", "unknown")), outputs[0][0])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes | np.bytes_) else str(value)
