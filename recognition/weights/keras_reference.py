"""An independent numpy reference for the Keras → torch conversion.

It runs the Keras graph straight from the raw HWIO arrays of the file (NHWC, float64)
and the converted torch model stage by stage, so :func:`keras_convert.numeric_check`
can compare them layer by layer. It shares nothing with the torch mapping but the file.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from recognition.errors import WeightsError
from recognition.weights.keras_h5 import KerasLayer, KerasModel


def numpy_forward(km: KerasModel, x: np.ndarray, outputs: Collection[str]
                  ) -> dict[str, np.ndarray]:
    """Run the Keras graph in numpy (NHWC, raw HWIO arrays from the file), in one pass,
    and return the outputs of the named layers.

    An independent reference: it shares nothing with the torch mapping but the file.
    The ScaleSum Lambdas are Sandberg's ``inputs[0] + inputs[1] * scale``.
    """
    missing = set(outputs) - set(km.layers)
    if missing:
        raise WeightsError(f"no layers named {sorted(missing)}")
    values: dict[str, np.ndarray] = {}
    for layer in km.layers.values():
        inputs = [values[name] for name in layer.inbound]
        values[layer.name] = _numpy_layer(km, layer, inputs, x)
        if all(name in values for name in outputs):
            break
    return {name: values[name] for name in outputs}


def _numpy_layer(km: KerasModel, layer: KerasLayer, inputs: list[np.ndarray],
                 x: np.ndarray) -> np.ndarray:
    cfg, weights = layer.config, km.weights.get(layer.name, {})
    kind = layer.class_name
    if kind == "InputLayer":
        return x.astype(np.float64)
    if kind == "Conv2D":
        out = _np_conv(inputs[0], weights["kernel"][1], tuple(cfg["strides"]), cfg["padding"])
        return out + weights["bias"][1] if cfg["use_bias"] else out
    if kind == "BatchNormalization":
        gamma = weights["gamma"][1] if cfg["scale"] else 1.0
        beta = weights["beta"][1] if cfg["center"] else 0.0
        mean, var = weights["moving_mean"][1], weights["moving_variance"][1]
        return (inputs[0] - mean) / np.sqrt(var + cfg["epsilon"]) * gamma + beta
    if kind == "Activation":
        return np.maximum(inputs[0], 0.0)
    if kind == "Concatenate":
        return np.concatenate(inputs, axis=-1)
    if kind == "Lambda":
        return inputs[0] + inputs[1] * cfg["arguments"]["scale"]
    if kind == "MaxPooling2D":
        (ph, pw), (sh, sw) = cfg["pool_size"], cfg["strides"]
        windows = sliding_window_view(inputs[0], (ph, pw), axis=(1, 2))[:, ::sh, ::sw]
        return windows.max(axis=(-2, -1))
    if kind == "GlobalAveragePooling2D":
        return inputs[0].mean(axis=(1, 2))
    if kind == "Dropout":
        return inputs[0]
    if kind == "Dense":
        out = inputs[0] @ weights["kernel"][1]
        return out + weights["bias"][1] if cfg["use_bias"] else out
    raise WeightsError(f"numpy reference cannot run {kind}")


def _np_conv(x: np.ndarray, kernel: np.ndarray, strides: tuple[int, int],
             padding: str) -> np.ndarray:
    """NHWC convolution with an HWIO kernel, TensorFlow's 'same'/'valid' padding."""
    kh, kw, cin, cout = kernel.shape
    if padding == "same":
        pads = []
        for size, k, s in ((x.shape[1], kh, strides[0]), (x.shape[2], kw, strides[1])):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, ((0, 0), *pads, (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::strides[0], ::strides[1]]
    n, ho, wo = windows.shape[:3]
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, kh * kw * cin)
    return (patches @ kernel.reshape(kh * kw * cin, cout)).reshape(n, ho, wo, cout)


# The torch model's forward, split into named stages, to read intermediate outputs.
_TORCH_STAGES = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b",
                 "conv2d_4a", "conv2d_4b", "repeat_1", "mixed_6a", "repeat_2", "mixed_7a",
                 "repeat_3", "block8")


def _torch_stages(model: InceptionResnetV1) -> Iterator[tuple[str, nn.Module]]:
    for name in _TORCH_STAGES:
        module = getattr(model, name)
        if isinstance(module, nn.Sequential):
            yield from ((f"{name}.{i}", child) for i, child in enumerate(module))
        else:
            yield name, module


def torch_forward(model: InceptionResnetV1, x: np.ndarray, stages: Collection[str]
                  ) -> dict[str, np.ndarray]:
    """Run the torch model on NHWC ``x`` in one pass; return each named stage's output
    as NHWC (``last_bn``: the un-normalised N x D embedding)."""
    wanted, found = set(stages), dict[str, np.ndarray]()
    known = {name for name, _ in _torch_stages(model)} | {"last_bn"}
    if wanted - known:
        raise WeightsError(f"no torch stages named {sorted(wanted - known)}")
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))
        for name, module in _torch_stages(model):
            if wanted <= set(found):
                break
            t = module(t)
            if name in wanted:
                found[name] = t.permute(0, 2, 3, 1).double().numpy()
        if "last_bn" in wanted:
            t = model.last_bn(model.last_linear(model.avgpool_1a(t).flatten(1)))
            found["last_bn"] = t.double().numpy()
    return found
