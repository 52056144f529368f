"""Simulator invariants: every request completes exactly once, never above max,
reproducible; our policy's warm pool shows on a second burst; the CLI writes outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.plan import Actions
from autoscaler.simulate.__main__ import cdf_points, main
from autoscaler.simulate.engine import Simulation, Workload, simulate
from autoscaler.simulate.model import SimConfig
from autoscaler.simulate.policies import all_policies
from autoscaler.simulate.traces import (
    TRACE_NAMES,
    all_traces,
    burst,
    burst_twice,
    spiky,
    step,
    trace,
)

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


# ---- at scale: --scale, --backlog-per-instance, the idle index -------------------------


def test_scaled_traces_multiply_the_load_and_say_so() -> None:
    base, tenfold = trace("step"), trace("step", 10)
    assert base.name == "step" and tenfold.name == "step@10x"
    assert 9 < len(tenfold.arrivals) / len(base.arrivals) < 11
    assert tenfold.horizon == base.horizon  # the timing is unchanged
    burst_x = trace("burst-1000x100", 100)
    assert (burst_x.requests, burst_x.clients) == (100_000, 10_000)
    spikes, spikes_x = trace("poisson-spikes"), trace("poisson-spikes", 2)
    assert 1.8 < len(spikes_x.arrivals) / len(spikes.arrivals) < 2.2
    assert set(all_traces()) == set(TRACE_NAMES)
    assert [w.name for w in all_traces().values()] == [
        "burst-1000x100", "burst-twice-1000x100", "step", "diurnal", "poisson-spikes"]
    with pytest.raises(ValueError):
        trace("step", 0)
    with pytest.raises(KeyError):
        trace("nope")


class NaiveDispatch(Simulation):
    """The engine as it was before the idle index: every instance scanned by slot."""

    def _dispatch(self) -> None:
        for inst in sorted(self.insts.values(), key=lambda i: i.slot):
            if not self.queue:
                return
            if inst.state == "idle" and inst.draining is None:
                rid = self.queue.popleft()
                self._set_state(inst, "busy")
                inst.request = rid
                self._at(self.now + self._service(), "done", inst.id, rid)


@pytest.mark.parametrize("policy", ["ours", "keda", "original"])
def test_idle_index_hands_out_work_exactly_as_a_full_scan(policy: str) -> None:
    config = SimConfig(max_instances=40, cold_boot_s=20, warm_start_s=5, service_s=0.5)
    workload = spiky(base=20, length=300, spikes=2, spike_size=400)
    indexed = Simulation(config, all_policies(40)[policy](), workload)
    naive = NaiveDispatch(config, all_policies(40)[policy](), workload)
    a, b = indexed.run(), naive.run()
    assert a.summary() == b.summary() and a.latencies == b.latencies
    assert a.max_active == 40  # the spikes fill the fleet: many instances idle at once
    assert set(indexed.idle) == {i.id for i in indexed.insts.values() if i.state == "idle"}


def test_a_fleet_of_hundreds_at_hundreds_of_requests_per_second() -> None:
    config = SimConfig(max_instances=300)
    result = simulate(config, all_policies(300)["ours"], step(rate=700, length=60, tail=120))
    assert result.completed == result.submitted == len(result.latencies) > 35_000
    assert 100 < result.max_active <= 300  # 700/s x 0.13 s needs about 91 busy instances


def test_cdf_points_are_bounded_and_end_at_one() -> None:
    xs, ys = cdf_points([float(i) for i in range(10_007, 0, -1)], points=100)
    assert len(xs) == len(ys) <= 101
    assert xs == sorted(xs) and ys == sorted(ys) and ys[-1] == 1.0 and xs[-1] == 10_007
    assert cdf_points([0.5, 0.25]) == ([0.25, 0.5], [0.5, 1.0])
    assert cdf_points([]) == ([], [])


def test_cli_scale_and_backlog_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    out = tmp_path / "x3"
    assert main(["--out", str(out), "--traces", "step", "--policies", "ours", "--max", "30",
                 "--scale", "3", "--backlog-per-instance", "1"]) == 0
    assert "| step@3x | ours |" in capsys.readouterr().out
    data = json.loads((out / "simulate.json").read_text())
    assert data["scale"] == 3 and data["ours_settings"]["backlog_per_instance"] == 1.0
    assert data["ours_settings"]["max_instances"] == 30
    (row,) = data["results"]
    assert row["completed"] == len(trace("step", 3).arrivals) and row["max_instances"] <= 30
    for bad in (["--scale", "0"], ["--backlog-per-instance", "-1"]):
        assert main(["--out", str(out), "--traces", "step", *bad]) == 2
