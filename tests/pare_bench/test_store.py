import io
import subprocess
import sys

import av
import numpy as np
import pytest

from pare_bench.store import RunDirError, RunStore, encode_mp4
from pare_bench.tiny.world.render import render_prompt

RECORD = {"kind": "distribution", "system": "s", "metric": "fid", "value": 1.5, "videos": 4}


def test_torn_last_record_is_ignored(tmp_path):
    store = RunStore(tmp_path)
    store.append(RECORD)
    with open(store.records_path, "a") as handle:
        handle.write('{"kind": "video", "na')  # a crash mid-line
    assert store.records() == [RECORD]


def test_a_record_with_a_wrong_field_is_refused_where_it_is_made(tmp_path):
    from pydantic import ValidationError

    store = RunStore(tmp_path)
    with pytest.raises(ValidationError, match="valeu"):
        store.append({**RECORD, "valeu": 2.0})  # misspelt
    with pytest.raises(ValidationError, match="videos"):
        store.append({k: v for k, v in RECORD.items() if k != "videos"})
    with pytest.raises(ValidationError, match="kind"):
        store.append({**RECORD, "kind": "vidoe"})
    assert store.records() == []


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


def _decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_tiny_world_mp4_decodes_to_exactly_its_frames_and_is_the_same_in_another_process():
    frames = render_prompt("a red circle moving left and a blue square standing still", 3).numpy()
    data = encode_mp4(frames, lossless=True)
    assert np.array_equal(_decode(data), frames)
    script = (
        "import sys, numpy as np; from pare_bench.store import encode_mp4; "
        "from pare_bench.tiny.world.render import render_prompt; "
        "frames = render_prompt('a red circle moving left and a blue square standing still', 3).numpy(); "
        "sys.stdout.buffer.write(encode_mp4(frames, lossless=True))"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True).stdout
    assert other == data


def test_frames_round_trip_losslessly(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (8, 24, 24, 3), dtype=np.uint8)
    store = RunStore(tmp_path)
    store.save_frames("baseline", "a red circle moving left-0", frames)
    assert np.array_equal(store.load_frames("baseline", "a red circle moving left-0"), frames)
