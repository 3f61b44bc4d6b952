"""Paired metrics: each video against the reference system's video for the same prompt and seed.

This is the convention of acceleration papers (PAB, TeaCache): the accelerated video is scored
against the baseline's, not against ground truth. Conventions, recorded in the manifest:
frames are uint8 RGB mapped to [0, 1] floats; PSNR uses data_range 1.0 over all pixels of the video
(one MSE per video, not a mean of per-frame PSNRs); SSIM uses a Gaussian window of 11 px and
sigma 1.5, computed per frame and averaged over frames. LPIPS (torchmetrics, AlexNet backbone, inputs in
[0, 1]) is averaged over frames; it needs the backbone's ImageNet weights in the torch hub cache, which are
never downloaded here: `lpips_problems` names the missing file before a run starts.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from pare_bench.metrics.registry import register_metric

CONVENTIONS = {
    "psnr": {"data_range": 1.0, "reduction": "one MSE over all frames and pixels of a video"},
    "ssim": {"data_range": 1.0, "kernel": "gaussian", "kernel_size": 11, "sigma": 1.5, "reduction": "mean over frames"},
    "lpips": {"net": "alex", "input_range": [0, 1], "reduction": "mean over frames"},
}
# torchvision's AlexNet ImageNet weights, which torchmetrics' LPIPS loads through the torch hub cache
LPIPS_BACKBONE = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


def lpips_weights() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE.rsplit("/", 1)[1]


def lpips_problems() -> list[str]:
    path = lpips_weights()
    if path.is_file():
        return []
    return [
        f"LPIPS needs its AlexNet weights at {path} (from {LPIPS_BACKBONE}; the torch hub cache is $TORCH_HOME/hub)"
    ]


@cache
def _lpips_model():
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    problems = lpips_problems()
    if problems:
        raise FileNotFoundError(problems[0])
    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).eval()


def _frames(video: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (F, 3, H, W) float64 in [0, 1]; float64 so PSNR matches scikit-image."""
    return torch.from_numpy(video).permute(0, 3, 1, 2).to(torch.float64) / 255.0


@register_metric("psnr", kind="paired", higher_is_better=True, tolerance=0.5, per_seed=("psnr",))  # dB
def psnr(video: np.ndarray, reference: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(_frames(video), _frames(reference), data_range=1.0))


@register_metric("ssim", kind="paired", higher_is_better=True, tolerance=0.01, per_seed=("ssim",))
def ssim(video: np.ndarray, reference: np.ndarray) -> float:
    # float32: torch's float64 convolution on CPU took 0.13 s per 8-frame 24x24 video against 0.002 s, and was the
    # slowest metric of a run; the two agree to 1e-5 (tests/pare_bench/test_metrics.py).
    value = structural_similarity_index_measure(
        _frames(video).float(),
        _frames(reference).float(),
        data_range=1.0,
        kernel_size=11,
        sigma=1.5,
        reduction="elementwise_mean",
    )
    return float(value)


@register_metric(
    "lpips", kind="paired", higher_is_better=False, tolerance=1.10, problems=lambda suite: lpips_problems()
)
def lpips(video: np.ndarray, reference: np.ndarray) -> float:
    model = _lpips_model()
    with torch.no_grad():
        values = [model(a[None], b[None]) for a, b in zip(_frames(video).float(), _frames(reference).float())]
        model.reset()
    return float(torch.stack(values).mean())
