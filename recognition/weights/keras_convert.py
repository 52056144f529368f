"""Convert Sandberg's Keras FaceNet (``facenet_keras.h5``) into facenet-pytorch's
``InceptionResnetV1``, reading the file with h5py alone (no TensorFlow, no Keras).

The converter proves itself rather than trusting a name table:

* every layer in the file's own ``model_config`` is accounted for, by class;
* Keras layer names are mapped to torch modules by structure (block family and index,
  branch number, position in the branch's chain found by walking the graph), never by
  position in the config, which lists layers in graph order, not module order;
* each conv, pooling and batch-norm hyper-parameter in the config is checked against
  the torch module it lands in (kernel, stride, padding, bias, activation, axis);
* block residual scales (the ``*_ScaleSum`` Lambda layers' ``scale`` argument) and
  batch-norm epsilons are read from the config and set on the modules;
* every tensor in the file is consumed exactly once with a matching shape, every
  state key (facenet-pytorch state minus ``num_batches_tracked``) is filled exactly
  once, and the state is loaded strictly;
* a pure-numpy interpreter of the Keras graph, fed the raw HWIO arrays, agrees with
  the converted torch module on a random input: the stem, the first Block35 and the
  whole network's raw embedding, on every conversion.

Anything that does not fit raises :class:`WeightsError` saying what and where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1
from facenet_pytorch.models.inception_resnet_v1 import (
    BasicConv2d,
    Block8,
    Block17,
    Block35,
)
from torch import nn

from recognition.errors import WeightsError
from recognition.weights.keras_h5 import KerasLayer, KerasModel, read_keras_h5
from recognition.weights.keras_reference import numpy_forward, torch_forward

# Keras block families and the facenet-pytorch attributes that hold them, in order:
# Block8_1..5 are repeat_3[0..4] and Block8_6 is the separate final ``block8``.
BLOCK_FAMILIES: dict[str, tuple[str, ...]] = {
    "Block35": ("repeat_1",),
    "Block17": ("repeat_2",),
    "Block8": ("repeat_3", "block8"),
}
MIXED = {"Mixed_6a": "mixed_6a", "Mixed_7a": "mixed_7a"}
# Layer classes whose semantics the converter and the numpy reference understand.
KNOWN_CLASSES = frozenset({
    "InputLayer", "Conv2D", "BatchNormalization", "Activation", "Concatenate", "Lambda",
    "MaxPooling2D", "GlobalAveragePooling2D", "Dropout", "Dense",
})
# Layers checked numerically on every conversion (about 2 s): the stem isolates the
# HWIO→OIHW layout, the first Block35 one residual block (branches, concat order,
# scale, bias), and the bottleneck batch norm is the whole network's raw embedding.
NUMERIC_CHECKS = ("Conv2d_1a_3x3_Activation", "Block35_1_Activation", "Bottleneck_BatchNorm")
NUMERIC_TOLERANCE = 1e-3  # relative to the reference output's largest magnitude

_BLOCK_RE = re.compile(r"^(?P<family>Block35|Block17|Block8)_(?P<index>\d+)(?:_(?P<rest>.+))?$")
_MIXED_RE = re.compile(r"^(?P<mixed>Mixed_6a|Mixed_7a)(?:_(?P<rest>.+))?$")
_STEM_RE = re.compile(r"^Conv2d_(?P<id>\d[a-z])_\d+x\d+$")
_BRANCH_RE = re.compile(r"^Branch_(?P<branch>\d+)_")


@dataclass(frozen=True)
class ConversionReport:
    """What the conversion proved; ``summary()`` is the JSON recorded beside the weights."""

    keras_version: str
    source_tensors: int  # datasets in the h5, each consumed exactly once
    target_keys: int  # state keys filled exactly once (num_batches_tracked excluded)
    synthesized_gammas: int  # batch-norm weights set to 1 because the config has scale=False
    embedding_dim: int
    block_scales: tuple[tuple[str, float], ...]  # torch block path -> scale from the config
    bn_eps: tuple[tuple[str, float], ...]  # torch batch-norm path -> epsilon from the config
    numeric_checks: tuple[tuple[str, float], ...]  # Keras layer -> relative max abs diff

    def module_settings(self) -> tuple[tuple[str, float], ...]:
        """Every non-tensor module attribute the conversion set, as (``path.attr``, value)."""
        return tuple(
            [(f"{path}.scale", value) for path, value in self.block_scales]
            + [(f"{path}.eps", value) for path, value in self.bn_eps]
        )

    def summary(self) -> dict[str, Any]:
        """A compact JSON-able account (distinct scales per block family, distinct eps)."""
        scales: dict[str, list[float]] = {}
        for path, value in self.block_scales:
            group = path.split(".")[0]
            if value not in scales.setdefault(group, []):
                scales[group].append(value)
        return {
            "keras_version": self.keras_version,
            "source_tensors": self.source_tensors,
            "target_keys": self.target_keys,
            "synthesized_gammas": self.synthesized_gammas,
            "embedding_dim": self.embedding_dim,
            "block_scales": scales,
            "bn_eps": sorted({value for _, value in self.bn_eps}),
            "numeric_checks": dict(self.numeric_checks),
        }


# ----------------------------------------------------------------------------- mapping


@dataclass
class _Filler:
    """Fills a state dict key by key; refuses reuse of a tensor or of a key."""

    model: KerasModel
    expected: dict[str, torch.Size]
    filled: dict[str, torch.Tensor] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)
    synthesized: int = 0

    def take(self, layer: str, short: str) -> np.ndarray:
        try:
            path, array = self.model.weights[layer][short]
        except KeyError:
            raise WeightsError(f"layer {layer} has no '{short}' tensor in the file") from None
        if path in self.consumed:
            raise WeightsError(f"tensor {path} would be used twice")
        self.consumed.add(path)
        return array

    def put(self, key: str, array: np.ndarray, source: str) -> None:
        if key not in self.expected:
            raise WeightsError(f"{source} maps to {key}, which the torch model does not have")
        if key in self.filled:
            raise WeightsError(f"{source} would fill {key} a second time")
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if tensor.shape != self.expected[key]:
            raise WeightsError(f"{source} has shape {tuple(tensor.shape)} but {key} needs "
                               f"{tuple(self.expected[key])}")
        self.filled[key] = tensor


def _scope(model: nn.Module, name: str) -> tuple[str, str] | None:
    """(torch path of the enclosing stem conv / block / mixed module, rest of the name)."""
    if match := _BLOCK_RE.match(name):
        paths = _family_paths(model, match["family"])
        index = int(match["index"])
        if not 1 <= index <= len(paths):
            raise WeightsError(f"{name}: the torch model has {len(paths)} "
                               f"{match['family']} blocks")
        return paths[index - 1], match["rest"] or ""
    if match := _MIXED_RE.match(name):
        return MIXED[match["mixed"]], match["rest"] or ""
    if match := _STEM_RE.match(name.removesuffix("_BatchNorm").removesuffix("_Activation")):
        return f"conv2d_{match['id']}", ""
    return None


def _family_paths(model: nn.Module, family: str) -> list[str]:
    paths: list[str] = []
    for attr in BLOCK_FAMILIES[family]:
        module = getattr(model, attr)
        if isinstance(module, nn.Sequential):
            paths += [f"{attr}.{i}" for i in range(len(module))]
        else:
            paths.append(attr)
    return paths


def _branch_prefix(name: str) -> str | None:
    """``Block35_1_Branch_2_`` for any layer inside that branch, else None."""
    match = re.match(r"^(.*?_Branch_\d+_)", name)
    return match[1] if match else None


def _chain_position(km: KerasModel, name: str) -> int:
    """How many convs precede ``name`` in its branch, following the graph backwards."""
    prefix = _branch_prefix(name)
    if prefix is None:
        return 0
    position, current = 0, km.layers[name]
    while len(current.inbound) == 1 and current.inbound[0].startswith(prefix):
        current = km.layers[current.inbound[0]]
        position += current.class_name == "Conv2D"
    return position


def _conv_target(torch_model: nn.Module, km: KerasModel, name: str) -> tuple[str, bool]:
    """(torch module path, is a BasicConv2d) for a Keras Conv2D layer."""
    scope = _scope(torch_model, name)
    if scope is None:
        raise WeightsError(f"cannot place Keras conv layer {name} in InceptionResnetV1")
    path, rest = scope
    if not rest:  # a stem conv: conv2d_1a ... conv2d_4b
        return path, True
    if branch := _BRANCH_RE.match(rest):
        path = f"{path}.branch{branch['branch']}"
        module = torch_model.get_submodule(path)
        position = _chain_position(km, name)
        if isinstance(module, nn.Sequential):
            path = f"{path}.{position}"
        elif position != 0:
            raise WeightsError(f"{name} is conv #{position} of its branch, but {path} "
                               "holds a single conv")
        return path, True
    if rest == "Conv2d_1x1":  # a residual block's up-projection, with bias
        return f"{path}.conv2d", False
    raise WeightsError(f"cannot place Keras conv layer {name} in InceptionResnetV1")


def _check_conv(name: str, cfg: dict[str, Any], conv: nn.Module) -> None:
    if not isinstance(conv, nn.Conv2d):
        raise WeightsError(f"{name} maps to a {type(conv).__name__}, not a Conv2d")
    kernel, strides = tuple(cfg["kernel_size"]), tuple(cfg["strides"])
    if cfg["padding"] == "valid":
        padding_ok = conv.padding == (0, 0)
    else:  # Keras 'same' is symmetric only for stride 1 and odd kernels
        padding_ok = (cfg["padding"] == "same" and strides == (1, 1)
                      and all(k % 2 for k in kernel)
                      and conv.padding == tuple((k - 1) // 2 for k in kernel))
    problems = [
        what for what, ok in [
            ("filters", cfg["filters"] == conv.out_channels),
            ("kernel_size", kernel == conv.kernel_size),
            ("strides", strides == conv.stride),
            ("padding", padding_ok),
            ("use_bias", cfg["use_bias"] == (conv.bias is not None)),
            ("dilation_rate", tuple(cfg["dilation_rate"]) == (1, 1) == conv.dilation),
            ("activation", cfg["activation"] == "linear"),
            ("data_format", cfg["data_format"] == "channels_last"),
        ] if not ok
    ]
    if problems:
        raise WeightsError(f"Keras {name} and torch {conv} differ in {', '.join(problems)}")


def _fill_bn(filler: _Filler, layer: KerasLayer, bn: nn.Module, path: str) -> float:
    """Fill one batch norm; return the epsilon it was given (from the config)."""
    cfg = layer.config
    if not isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d):
        raise WeightsError(f"{layer.name} maps to a {type(bn).__name__}, not a batch norm")
    if cfg["axis"] not in (-1, 3):
        raise WeightsError(f"{layer.name} normalises axis {cfg['axis']}, not channels")
    channels = bn.num_features
    if cfg["scale"]:
        gamma = filler.take(layer.name, "gamma")
    else:  # Keras scale=False: the layer has no gamma; it multiplies by 1
        gamma = np.ones(channels, np.float32)
        filler.synthesized += 1
    beta = filler.take(layer.name, "beta") if cfg["center"] else np.zeros(channels, np.float32)
    filler.put(f"{path}.weight", gamma, f"{layer.name}/gamma")
    filler.put(f"{path}.bias", beta, f"{layer.name}/beta")
    filler.put(f"{path}.running_mean", filler.take(layer.name, "moving_mean"),
               f"{layer.name}/moving_mean")
    filler.put(f"{path}.running_var", filler.take(layer.name, "moving_variance"),
               f"{layer.name}/moving_variance")
    bn.eps = float(cfg["epsilon"])
    return bn.eps


def _branch_index(name: str) -> int:
    match = re.search(r"_Branch_(\d+)_", name)
    if not match:
        raise WeightsError(f"concatenation input {name} belongs to no branch")
    return int(match[1])


def _head_config(km: KerasModel) -> tuple[KerasLayer, KerasLayer]:
    """The Dense bottleneck and the batch norm after it (the model output)."""
    dense = [layer for layer in km.layers.values() if layer.class_name == "Dense"]
    if len(dense) != 1:
        raise WeightsError(f"expected one Dense bottleneck layer, found {len(dense)}")
    after = km.consumers(dense[0].name)
    if len(after) != 1 or after[0].class_name != "BatchNormalization":
        raise WeightsError(f"{dense[0].name} is not followed by a single batch norm")
    if after[0].name != km.output:
        raise WeightsError(f"the model output is {km.output}, not {after[0].name}")
    return dense[0], after[0]


def build_model(km: KerasModel) -> tuple[InceptionResnetV1, ConversionReport]:
    """Build the torch model from a parsed Keras FaceNet, proving the mapping complete."""
    unknown = sorted({layer.class_name for layer in km.layers.values()} - KNOWN_CLASSES)
    if unknown:
        raise WeightsError(f"Keras layer classes the converter does not understand: {unknown}")
    dense, head_bn = _head_config(km)
    if dense.config["activation"] != "linear":
        raise WeightsError(f"{dense.name} has activation {dense.config['activation']}")
    model = InceptionResnetV1(pretrained=None, classify=False)
    model.last_linear = nn.Linear(model.last_linear.in_features, dense.config["units"],
                                  bias=dense.config["use_bias"])
    model.last_bn = nn.BatchNorm1d(dense.config["units"], eps=head_bn.config["epsilon"])
    mapper = _Mapper(km, model)
    for layer in km.layers.values():
        getattr(mapper, _HANDLERS[layer.class_name])(layer)
    mapper.prove_complete()

    state = {key: value for key, value in model.state_dict().items()
             if key.endswith("num_batches_tracked")}
    state.update(mapper.filler.filled)
    model.load_state_dict(state, strict=True)
    model.eval()  # the heads swapped in above start in training mode
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    report = ConversionReport(
        keras_version=km.keras_version,
        source_tensors=len(mapper.filler.consumed),
        target_keys=len(mapper.filler.filled),
        synthesized_gammas=mapper.filler.synthesized,
        embedding_dim=dense.config["units"],
        block_scales=tuple(sorted(mapper.scales.items(), key=lambda kv: order[kv[0]])),
        bn_eps=tuple(sorted(mapper.eps.items(), key=lambda kv: order[kv[0]])),
        numeric_checks=(),
    )
    return model, report


# Keras layer class -> the _Mapper method that places (or checks) it.
_HANDLERS = {
    "Conv2D": "conv", "BatchNormalization": "batch_norm", "Dense": "dense",
    "Lambda": "scale_sum", "MaxPooling2D": "max_pool", "Concatenate": "concatenate",
    "Activation": "activation", "InputLayer": "weightless",
    "GlobalAveragePooling2D": "weightless", "Dropout": "weightless",
}


class _Mapper:
    """Places each Keras layer in the torch model, checking it fits, filling the state."""

    def __init__(self, km: KerasModel, model: InceptionResnetV1) -> None:
        self.km = km
        self.model = model
        expected = {key: value.shape for key, value in model.state_dict().items()
                    if not key.endswith("num_batches_tracked")}
        self.filler = _Filler(km, expected)
        self.scales: dict[str, float] = {}  # block path -> residual scale from the config
        self.eps: dict[str, float] = {}  # batch-norm path -> epsilon from the config

    def _followed_by_relu(self, name: str) -> bool:
        after = self.km.consumers(name)
        return [(c.class_name, c.config.get("activation")) for c in after] == [
            ("Activation", "relu")]

    def conv(self, layer: KerasLayer) -> None:
        path, basic = _conv_target(self.model, self.km, layer.name)
        module = self.model.get_submodule(path)
        if basic:
            if not isinstance(module, BasicConv2d):
                raise WeightsError(f"{layer.name} maps to {path}, not a BasicConv2d")
            after = self.km.consumers(layer.name)
            if [c.class_name for c in after] != ["BatchNormalization"]:
                raise WeightsError(f"{layer.name} is not followed by exactly one batch norm")
            path, module = f"{path}.conv", module.conv
        _check_conv(layer.name, layer.config, module)
        kernel = self.filler.take(layer.name, "kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
        self.filler.put(f"{path}.weight", kernel, f"{layer.name}/kernel")
        if layer.config["use_bias"]:
            self.filler.put(f"{path}.bias", self.filler.take(layer.name, "bias"),
                            f"{layer.name}/bias")

    def batch_norm(self, layer: KerasLayer) -> None:
        if len(layer.inbound) != 1:
            raise WeightsError(f"{layer.name} has {len(layer.inbound)} inputs")
        source = self.km.layers[layer.inbound[0]]
        if source.class_name == "Dense":
            path = "last_bn"
        elif source.class_name == "Conv2D":
            basic, is_basic = _conv_target(self.model, self.km, source.name)
            if not is_basic:
                raise WeightsError(f"{layer.name} follows a residual conv; torch has none there")
            if not self._followed_by_relu(layer.name):
                raise WeightsError(f"{layer.name} is not followed by exactly one ReLU")
            path = f"{basic}.bn"
        else:
            raise WeightsError(f"{layer.name} follows a {source.class_name}")
        self.eps[path] = _fill_bn(self.filler, layer, self.model.get_submodule(path), path)

    def dense(self, layer: KerasLayer) -> None:
        kernel = self.filler.take(layer.name, "kernel").T  # (in, out) -> (out, in)
        self.filler.put("last_linear.weight", kernel, f"{layer.name}/kernel")
        if layer.config["use_bias"]:
            self.filler.put("last_linear.bias", self.filler.take(layer.name, "bias"),
                            f"{layer.name}/bias")

    def scale_sum(self, layer: KerasLayer) -> None:
        """A block's ``input + scale * conv2d(branches)``: the scale comes from the config."""
        scope = _scope(self.model, layer.name)
        if scope is None or scope[1] != "ScaleSum" or not _BLOCK_RE.match(layer.name):
            raise WeightsError(f"Lambda layer {layer.name} is not a residual block's ScaleSum")
        path = scope[0]
        residual_conv = layer.name.removesuffix("ScaleSum") + "Conv2d_1x1"
        if len(layer.inbound) != 2 or layer.inbound[1] != residual_conv:
            raise WeightsError(f"{layer.name} does not add {residual_conv} to the block input")
        if path in self.scales:
            raise WeightsError(f"two ScaleSum layers for {path}")
        block = self.model.get_submodule(path)
        block.scale = float(layer.config["arguments"]["scale"])
        self.scales[path] = block.scale
        has_relu = self._followed_by_relu(layer.name)
        torch_relu = not (isinstance(block, Block8) and block.noReLU)
        if has_relu != torch_relu:
            raise WeightsError(f"{layer.name}: ReLU after the block is {has_relu} in Keras "
                               f"but {torch_relu} in torch ({path})")

    def max_pool(self, layer: KerasLayer) -> None:
        scope = _scope(self.model, layer.name)
        if layer.name == "MaxPool_3a_3x3":
            path = "maxpool_3a"
        elif scope and (branch := _BRANCH_RE.match(scope[1])):
            path = f"{scope[0]}.branch{branch['branch']}"
        else:
            raise WeightsError(f"cannot place pooling layer {layer.name}")
        pool, cfg = self.model.get_submodule(path), layer.config
        if not (isinstance(pool, nn.MaxPool2d) and cfg["padding"] == "valid"
                and pool.padding == 0 and not pool.ceil_mode
                and tuple(cfg["pool_size"]) == (pool.kernel_size,) * 2
                and tuple(cfg["strides"]) == (pool.stride,) * 2):
            raise WeightsError(f"Keras {layer.name} {cfg} does not match torch {path} {pool}")

    def concatenate(self, layer: KerasLayer) -> None:
        if layer.config["axis"] not in (-1, 3):
            raise WeightsError(f"{layer.name} concatenates along axis {layer.config['axis']}")
        order = [_branch_index(name) for name in layer.inbound]
        if order != list(range(len(order))):  # torch.cat((x0, x1, ...)) in branch order
            raise WeightsError(f"{layer.name} concatenates branches in order {order}")

    def activation(self, layer: KerasLayer) -> None:
        if layer.config["activation"] != "relu":
            raise WeightsError(f"{layer.name} is {layer.config['activation']}, not ReLU")

    def weightless(self, layer: KerasLayer) -> None:
        """Input, global average pooling, dropout: no weights; eval() disables dropout."""

    def prove_complete(self) -> None:
        """Every file tensor used, every state key, block scale and epsilon set."""
        unused = sorted(self.km.tensor_paths - self.filler.consumed)
        if unused:
            raise WeightsError(f"{len(unused)} tensors in the file were not used, "
                               f"e.g. {unused[:3]}")
        missing = sorted(set(self.filler.expected) - set(self.filler.filled))
        if missing:
            raise WeightsError(f"{len(missing)} torch state keys were not filled, "
                               f"e.g. {missing[:3]}")
        modules = list(self.model.named_modules())
        blocks = {name for name, m in modules if isinstance(m, Block35 | Block17 | Block8)}
        if blocks != set(self.scales):
            raise WeightsError(f"blocks without a scale from the file: "
                               f"{sorted(blocks - set(self.scales))}")
        norms = {name for name, m in modules if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)}
        if norms != set(self.eps):
            raise WeightsError(f"batch norms without an epsilon from the file: "
                               f"{sorted(norms - set(self.eps))[:3]}")


def torch_stage_for(layer: str, model: InceptionResnetV1) -> str:
    """The torch stage whose output equals Keras layer ``layer``'s output."""
    if layer == "Bottleneck_BatchNorm":
        return "last_bn"
    stem = _STEM_RE.match(layer.removesuffix("_Activation"))
    if stem:
        return f"conv2d_{stem['id']}"
    scope = _scope(model, layer)
    if scope and (scope[1] in ("Activation", "ScaleSum") or layer in MIXED):
        return scope[0]
    raise WeightsError(f"no torch stage corresponds to Keras layer {layer}")


def numeric_check(km: KerasModel, model: InceptionResnetV1, layers: tuple[str, ...],
                  seed: int = 0, batch: int = 1) -> tuple[tuple[str, float], ...]:
    """Compare the numpy reference and the torch model on a random input at each layer.

    Returns (layer, max abs diff / max abs reference value); raises WeightsError when one
    exceeds NUMERIC_TOLERANCE.
    """
    x = np.random.default_rng(seed).standard_normal((batch, 160, 160, 3))
    stages = {layer: torch_stage_for(layer, model) for layer in layers}
    references = numpy_forward(km, x, layers)
    outputs = torch_forward(model, x, set(stages.values()))
    results = []
    for layer in layers:
        ref, got = references[layer], outputs[stages[layer]]
        if ref.shape != got.shape:
            raise WeightsError(f"{layer}: numpy shape {ref.shape} vs torch {got.shape}")
        diff = float(np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-12))
        if not diff <= NUMERIC_TOLERANCE:
            raise WeightsError(f"{layer}: torch output differs from the numpy reference by "
                               f"{diff:.2e} (relative); the conversion is wrong")
        results.append((layer, diff))
    return tuple(results)


def convert(h5_path: Path) -> tuple[InceptionResnetV1, ConversionReport]:
    """Convert ``facenet_keras.h5`` into an eval-mode InceptionResnetV1 and its report."""
    km = read_keras_h5(h5_path)
    model, report = build_model(km)
    checks = numeric_check(km, model, NUMERIC_CHECKS)
    return model, replace(report, numeric_checks=checks)
