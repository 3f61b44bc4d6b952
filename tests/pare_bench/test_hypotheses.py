"""Paired comparisons decided by intervals, on hand-made records with known answers."""

import numpy as np

from pare_bench.hypotheses import compare_to_reference, verdict


def _records(system: str, values: dict[str, float], metric: str = "motion_direction") -> list[dict]:
    return [
        {"kind": "metric", "system": system, "name": name, "metric": "world", "values": {metric: v}, "held_out": False}
        for name, v in values.items()
    ]


def _manifest(*systems) -> dict:
    return {
        "suite": {"systems": [dict(name=s, **({"replica_of": s[:-3]} if s[-3:-1] == "-s" else {})) for s in systems]}
    }


def test_a_clear_gap_is_decided_and_noise_is_undecided():
    rng = np.random.default_rng(0)
    names = [f"prompt {p}-{i}" for p in range(20) for i in range(2)]
    reference = {n: 0.5 + 0.01 * rng.standard_normal() for n in names}
    worse = {n: v - 0.2 for n, v in reference.items()}
    same = {n: v + 0.05 * rng.standard_normal() for n, v in reference.items()}
    records = _records("baseline", reference) + _records("worse", worse) + _records("same", same)
    table = compare_to_reference(records, _manifest("baseline", "worse", "same"), "baseline").set_index("system")
    assert table.loc["worse", "verdict"] == "worse" and table.loc["worse", "prompts"] == 20
    assert abs(table.loc["worse", "difference"] + 0.2) < 1e-9
    assert table.loc["same", "verdict"] == "undecided"


def test_seed_replicas_are_one_system_with_an_interval_over_seeds():
    names = [f"prompt {p}-0" for p in range(10)]
    records = _records("baseline", dict.fromkeys(names, 0.5))
    for seed, shift in enumerate((0.1, 0.12, 0.08)):
        records += _records(f"pare-s{seed}", {n: 0.5 + shift for n in names})
    table = compare_to_reference(records, _manifest("baseline", "pare-s0", "pare-s1", "pare-s2"), "baseline")
    row = table.set_index("system").loc["pare"]
    assert row["seeds"] == 3 and abs(row["difference"] - 0.1) < 1e-9
    assert 0.08 - 1e-9 <= row["low_seeds"] <= row["high_seeds"] <= 0.12 + 1e-9
    assert row["verdict"] == "better"  # every prompt gives the same +0.1


def test_verdict_reads_the_metric_direction():
    assert verdict(0.1, 0.3, higher_is_better=True) == "better"
    assert verdict(0.1, 0.3, higher_is_better=False) == "worse"
    assert verdict(-0.1, 0.3, higher_is_better=True) == "undecided"
    assert verdict(0.0, 0.0, higher_is_better=True) == "same"


def test_compare_to_pairs_two_seeded_groups_with_intervals_over_both_sides_seeds():
    names = [f"prompt {p}-0" for p in range(12)]
    records = _records("baseline", dict.fromkeys(names, 0.5))
    for seed, shift in enumerate((0.20, 0.22, 0.18)):
        records += _records(f"pare-s{seed}", {n: 0.5 + shift + 0.001 * i for i, n in enumerate(names)})
    for seed, shift in enumerate((0.10, 0.12, 0.08)):
        records += _records(f"timestep-s{seed}", {n: 0.5 + shift for n in names})
    manifest = _manifest("baseline", "pare-s0", "pare-s1", "pare-s2", "timestep-s0", "timestep-s1", "timestep-s2")
    for system in manifest["suite"]["systems"]:
        if system["name"].startswith("pare"):
            system["compare_to"] = ["timestep"]
    table = compare_to_reference(records, manifest, "baseline")
    pairs = [("pare", "baseline"), ("timestep", "baseline"), ("pare", "timestep")]
    assert list(zip(table.system, table.reference)) == pairs
    row = table.iloc[2]
    assert abs(row["difference"] - (0.1 + 0.001 * 5.5)) < 1e-9 and row["verdict"] == "better"
    # replicas' means differ by 0.2 +- 0.02 vs 0.1 +- 0.02: the seed interval holds 0.1 and stays inside +-0.04 of it
    assert 0.06 <= row["low_seeds"] <= 0.1 + 0.0055 <= row["high_seeds"] <= 0.15


def test_compare_to_must_name_a_system_of_the_suite(tmp_path):
    import pytest

    from pare_bench.suite import SuiteError, load_suite

    path = tmp_path / "s.yaml"
    path.write_text(
        "suite: s\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: world:smoke\n"
        "systems:\n  - {name: baseline}\n  - {name: fbcache, cache: {first_block: {threshold: 0.1}}, "
        "compare_to: [fbcahe]}\nmetrics:\n  - {metric: world}\n"
    )
    with pytest.raises(SuiteError, match=r"systems\[1\]\.compare_to\[0\].*'fbcahe' is not a system.*did you mean"):
        load_suite(path)


def _world(system: str, prompt: str, index: int, held_out: bool, value: float) -> list[dict]:
    name = f"{prompt}-{index}"
    return [
        {"kind": "video", "system": system, "name": name, "prompt": prompt},
        {"kind": "metric", "system": system, "name": name, "metric": "world", "held_out": held_out,
         "values": {"motion_direction": value}},
    ]  # fmt: skip


def _matched_records(drop: float, noise: float, prompts: tuple[list[str], list[str]]) -> list[dict]:
    rng = np.random.default_rng(1)
    records = []
    for held_out, texts in zip((False, True), prompts):
        for prompt in texts:
            for index in range(2):
                base = 0.6 + 0.1 * rng.standard_normal()
                shift = (-drop if held_out else 0.0) + noise * rng.standard_normal()
                records += _world("baseline", prompt, index, held_out, base)
                records += _world("pare-s0", prompt, index, held_out, base + shift)
    return records


def test_heldout_gap_pairs_matched_twins_and_decides_by_the_interval():
    from pare_bench.hypotheses import heldout_gaps
    from pare_bench.tiny.world.prompts import matched_prompts

    manifest = _manifest("baseline", "pare-s0")
    gaps = heldout_gaps(_matched_records(0.2, 0.02, matched_prompts(32)), manifest, "baseline").set_index("system")
    row = gaps.loc["pare"]
    assert row["paired"] and row["prompts"] == 64 and abs(row["gap"] + 0.2) < 0.02
    assert row["high"] < 0 and row["verdict"] == "worse"
    noisy = heldout_gaps(_matched_records(0.0, 0.05, matched_prompts(32)), manifest, "baseline")
    assert noisy.iloc[0]["low"] < 0 < noisy.iloc[0]["high"] and noisy.iloc[0]["verdict"] == "undecided"


def test_heldout_gap_without_matched_twins_resamples_each_side():
    from pare_bench.hypotheses import heldout_gaps
    from pare_bench.tiny.world.prompts import split_prompts

    prompts = (split_prompts("eval"), split_prompts("heldout"))
    gaps = heldout_gaps(_matched_records(0.2, 0.02, prompts), _manifest("baseline", "pare-s0"), "baseline")
    assert not gaps.iloc[0]["paired"] and gaps.iloc[0]["verdict"] == "worse"


def test_each_comparison_carries_its_flops_ratio():
    names = [f"prompt {p}-0" for p in range(6)]
    records = _records("baseline", dict.fromkeys(names, 0.5)) + _records("half", dict.fromkeys(names, 0.4))
    records += [
        {"kind": "video", "system": s, "name": n, "steps": 20, "flops": f}
        for s, f in (("baseline", 2000), ("half", 990))
        for n in names[:2]
    ]
    row = compare_to_reference(records, _manifest("baseline", "half"), "baseline").iloc[0]
    assert abs(row["flops_ratio"] - 0.495) < 1e-12
    uncounted = compare_to_reference(_records("baseline", {"p-0": 1.0}) + _records("x", {"p-0": 1.0}),
                                     _manifest("baseline", "x"), "baseline")  # fmt: skip
    assert np.isnan(uncounted.iloc[0]["flops_ratio"])
