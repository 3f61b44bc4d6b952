"""The run directory: manifest, records, frames and videos, all written atomically.

Layout (DESIGN.md "Results"):

    DIR/manifest.json              suite + hash, git sha, versions, hardware, metric conventions
    DIR/records.jsonl              one line per work item and per metric value
    DIR/frames/<system>/<prompt>-<index>.npz   uint8 (F, H, W, 3), the exact pixels every metric reads
    DIR/videos/<system>/<prompt>-<index>.mp4   for viewing and for VBench

A record line is appended only after the files it refers to are in place, so a crash at any point
leaves either a complete work item or none; a torn last line is ignored on reading.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from pare_bench.checkpoint import atomic_write_bytes
from pare_bench.records import record_line

VIDEO_FPS = 8


class RunDirError(RuntimeError):
    pass


def video_name(prompt: str, index: int) -> str:
    """VBench's file naming: `{prompt}-{index}`."""
    return f"{prompt}-{index}"


def encode_mp4(frames: np.ndarray, fps: int = VIDEO_FPS, lossless: bool = False) -> bytes:
    """(F, H, W, 3) uint8 -> H.264 mp4 bytes, a pure function of the frames (one encoder thread).

    `lossless`: RGB H.264 (libx264rgb, 4:4:4) at QP 0, which decodes to exactly `frames`. The tiny world
    uses it: at 24x24, 4:2:0 chroma subsampling smeared every colour edge by up to 122 levels, so VBench
    judged other pixels than every other metric. Real-model videos keep VBench's usual yuv420p.
    """
    buffer = io.BytesIO()
    import av  # PyAV, imported where videos are written: training alone (`run --train-only`) needs none

    with av.open(buffer, mode="w", format="mp4") as container:
        if lossless:
            stream = container.add_stream("libx264rgb", rate=fps, options={"qp": "0"})
            stream.pix_fmt = "rgb24"
        else:
            stream = container.add_stream("libx264", rate=fps, options={"crf": "10"})
            stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # the `threads` option alone left PyAV's automatic count
        stream.height, stream.width = frames.shape[1:3]
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


class RunStore:
    def __init__(self, root: Path, shard: int | None = None):
        """`shard`: this process's rank in a split run; its new records go to `records.rank<shard>.jsonl`
        and `merge_shards` (rank 0, after a barrier) moves them into `records.jsonl`."""
        self.root = Path(root)
        self.records_path = self.root / "records.jsonl"
        self.append_path = self.records_path if shard is None else self.root / f"records.rank{shard}.jsonl"

    def merge_shards(self) -> int:
        """Append every shard's records not already in records.jsonl, then delete the shards; returns how many."""
        seen = {json.dumps(r, sort_keys=True) for r in self.records()}
        merged = 0
        for shard in sorted(self.root.glob("records.rank*.jsonl")):
            for record in self._read(shard):
                line = json.dumps(record, sort_keys=True)
                if line not in seen:
                    self.append(record)
                    seen.add(line)
                    merged += 1
            shard.unlink()
        return merged

    def prepare(self, manifest: dict) -> None:
        """Create the directory, or check that an existing one belongs to the same suite."""
        existing = self.root / "manifest.json"
        if existing.exists():
            old = json.loads(existing.read_text())
            if old["suite_hash"] != manifest["suite_hash"]:
                raise RunDirError(
                    f"{self.root} holds a run of a different suite (hash {old['suite_hash']}, now "
                    f"{manifest['suite_hash']}); pass a new --out, or --fresh to start over"
                )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(existing, json.dumps(manifest, indent=2, default=str).encode())
        except OSError as error:
            raise RunDirError(f"cannot write the run directory {self.root}: {error}") from error

    def note_in_manifest(self, section: str, values: dict) -> None:
        """Merge `values` into one section of manifest.json (the load average at the end of a run, say)."""
        path = self.root / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest.setdefault(section, {}).update(values)
        atomic_write_bytes(path, json.dumps(manifest, indent=2, default=str).encode())

    def append(self, record: dict) -> None:
        """Write one record (validated against `pare_bench.records`: a wrong field fails here)."""
        line = json.dumps(record_line(record), sort_keys=True) + "\n"
        with open(self.append_path, "a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[dict]:
        records = self._read(self.records_path)
        return records if self.append_path == self.records_path else records + self._read(self.append_path)

    @staticmethod
    def _read(path: Path) -> list[dict]:
        if not path.exists():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write; its work item is redone
        return records

    def frames_path(self, system: str, name: str) -> Path:
        return self.root / "frames" / system / f"{name}.npz"

    def save_frames(self, system: str, name: str, frames: np.ndarray) -> None:
        path = self.frames_path(system, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, frames=frames)
        atomic_write_bytes(path, buffer.getvalue())

    def load_frames(self, system: str, name: str) -> np.ndarray:
        with np.load(self.frames_path(system, name)) as data:
            return data["frames"]

    def save_bytes(self, relative: Path, data: bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)

    def video_path(self, system: str, name: str) -> Path:
        return self.root / "videos" / system / f"{name}.mp4"

    def save_video(
        self, system: str, name: str, frames: np.ndarray, fps: int = VIDEO_FPS, lossless: bool = False
    ) -> None:
        path = self.video_path(system, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, encode_mp4(frames, fps, lossless))
