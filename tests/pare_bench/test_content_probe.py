from pare_bench.tiny.content_probe import probe_content
from pare_bench.tiny.zoo import load_tiny


def test_motion_features_tell_moving_from_still_where_the_mean_token_cannot():
    rows = probe_content(load_tiny("tiny-wan-t2v"), scenes=160, times=(0.25,))
    moving = next(r for r in rows if r["target"] == "moving")
    assert moving["chance"] == 0.5
    assert moving["motion"] > 0.9, moving  # the frame-to-frame change sees motion (1.000 at 400 scenes)
    assert abs(moving["mean"] - 0.5) < 0.15, moving  # the mean token is a linear function of the mean patch
    assert {r["target"] for r in rows} == {"moving", "objects", "direction"}
