"""The VBench phase of `run`: the real vbench package on each system's mp4 files, in its own environment.

Per system, a scratch folder links the videos under the names VBench expects, `metrics.vbench.run_vbench` runs
the worker, and every per-video raw score becomes a metric record (plus the aggregate as a `vbench` record).
Videos of 5 s or longer go through VBench-Long (T2V); VBench's I2V image suite is scored through
vbench2_beta_i2v, each video against its own image, on the dimensions VBench assigns that image.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image
from rich.console import Console

from pare_bench import vbench_i2v
from pare_bench.metrics.vbench import run_vbench, vbench_mode
from pare_bench.store import RunStore
from pare_bench.suite import Suite


def _vbench_folder(
    store: RunStore, system: str, videos: list[dict], scratch: Path, mode: str, suite_images: dict | None = None
) -> tuple:
    """The folder VBench reads (links to the system's successful videos), file -> prompt, and for i2v the images.

    VBench's I2V module pairs one image with each prompt, but here a video may have its own first frame (the
    tiny world renders it from the seed), so each video becomes its own "prompt" `{name}` with file
    `{name}-0.mp4`. Its image is the one it was conditioned on: the prompt's image from VBench's I2V image
    suite (`suite_images`), else the video's first frame."""
    folder = scratch / "videos"
    folder.mkdir()
    files, images = {}, {}
    for video in videos:
        file = f"{video['name']}-0.mp4" if mode == "i2v" else f"{video['name']}.mp4"
        (folder / file).symlink_to(store.video_path(system, video["name"]).resolve())
        files[video["name"]] = file
        if mode == "i2v" and suite_images:
            images[video["name"]] = str(suite_images[video["prompt"]])
        elif mode == "i2v":
            image = scratch / "images" / f"{len(images)}.png"
            image.parent.mkdir(exist_ok=True)
            Image.fromarray(store.load_frames(system, video["name"])[0]).save(image)  # the conditioning frame
            images[video["name"]] = str(image)
    prompts = {files[v["name"]]: (v["name"] if mode == "i2v" else v["prompt"]) for v in videos}
    return folder, files, prompts, images


def compute_vbench(
    store: RunStore,
    suite: Suite,
    dimensions: list[str],
    console: Console,
    image_suite: tuple[Path, str] | None = None,
) -> None:
    """The real VBench on each system's mp4 files; every per-video raw score becomes a metric record. Videos of
    5 s or longer go through VBench-Long. `image_suite`: (folder, crop ratio) of VBench's I2V image suite the
    videos were conditioned on (their images, and the dimensions VBench scores each image on)."""
    suite_images = per_image = None
    if image_suite is not None:
        suite_images = vbench_i2v.images(*image_suite)
        per_image = vbench_i2v.dimensions(image_suite[0])
    records = store.records()
    done = {r["system"] for r in records if r["kind"] == "vbench"}
    mode = vbench_mode(suite, dimensions)
    for system in (s.name for s in suite.systems if s.name not in done):
        videos = [r for r in records if r["kind"] == "video" and r["system"] == system and "failed" not in r]
        if not videos:
            continue
        long = mode != "i2v" and any(v.get("vbench_long") for v in videos)
        console.print(f"vbench {system}: {', '.join(dimensions)} on {len(videos)} videos ({mode}{', long' * long})")
        with tempfile.TemporaryDirectory() as scratch:  # only the videos that succeeded, as VBench reads a folder
            folder, files, prompts, images = _vbench_folder(store, system, videos, Path(scratch), mode, suite_images)
            image_dimensions = None
            if per_image is not None:
                by_name = {v["name"]: v["prompt"] for v in videos}
                image_dimensions = {n: [d for d in dimensions if d in per_image[p]] for n, p in by_name.items()}
            results = run_vbench(
                folder,
                prompts,
                dimensions,
                Path(scratch) / "out",
                mode=mode,
                images=images,
                long=long,
                image_dimensions=image_dimensions,
            )
            raw = Path(scratch) / "out" / "pare_eval_results.json"  # kept: VBench's own JSON, for audits
            store.save_bytes(Path("vbench") / system / "eval_results.json", raw.read_bytes())
        for video in videos:
            scored = [d for d in dimensions if files[video["name"]] in results[d]["videos"]]  # own prompts/images
            values = {f"vbench_{d}": results[d]["videos"][files[video["name"]]] for d in scored}
            if not values:
                continue
            store.append(
                {
                    "kind": "metric",
                    "system": system,
                    "name": video["name"],
                    "metric": "vbench",
                    "reference": None,
                    "values": values,
                    "held_out": None,
                }
            )
        store.append({"kind": "vbench", "system": system, **{d: results[d]["score"] for d in dimensions}})
