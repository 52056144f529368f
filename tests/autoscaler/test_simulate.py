"""Simulator invariants: every request completes exactly once, never above max,
reproducible; our policy's warm pool shows on a second burst; the CLI writes outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.plan import Actions
from autoscaler.simulate.__main__ import main
from autoscaler.simulate.engine import Simulation, Workload, simulate
from autoscaler.simulate.model import SimConfig
from autoscaler.simulate.policies import all_policies
from autoscaler.simulate.traces import burst, burst_twice, spiky, step

CONFIG = SimConfig(max_instances=5, cold_boot_s=20, warm_start_s=5, service_s=0.5)
SMALL = [burst(200, 20), step(rate=4, length=120, tail=120), spiky(base=0.5, length=600,
                                                                   spikes=2, spike_size=50)]


@pytest.mark.parametrize("workload", SMALL, ids=lambda w: w.name)
@pytest.mark.parametrize("policy", sorted(all_policies(5)))
def test_conservation_and_bounds(workload: Workload, policy: str) -> None:
    result = simulate(CONFIG, all_policies(5)[policy], workload)
    assert result.completed == result.submitted == len(result.latencies)
    assert result.submitted == (len(workload.arrivals) or workload.requests)
    assert 0 < result.max_active <= 5
    assert all(lat > 0 for lat in result.latencies)
    # billed time covers at least the work done (mean service 0.5 s, spread cv 0.2)
    assert result.instance_seconds >= 0.5 * result.completed * 0.7


def test_reproducible_with_a_seed() -> None:
    a = simulate(CONFIG, all_policies(5)["ours"], SMALL[2]).summary()
    b = simulate(CONFIG, all_policies(5)["ours"], SMALL[2]).summary()
    assert a == b


def test_warm_pool_speeds_up_the_second_burst() -> None:
    twice = burst_twice(200, 20, gap=300)
    ours = simulate(CONFIG, all_policies(5)["ours"], twice)
    cold = simulate(CONFIG, all_policies(5)["ours-cold"], twice)
    assert ours.completed == cold.completed == 400
    assert sorted(ours.latencies)[len(ours.latencies) // 2] <= sorted(
        cold.latencies)[len(cold.latencies) // 2]
    assert max(ours.latencies[200:]) < max(cold.latencies[200:])  # 5 s start vs 20 s boot


class Greedy:
    """A policy that asks for far more than max every tick."""

    name = "greedy"
    tick_s = 1.0

    def step(self, now, load, instances) -> Actions:
        return Actions(launch=100)


def test_fleet_is_bounded_by_slots_whatever_the_policy_asks() -> None:
    result = Simulation(CONFIG, Greedy(), Workload("w", [0.0, 1.0])).run()
    assert result.max_active == 5 and result.completed == 2


def test_cli_writes_table_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    code = main(["--out", str(tmp_path), "--traces", "burst-1000x100", "--policies", "ours",
                 "original", "--service-time", "0.2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| burst-1000x100 | ours |" in out and "simulate: 2 runs" in out
    data = json.loads((tmp_path / "simulate.json").read_text())
    assert {r["policy"] for r in data["results"]} == {"ours", "original"}
    assert data["config"]["service_s"] == 0.2
    assert (tmp_path / "instances.png").stat().st_size > 0
    assert (tmp_path / "latency_cdf.png").stat().st_size > 0
    assert main(["--traces", "nope"]) == 2


def test_service_time_from_a_recognizer_benchmark(tmp_path: Path) -> None:
    bench = tmp_path / "recognizer.json"
    bench.write_text(json.dumps({"latency_b1": {"mean_s": 0.25}}))
    out = tmp_path / "sim"
    assert main(["--out", str(out), "--traces", "step", "--policies", "ours",
                 "--service-from", str(bench)]) == 0
    assert json.loads((out / "simulate.json").read_text())["config"]["service_s"] == 0.25
    bench.write_text("{}")
    assert main(["--out", str(out), "--service-from", str(bench)]) == 2
