import io

import av
import numpy as np
import pytest

from pare_bench.store import RunDirError, RunStore, encode_mp4


def test_torn_last_record_is_ignored(tmp_path):
    store = RunStore(tmp_path)
    store.append({"kind": "video", "name": "a"})
    with open(store.records_path, "a") as handle:
        handle.write('{"kind": "video", "na')  # a crash mid-line
    assert store.records() == [{"kind": "video", "name": "a"}]


def test_run_dir_of_another_suite_is_refused(tmp_path):
    RunStore(tmp_path).prepare({"suite_hash": "aaaa"})
    RunStore(tmp_path).prepare({"suite_hash": "aaaa"})
    with pytest.raises(RunDirError, match="different suite"):
        RunStore(tmp_path).prepare({"suite_hash": "bbbb"})


def test_unwritable_run_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError, match="cannot write"):
        RunStore(blocker / "run").prepare({"suite_hash": "aaaa"})


def test_mp4_is_reproducible_and_decodes(tmp_path):
    frames = np.zeros((8, 24, 24, 3), dtype=np.uint8)
    frames[:, 4:12, 4:12, 0] = 230
    data = encode_mp4(frames)
    assert data == encode_mp4(frames)
    with av.open(io.BytesIO(data)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 8


def test_frames_round_trip_losslessly(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (8, 24, 24, 3), dtype=np.uint8)
    store = RunStore(tmp_path)
    store.save_frames("baseline", "a red circle moving left-0", frames)
    assert np.array_equal(store.load_frames("baseline", "a red circle moving left-0"), frames)
