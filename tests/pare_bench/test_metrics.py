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


def test_ssim_in_float32_agrees_with_float64(pair):
    """The metric computes in float32 for speed; float64 is the precise value."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = pair
    precise = structural_similarity_index_measure(
        *(torch.from_numpy(v).permute(0, 3, 1, 2).double() / 255 for v in (a, b)), data_range=1.0, sigma=1.5
    )
    assert ssim(a, b) == pytest.approx(float(precise), abs=1e-5)


def test_registry_metadata_and_errors():
    assert get_metric("psnr").higher_is_better and get_metric("psnr").kind == "paired"
    assert not get_metric("latency").higher_is_better
    with pytest.raises(KeyError, match="did you mean 'psnr'"):
        get_metric("pnsr")
    with pytest.raises(ValueError, match="twice"):
        register_metric("psnr", kind="paired", higher_is_better=True)(lambda a, b: 0.0)
    assert {"psnr", "ssim", "world", "flops", "latency"} <= set(METRICS)


def test_lpips_names_its_missing_weights_and_runs_on_local_ones(tmp_path, monkeypatch):
    """No weights: a clear error naming the file. Weights in the hub cache (here a random AlexNet saved where
    torchvision looks, since nothing is downloaded): 0 for identical videos, > 0 for different ones."""
    import numpy as np
    import torch
    import torchvision

    from pare_bench.metrics import get_metric, paired

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    paired._lpips_model.cache_clear()
    assert "alexnet-owt-7be5be79.pth" in paired.lpips_problems()[0]
    video = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(FileNotFoundError, match="LPIPS needs its AlexNet weights"):
        get_metric("lpips").compute(video, video)
    paired.lpips_weights().parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), paired.lpips_weights())
    assert paired.lpips_problems() == []
    assert get_metric("lpips").compute(video, video) == pytest.approx(0.0, abs=1e-6)
    assert get_metric("lpips").compute(video, 255 - video) > 0.0
    paired._lpips_model.cache_clear()


def test_a_suite_is_checked_for_each_metric_s_needs_before_anything_is_written(tmp_path, monkeypatch, capsys):
    """`run` asks each metric's registry entry what it lacks (here LPIPS's AlexNet weights) before writing."""
    import torch

    from pare_bench.__main__ import main

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "suite: s\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: world:smoke\n"
        "systems:\n  - {name: baseline}\n  - {name: fb, cache: {first_block: {threshold: 0.1}}}\n"
        "metrics:\n  - {metric: lpips, reference: baseline}\n  - {metric: fid}\n"
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 2
    message = capsys.readouterr().err
    assert "alexnet-owt-7be5be79.pth" in message and "Inception" not in message  # tiny FID needs no Inception
    assert not (tmp_path / "run").exists()
