import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pare_bench.metrics import METRICS, get_metric, register_metric
from pare_bench.metrics.paired import psnr, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (8, 24, 24, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_matches_scikit_image(pair):
    a, b = pair
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), rel=1e-6)


def test_ssim_matches_scikit_image_per_frame(pair):
    a, b = pair
    reference = np.mean(
        [
            structural_similarity(
                x, y, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
            for x, y in zip(a, b)
        ]
    )
    # torchmetrics and scikit-image treat the image border differently; on 24x24 frames that is visible.
    assert ssim(a, b) == pytest.approx(reference, abs=0.05)
    assert ssim(a, a) == pytest.approx(1.0)


def test_registry_metadata_and_errors():
    assert get_metric("psnr").higher_is_better and get_metric("psnr").kind == "paired"
    assert not get_metric("latency").higher_is_better
    with pytest.raises(KeyError, match="did you mean 'psnr'"):
        get_metric("pnsr")
    with pytest.raises(ValueError, match="twice"):
        register_metric("psnr", kind="paired", higher_is_better=True)(lambda a, b: 0.0)
    assert {"psnr", "ssim", "world", "flops", "latency"} <= set(METRICS)
