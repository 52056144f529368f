"""Helpers every benchmark shares: the results folder, JSON + PNG writers, a summary line.

Results go to ``results/<name>.json`` and ``results/<name>.png`` (overwritten each run;
``results/`` is gitignored). Each JSON carries when and where it was measured, so a
number is never read without its machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(os.environ.get("FACEFLEET_RESULTS", "results"))


def machine() -> dict[str, Any]:
    """Where a measurement was taken (CPU count, Python, platform, torch threads)."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
    if "torch" in sys.modules:  # only report torch when the benchmark uses it
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        # The device the models ran on: FACEFLEET_DEVICE as resolved here (auto picks
        # the GPU when torch sees one), so CPU and GPU figures are never mixed up.
        info["device"] = _device(torch)
    return info


def _device(torch: Any) -> dict[str, Any]:
    """FACEFLEET_DEVICE, what it resolves to, and the GPU's name when one is used."""
    from config.env import ConfigError
    from config.settings import Settings

    try:
        wanted = Settings.from_env().device
    except ConfigError as exc:
        return {"error": str(exc)}
    cuda = bool(torch.cuda.is_available())
    used = "cuda" if wanted == "cuda" or (wanted == "auto" and cuda) else "cpu"
    info: dict[str, Any] = {"setting": wanted, "used": used}
    if used == "cuda" and cuda:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_json(name: str, payload: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``payload`` plus a ``measured`` header to ``results/<name>.json``."""
    folder = results_dir or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    doc = {"benchmark": name,
           "measured": {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **machine()},
           **payload}
    path.write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    return path


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (11, 4.5)) -> Any:
    """A matplotlib (Agg) figure and its axes, without touching any display."""
    # Deferred: the backend must be chosen before pyplot is imported, and a run that
    # fails before it plots should not pay for matplotlib.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=size, squeeze=False)


def save_figure(fig: Any, name: str, results_dir: Path | None = None) -> Path:
    """Save ``fig`` to ``results/<name>.png`` and free it."""
    import matplotlib.pyplot as plt

    folder = results_dir or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(name: str, text: str, ok: bool | None = None) -> str:
    """Print and return the one-line summary: ``name: text [PASS|FAIL]``."""
    verdict = "" if ok is None else (" [PASS]" if ok else " [FAIL]")
    line = f"{name}: {text}{verdict}"
    print(line, flush=True)
    return line


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
