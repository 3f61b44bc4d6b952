"""`score DIR`: score a folder of someone else's mp4 files, as `vbench evaluate --videos_path DIR` does.

Files are named as VBench names them, `{prompt}-{index}.mp4`. Every metric that needs no generation runs:
VBench dimensions, FID against a reference folder, paired PSNR/SSIM/LPIPS against a reference folder
holding files of the same names, and, for videos of the tiny world (`--world`), the world metrics. The
output is a run directory like `run` writes (records, leaderboard, report), so `report`, `export` and
`compare` read it too.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
from rich.console import Console

from pare_bench.intervals import print_end_of_run
from pare_bench.manifest import build_manifest
from pare_bench.metrics import get_metric
from pare_bench.metrics.fid import InceptionFeatures, inception_fid, load_world_features
from pare_bench.report import write_outputs
from pare_bench.runner import compute_metrics
from pare_bench.store import VIDEO_FPS, RunStore
from pare_bench.suite import MetricSpec, Suite, SystemSpec, suite_hash
from pare_bench.vbench_phase import compute_vbench

REFERENCE_NAME = "reference"


class ScoreError(ValueError):
    """Bad input to `score`: names the folder or files and what to fix."""


def video_files(folder: Path) -> dict[str, Path]:
    """`{prompt}-{index}` -> path for every mp4 in `folder`; names that do not fit are refused together."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScoreError(f"{folder} is not a folder of mp4 files")
    files = {path.stem: path for path in sorted(folder.glob("*.mp4"))}
    if not files:
        raise ScoreError(f"no .mp4 files in {folder}")
    bad = [name for name in files if not name.rpartition("-")[2].isdigit()]
    if bad:
        raise ScoreError(f"files not named '{{prompt}}-{{index}}.mp4' (VBench's naming) in {folder}: {bad[:5]}")
    return files


def decode(path: Path) -> np.ndarray:
    """(F, H, W, 3) uint8 frames of an mp4 file."""
    with av.open(io.BytesIO(path.read_bytes())) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def scoring_suite(name: str, reference: bool, metrics: list[str], dimensions: list[str], world: bool) -> Suite:
    """The run's description: the scored folder (and the reference folder) as systems, and the metrics asked."""
    systems = [SystemSpec(name=name)] + ([SystemSpec(name=REFERENCE_NAME)] if reference else [])
    specs = []
    for metric in metrics:
        info = get_metric(metric)
        if info.kind == "paired" or info.kind == "distribution":
            if not reference:
                raise ScoreError(f"metric {metric!r} compares with a reference folder: pass --reference DIR")
            specs.append(MetricSpec(metric=metric, reference=REFERENCE_NAME))
        elif info.kind == "world" and not world:
            raise ScoreError("the world metrics read videos of the tiny world only: pass --world for those")
        elif info.kind == "vbench":
            specs.append(MetricSpec(metric="vbench", dimensions=dimensions or ["temporal_flickering"]))
        elif info.kind == "world":
            specs.append(MetricSpec(metric=metric))
        else:
            raise ScoreError(f"metric {metric!r} ({info.kind}) is measured while generating, not on finished videos")
    return Suite(
        suite=f"score-{name}",
        task="t2v",
        model="tiny-wan-t2v" if world else "videos",
        prompts="folder",
        systems=systems,
        metrics=specs,
    )


def _ingest(store: RunStore, system: str, files: dict[str, Path]) -> None:
    """Frames (decoded) and the mp4 bytes as given, with one video record each."""
    done = {(r["system"], r["name"]) for r in store.records() if r["kind"] == "video"}
    for name, path in files.items():
        if (system, name) in done:
            continue
        frames = decode(path)
        store.save_frames(system, name, frames)
        store.save_bytes(Path("videos") / system / path.name, path.read_bytes())
        prompt, _, index = name.rpartition("-")
        store.append(
            {"kind": "video", "system": system, "name": name, "prompt": prompt, "index": int(index), "seed": None}
            | {"seconds": len(frames) / VIDEO_FPS, "vbench_long": False}
        )


def _fid(store: RunStore, suite: Suite, world: bool, console: Console) -> None:
    specs = [spec for spec in suite.metrics if get_metric(spec.metric).kind == "distribution"]
    if not specs or any(r["kind"] == "distribution" for r in store.records()):
        return
    system = suite.systems[0].name
    names = [r["name"] for r in store.records() if r["kind"] == "video" and r["system"] == system]
    generated = [store.load_frames(system, n) for n in names]
    references = [store.load_frames(REFERENCE_NAME, n) for n in names]
    value = (
        get_metric("fid").compute(load_world_features(), generated, references)
        if world
        else inception_fid(InceptionFeatures(), generated, references)
    )
    console.print(f"fid {system}: {value:.4g} ({len(names)} videos against {len(references)} references)")
    store.append({"kind": "distribution", "system": system, "metric": "fid", "value": value, "videos": len(names)})


def score_folder(
    videos: Path,
    reference: Path | None,
    metrics: list[str],
    dimensions: list[str],
    world: bool,
    out: Path,
    console: Console | None = None,
) -> Path:
    console = console or Console(stderr=True)
    files = video_files(videos)
    reference_files = video_files(reference) if reference else {}
    missing = sorted(set(files) - set(reference_files)) if reference else []
    if missing:
        raise ScoreError(f"{len(missing)} videos have no file of the same name in {reference}: {missing[:5]}")
    suite = scoring_suite(Path(videos).resolve().name, reference is not None, metrics, dimensions, world)
    store = RunStore(out)
    store.prepare(build_manifest(suite, Path(videos), suite_hash(suite), sorted({n.rpartition("-")[0] for n in files})))
    _ingest(store, suite.systems[0].name, files)
    if reference:
        _ingest(store, REFERENCE_NAME, {name: reference_files[name] for name in files})
    compute_metrics(store, suite, console)
    _fid(store, suite, world, console)
    vbench = [d for spec in suite.metrics if spec.metric == "vbench" for d in spec.options["dimensions"]]
    if vbench:
        compute_vbench(store, suite, vbench, console)
    leaderboard = write_outputs(store)
    print_end_of_run(store.records(), leaderboard, REFERENCE_NAME if reference else None, console)
    console.print(f"scores written to {store.root} (leaderboard.csv, report.md)")
    return store.root
