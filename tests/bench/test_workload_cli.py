"""``python -m bench.workload`` as a user runs it, against the real stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.webapp.stack import ROOT, WebStack


def test_workload_cli_reports_and_writes_results(web_stack: WebStack, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for n, colour in enumerate([(250, 0, 0), (0, 250, 0), (0, 0, 250)]):
        Image.new("RGB", (64, 64), colour).save(images / f"blank_{n}.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("Image,Results\nblank_0,NoFace\nblank_1,NoFace\nblank_2,Paul\n")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.workload", "--url", web_stack.url, "--images",
         str(images), "--labels", str(labels), "-n", "12", "-c", "4", "--out", str(out),
         "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    # blank_2 is labelled Paul but has no face: 4 wrong answers, so exit status 1.
    assert proc.returncode == 1, proc.stderr
    assert "completed 12, failed 0, correct 8, wrong 4" in proc.stdout
    written = sorted(p.suffix for p in out.iterdir())
    assert written == [".json", ".png"]
    summary = json.loads(next(out.glob("*.json")).read_text())
    assert summary["requests"] == 12 and summary["latency_s"]["p99"] > 0
    assert len(summary["wrong_answers"]) == 4


def test_workload_cli_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.workload", "--images", str(tmp_path / "missing.zip")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'missing.zip'} does not exist; give a " \
        "folder of images or a .zip"
