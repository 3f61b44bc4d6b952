"""The tiny random Wan transformer the pare_core tests share: its config, inputs and a no-grad forward."""

import torch

CONFIG = dict(
    patch_size=(1, 4, 4),
    num_attention_heads=8,
    attention_head_dim=16,
    in_channels=3,
    out_channels=3,
    text_dim=64,
    freq_dim=64,
    ffn_dim=256,
    num_layers=4,
    rope_max_seq_len=64,
)
I2V_CONFIG = {**CONFIG, "image_dim": 32, "added_kv_proj_dim": 128}


def inputs(batch: int = 2, seed: int = 0, timesteps=None, text: int = 16, image: int = 0) -> dict:
    """Forward kwargs: 8x24x24 videos, `text` context tokens (512 for I2V: the processor slices 512 as text)."""
    g = torch.Generator().manual_seed(seed)
    kwargs = {
        "hidden_states": torch.randn(batch, 3, 8, 24, 24, generator=g),
        "timestep": torch.tensor(timesteps[:batch] if timesteps else [700.0] * batch),
        "encoder_hidden_states": torch.randn(batch, text, 64, generator=g),
    }
    if image:
        kwargs["encoder_hidden_states_image"] = torch.randn(batch, image, 32, generator=g)
    return kwargs


def run(model, kwargs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**kwargs, return_dict=False)[0]
