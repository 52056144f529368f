"""FACEFLEET_DEVICE: where the models run."""

from __future__ import annotations

import pytest
import torch

from recognition.errors import RecognitionError
from recognition.pipeline import torch_device


def test_auto_takes_the_gpu_only_when_torch_sees_one() -> None:
    assert torch_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert torch_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_an_error_not_a_silent_fallback() -> None:
    with pytest.raises(RecognitionError, match="FACEFLEET_DEVICE=cuda"):
        torch_device("cuda")
