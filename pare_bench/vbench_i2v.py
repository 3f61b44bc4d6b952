"""VBench's I2V image suite as a prompt source: `prompts: vbench-i2v:<ratio>` in a Wan I2V suite.

The suite is not in the vbench pip package. VBench ships it as a folder (its repository's `vbench2_beta_i2v/`
after `sh vbench2_beta_i2v/download_data.sh`): `vbench2_i2v_full_info.json` lists each image-prompt pair
(`prompt_en`, `image_name`, the `dimension`s it is scored on) and `data/crop/<ratio>/` holds the images cropped
to each aspect ratio (1-1, 8-5, 7-4, 16-9; the protocol picks the one nearest the model's resolution). The
harness reads that folder from the suite's `image_suite:` (relative to the suite file) or `VBENCH_I2V_DIR`,
checks every file before a run, and conditions each video on its prompt's image, resized to the suite's size.
VBench then scores each video against that same image, on the dimensions the suite lists for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# `prompts: vbench-i2v:<ratio>`, and the crops the image suite offers. This module owns both; the suite
# schema imports them (this module imports nothing of the suite's, so there is no cycle).
PREFIX, RATIOS = "vbench-i2v:", ("1-1", "8-5", "7-4", "16-9")

INFO_FILE = "vbench2_i2v_full_info.json"
ENV = "VBENCH_I2V_DIR"
HOW = (
    "get VBench's I2V image suite once where a network is available (clone github.com/Vchitect/VBench and run "
    "`sh vbench2_beta_i2v/download_data.sh`), then point the suite's `image_suite:` or VBENCH_I2V_DIR at that "
    "vbench2_beta_i2v folder"
)


def image_suite_dir(image_suite: str | None, suite_dir: Path) -> Path | None:
    """The folder named by the suite (relative to it) or by VBENCH_I2V_DIR; None when neither names one."""
    if image_suite is not None:
        return (Path(suite_dir) / image_suite).resolve()
    return Path(os.environ[ENV]) if os.environ.get(ENV) else None


def locate(suite, suite_path: Path) -> tuple[Path | None, str] | None:
    """(image suite folder or None if none is named, crop ratio) of a `prompts: vbench-i2v:<ratio>` suite;
    None for any other prompt source."""
    if not suite.prompts.startswith(PREFIX):
        return None
    return image_suite_dir(suite.image_suite, Path(suite_path).parent), suite.prompts[len(PREFIX) :]


def read_info(directory: Path) -> list[dict]:
    """The image-prompt pairs, in VBench's order."""
    return json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))


def problems(directory: Path | None, ratio: str) -> list[str]:
    """Everything missing for `ratio`: the folder, its info file, or images (the first few named)."""
    if directory is None:
        return [f"VBench I2V image suite: no `image_suite:` in the suite and {ENV} is not set; {HOW}"]
    if not (directory / INFO_FILE).is_file():
        return [f"VBench I2V image suite: {directory / INFO_FILE} is missing; {HOW}"]
    try:
        info = read_info(directory)
    except (OSError, ValueError) as error:
        return [f"VBench I2V image suite: cannot read {directory / INFO_FILE}: {error}"]
    crop = directory / "data" / "crop" / ratio
    missing = sorted({entry["image_name"] for entry in info if not (crop / entry["image_name"]).is_file()})
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        return [f"VBench I2V image suite: {len(missing)} of {len(info)} images missing under {crop}: {shown}; {HOW}"]
    return []


def prompts(directory: Path) -> list[str]:
    """Each image's prompt once, in VBench's order (videos are named after these, as VBench expects)."""
    return list(dict.fromkeys(entry["prompt_en"] for entry in read_info(directory)))


def images(directory: Path, ratio: str) -> dict[str, Path]:
    """prompt -> its image at `ratio`."""
    crop = directory / "data" / "crop" / ratio
    return {entry["prompt_en"]: crop / entry["image_name"] for entry in read_info(directory)}


def dimensions(directory: Path) -> dict[str, list[str]]:
    """prompt -> the VBench dimensions its image is scored on (i2v_background only on background images...)."""
    return {entry["prompt_en"]: list(entry["dimension"]) for entry in read_info(directory)}


def load_image(path: Path, height: int, width: int) -> torch.Tensor:
    """(3, height, width) in [0, 1]: scaled to cover the size, then centre-cropped (the crops already have the
    ratio, so this only resizes)."""
    image = Image.open(path).convert("RGB")
    scale = max(height / image.height, width / image.width)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    image = image.crop((left, top, left + width, top + height))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
