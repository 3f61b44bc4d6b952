"""Paired metrics: each video against the reference system's video for the same prompt and seed.

This is the convention of acceleration papers (PAB, TeaCache): the accelerated video is scored
against the baseline's, not against ground truth. Conventions, recorded in the manifest:
frames are uint8 RGB mapped to [0, 1] floats; PSNR uses data_range 1.0 over all pixels of the video
(one MSE per video, not a mean of per-frame PSNRs); SSIM uses a Gaussian window of 11 px and
sigma 1.5, computed per frame and averaged over frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from pare_bench.metrics.registry import register_metric

CONVENTIONS = {
    "psnr": {"data_range": 1.0, "reduction": "one MSE over all frames and pixels of a video"},
    "ssim": {"data_range": 1.0, "kernel": "gaussian", "kernel_size": 11, "sigma": 1.5, "reduction": "mean over frames"},
}


def _frames(video: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (F, 3, H, W) float64 in [0, 1]; float64 so PSNR matches scikit-image."""
    return torch.from_numpy(video).permute(0, 3, 1, 2).to(torch.float64) / 255.0


@register_metric("psnr", kind="paired", higher_is_better=True)
def psnr(video: np.ndarray, reference: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(_frames(video), _frames(reference), data_range=1.0))


@register_metric("ssim", kind="paired", higher_is_better=True)
def ssim(video: np.ndarray, reference: np.ndarray) -> float:
    value = structural_similarity_index_measure(
        _frames(video), _frames(reference), data_range=1.0, kernel_size=11, sigma=1.5, reduction="elementwise_mean"
    )
    return float(value)
