"""The quality-vs-speedup front on hand-made runs: curves from sweeps, trained points, matched speedups."""

import pandas as pd

from pare_bench.front import front_table, matched_speedups, nearest_points, plot_front


def _psnr(system: str, value: float, videos: int = 8) -> list[dict]:
    return [
        {"kind": "metric", "system": system, "name": f"p{i}-0", "metric": "psnr", "values": {"psnr": value + 0.01 * i}}
        for i in range(videos)
    ]


POINTS = {  # system: (speedup, FLOPs per video, psnr)
    "baseline": (1.0, 100.0, None),
    "fb-0.05": (1.2, 80.0, 30.0),
    "fb-0.1": (1.6, 60.0, 26.0),
    "fb-0.2": (2.2, 45.0, 20.0),
    "pab-2": (1.1, 90.0, 31.0),
    "pab-3": (1.3, 75.0, 29.0),
    "pare-s0": (1.9, 40.0, 28.0),
    "pare-s1": (2.1, 40.0, 28.2),
}
MANIFEST = {
    "suite": {
        "systems": [
            {"name": "baseline"},
            *({"name": f"fb-{t}", "cache": {"first_block": {}}, "sweep_of": "fb"} for t in (0.05, 0.1, 0.2)),
            *({"name": f"pab-{r}", "cache": {"pab": {}}, "sweep_of": "pab"} for r in (2, 3)),
            *({"name": f"pare-s{s}", "recipe": {}, "replica_of": "pare"} for s in (0, 1)),
        ]
    }
}


def _records():
    return [r for s, (_, _, psnr) in POINTS.items() if psnr is not None for r in _psnr(s, psnr)]


def _front():
    table = pd.DataFrame(
        {
            "speedup": {s: v[0] for s, v in POINTS.items()},
            "speedup_low": {s: v[0] - 0.05 for s, v in POINTS.items()},
            "speedup_high": {s: v[0] + 0.05 for s, v in POINTS.items()},
            "flops_per_video": {s: v[1] for s, v in POINTS.items()},
        }
    )
    return front_table(table, _records(), MANIFEST, "baseline")


def test_front_pools_seed_replicas_and_keeps_sweep_points_apart():
    front = _front().set_index("system")
    assert list(front.index) == ["baseline", "fb-0.05", "fb-0.1", "fb-0.2", "pab-2", "pab-3", "pare"]
    assert front.loc["pare", "replicas"] == 2 and abs(front.loc["pare", "speedup"] - 2.0) < 1e-9
    assert abs(front.loc["pare", "psnr"] - 28.135) < 1e-9  # the replicas' per-video mean, then over videos
    assert front.loc["pare", "ideal_speedup"] == 2.5 and abs(front.loc["pare", "of_ideal"] - 0.8) < 1e-9
    assert front.loc["fb-0.1", "kind"] == "curve" and front.loc["fb-0.1", "group"] == "fb"


def test_matched_speedups_read_each_curve_at_the_trained_systems_speedup(tmp_path):
    front = _front()
    matched = matched_speedups(front).set_index("curve")
    fb = matched.loc["fb"]
    assert abs(fb["curve_value"] - 22.035) < 1e-9  # 26 -> 20 between 1.6x and 2.2x, at 2.0x (+0.035 mean offset)
    assert fb["position"] == "above"
    assert matched.loc["pab", "position"] == "not reached"  # PAB's curve stops at 1.3x
    assert plot_front(front, tmp_path / "front.png") and (tmp_path / "front.png").stat().st_size > 0


def test_nothing_below_the_minimum_speedup_is_matched():
    front = _front()
    assert matched_speedups(front, minimum=2.5).empty


def test_a_group_has_one_colour_in_every_panel_when_the_reference_lacks_a_column(tmp_path, monkeypatch):
    # the reference has no PSNR against itself: before colours were fixed per group, every other group's colour
    # shifted by one in the PSNR panel and the single legend mislabelled it
    front = _front()
    front["motion_direction"] = front["motion_direction_low"] = front["motion_direction_high"] = 0.8
    figures = []
    monkeypatch.setattr("pare_bench.front.save_figure", lambda figure, path: figures.append(figure))
    assert plot_front(front, tmp_path / "front.png")
    colours = {}
    for axis in figures[0].axes:
        handles, labels = axis.get_legend_handles_labels()
        for handle, label in zip(handles, labels):
            colours.setdefault(label, set()).add(handle[0].get_color())
    assert "baseline" in colours and "pare" in colours
    assert all(len(found) == 1 for found in colours.values()), colours
    assert len({next(iter(found)) for found in colours.values()}) == len(colours)  # and groups differ


def test_nearest_points_pair_each_trained_system_with_each_curves_closest_point():
    # pare (2.0x: replicas at 1.9x and 2.1x) is nearest fb-0.2 (2.2x) on the fb curve and pab-3 (1.3x) on pab's;
    # every video of pare's replicas is 28.0 or 28.2 (+0.01 i) against fb-0.2's 20.0 (+0.01 i): +8.1 on each
    front = _front()
    table = nearest_points(front, _records(), MANIFEST).set_index("reference")
    assert set(table.index) == {"fb-0.2", "pab-3"}
    fb = table.loc["fb-0.2"]
    assert fb["system"] == "pare" and fb["column"] == "psnr" and abs(fb["difference"] - 8.1) < 1e-9
    assert fb["verdict"] == "better" and abs(fb["speedup_ratio"] - 2.0 / 2.2) < 1e-9
    assert abs(table.loc["pab-3", "difference"] - (28.1 - 29.0)) < 1e-9 and table.loc["pab-3", "verdict"] == "worse"
    assert nearest_points(front, _records(), MANIFEST, minimum=2.5).empty
