"""What awaiting a result costs: Celery's S3 polling vs facefleet's completion signal.

    python -m bench.completion [-n 60]

Starts its own embedded stack (moto, one worker) on free ports, then, interleaved so
every mode sees the same machine, times one request at a time of the same image:

- ``inprocess``: ``Recognizer.recognize`` in this process (the floor);
- ``signal``: ``RecognitionClient.submit`` + ``wait`` with the SQS reply-queue signal;
- ``celery_poll``: the same, awaited with Celery's ``AsyncResult.get`` (S3, 0.5 s).

The overhead of a mode is its percentile minus the in-process one (the bars:
p50 ≤ +60 ms, p99 ≤ +200 ms). Writes ``results/completion.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.common import new_figure, percentile, save_figure, write_json
from config.serving import ServingSettings
from config.settings import Settings
from config.stack import StackSettings
from config.web import WebSettings
from deploy.embedded_aws import free_port
from deploy.stack import _procs, _stop, start
from recognition.pipeline import Recognizer
from recognition.weights.sdist import celebrity_dataset
from tasks.client import RecognitionClient

CSE546_ZIP = Path(__file__).resolve().parents[2] / "shared/data/cse546/face_images_1000.zip"
P50_BAR_S, P99_BAR_S = 0.060, 0.200
MODES = ("inprocess", "signal", "celery_poll")


def probe_image(settings: Settings) -> tuple[str, bytes]:
    """CSE546 ``test_000.jpg`` when ../shared is there, else a celebrity photo."""
    if CSE546_ZIP.exists():
        with zipfile.ZipFile(CSE546_ZIP) as archive:
            return "test_000.jpg", archive.read("face_images_1000/test_000.jpg")

    path = sorted((celebrity_dataset(settings.cache_dir) / "val" / "madonna").iterdir())[0]
    return path.name, path.read_bytes()


def measure(n: int, warmup: int = 5) -> dict[str, Any]:
    """Run the stack, time ``n`` rounds of every mode, stop the stack."""
    settings = Settings.from_env({"FACEFLEET_AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    serving = ServingSettings.from_env()
    with tempfile.TemporaryDirectory() as folder:
        stack = StackSettings(workers=1, autoscale=False, state_dir=Path(folder))
        web = WebSettings(bind=f"127.0.0.1:{free_port()}")
        state = start(settings, serving, stack, web, say=lambda m: print(m, flush=True))
        try:
            return _rounds(settings, serving, n, warmup)
        finally:
            _stop(list(reversed(_procs(state))))


def _rounds(settings: Settings, serving: ServingSettings, n: int,
            warmup: int) -> dict[str, Any]:
    name, data = probe_image(settings)
    recognizer = Recognizer.from_settings(settings)
    clients = {"signal": RecognitionClient(settings, serving, completion_signal=True),
               "celery_poll": RecognitionClient(settings, serving, completion_signal=False)}
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for index in tqdm(range(warmup + n), desc="rounds", unit="round"):
            for mode in MODES:
                started = time.perf_counter()
                if mode == "inprocess":
                    recognizer.recognize(data)
                else:
                    client = clients[mode]
                    client.wait(client.submit(data, name), timeout=60)
                if index >= warmup:
                    times[mode].append(time.perf_counter() - started)
    finally:
        for client in clients.values():
            client.close()
    return {"image": name, "n": n, "times": times, **summarize(times)}


def summarize(times: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Percentiles per mode and each mode's overhead over in-process (seconds)."""
    stats = {mode: {f"p{q}": percentile(values, q) for q in (50, 90, 99)}
             for mode, values in times.items() if values}
    floor = stats["inprocess"]
    overhead = {mode: {q: stats[mode][q] - floor[q] for q in ("p50", "p99")}
                for mode in stats if mode != "inprocess"}
    verdict = {mode: o["p50"] <= P50_BAR_S and o["p99"] <= P99_BAR_S
               for mode, o in overhead.items()}
    return {"stats": stats, "overhead": overhead, "meets_bar": verdict}


def plot(times: dict[str, Sequence[float]]) -> Path:
    """CDF of the latency per mode."""
    fig, axes = new_figure()
    ax = axes[0][0]
    for mode, values in times.items():
        ordered = sorted(v * 1000 for v in values)
        ax.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=mode)
    ax.set_xlabel("latency of one request (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("awaiting a result: Celery's S3 polling vs the completion signal")
    ax.legend()
    return save_figure(fig, "completion")


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, write JSON + PNG, print one line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=60, help="timed rounds per mode")
    args = parser.parse_args(argv)
    result = measure(args.n)
    write_json("completion", result)
    plot(result["times"])
    o, s = result["overhead"], result["stats"]
    print(f"in-process p50 {s['inprocess']['p50'] * 1000:.0f} ms; overhead p50/p99: "
          f"signal +{o['signal']['p50'] * 1000:.0f}/+{o['signal']['p99'] * 1000:.0f} ms, "
          f"celery polling +{o['celery_poll']['p50'] * 1000:.0f}/"
          f"+{o['celery_poll']['p99'] * 1000:.0f} ms (bar +60/+200 ms); "
          f"results/completion.json")
    return 0 if result["meets_bar"]["signal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
