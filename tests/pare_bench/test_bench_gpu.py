"""bench-gpu at toy size on the CPU: every variant timed, FLOPs ideal beside the measured speedup."""

import json

from pare_bench.__main__ import main


def test_bench_gpu_toy_runs_every_variant_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench-gpu", "--toy", "--warmup", "1", "--repeats", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {row["variant"]: row for row in result["rows"]}
    assert list(rows) == ["baseline", "width", "routed", "width+routed"]
    assert all(len(row["seconds"]) == 2 and row["median_s"] > 0 for row in rows.values())
    flops = {name: row["flops_per_forward"] for name, row in rows.items()}
    assert flops["width+routed"] < min(flops["width"], flops["routed"]) < flops["baseline"]
    assert rows["routed"]["ideal_speedup"] > 1.5  # 2 of 4 blocks
    assert "of ideal" in capsys.readouterr().out


def test_bench_gpu_toy_times_both_training_stages(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench-gpu", "--toy", "--warmup", "0", "--repeats", "1", "--train-steps", "2", "--out", str(out)]) == 0
    training = json.loads(out.read_text())["training"]
    assert [row["stage"] for row in training] == ["recovery", "joint"]
    assert all(len(row["seconds"]) == 2 and row["median_s"] > 0 and row["flops_per_step"] > 0 for row in training)
