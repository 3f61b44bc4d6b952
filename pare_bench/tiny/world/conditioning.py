"""Conditioning for the tiny Wan models: a small text encoder over the world vocabulary, and the
Wan2.1-I2V-style image inputs (first-frame channels and image tokens).

Wan2.1 conditions on UMT5 text states (B, 512, 4096) and, for I2V, on CLIP image tokens (B, 257, 1280)
plus a mask and the VAE latent of the first frame concatenated on the channel axis. Here the text
encoder is a learned embedding of the world's ~20 words, and the "image encoder" is a fixed
patchify of the first frame; the transformer's own `image_embedder` learns the projection.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from pare_bench.tiny.world.prompts import MAX_TOKENS, VOCAB, tokenize

# diffusers' WanAttnProcessor splits `encoder_hidden_states` as [image tokens, last 512 = text] when
# the block has `add_k_proj` (transformer_wan.py: "512 is the context length of the text encoder,
# hardcoded for now"), so an I2V model must be given exactly 512 text positions.
WAN_TEXT_CONTEXT = 512


class WorldTextEncoder(ModelMixin, ConfigMixin):
    """Word embedding plus learned positions, `attention_layers` pre-norm self-attention layers, then one
    pre-norm MLP: (B, L) ids -> (B, L, dim).

    Without self-attention every output token is its own word at its own position: "down" does not know
    which object it belongs to, and a teacher given "a magenta circle standing still and a yellow square moving
    down" moved both objects down (the two-object failures of docs/TEACHERS.md). UMT5, Wan2.1's encoder, is
    contextual; one attention layer lets each motion word carry its phrase's colour and shape. Its output
    projection starts at zero, so adding it to trained weights changes nothing until it is trained.

    Learned absolute positions alone did not bind: after training they had a norm of about 0.3 beside word
    embeddings of about 8, so attention could not tell a word's own phrase from the other one, and the motion
    word moved by 0.1 when its own or the other object's colour changed. `relative_positions` adds, as UMT5
    does, a learned bias per head and key-minus-query offset to the attention scores. It starts as a window
    looking back along the phrase (the motion words follow their object): -0.5 per token of distance, and
    -4 more for tokens to the right.
    """

    @register_to_config
    def __init__(
        self,
        vocab_size: int = len(VOCAB),
        max_tokens: int = MAX_TOKENS,
        dim: int = 64,
        context_len: int = MAX_TOKENS,
        attention_layers: int = 0,
        heads: int = 4,
        relative_positions: bool = False,
    ):
        super().__init__()
        self.word = nn.Embedding(vocab_size, dim)
        self.position = nn.Parameter(torch.zeros(max_tokens, dim))
        self.attention_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(attention_layers))
        self.attentions = nn.ModuleList(
            nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(attention_layers)
        )
        for attention in self.attentions:
            nn.init.zeros_(attention.out_proj.weight)
            nn.init.zeros_(attention.out_proj.bias)
        if relative_positions and attention_layers:
            offset = torch.arange(-(max_tokens - 1), max_tokens, dtype=torch.float32)  # key - query
            window = -0.5 * offset.abs() - 4.0 * (offset > 0)
            self.relative_bias = nn.Parameter(window.repeat(attention_layers, heads, 1))  # (layers, heads, offsets)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        nn.init.normal_(self.position, std=0.02)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.word(token_ids) + self.position[: token_ids.shape[1]]  # (B, L, dim)
        for layer, (norm, attention) in enumerate(zip(self.attention_norms, self.attentions)):
            normed = norm(hidden)
            mask = self._position_bias(layer, token_ids.shape[0], token_ids.shape[1])
            hidden = hidden + attention(normed, normed, normed, attn_mask=mask, need_weights=False)[0]
        hidden = hidden + self.mlp(self.norm(hidden))
        pad = self.config.context_len - hidden.shape[1]
        # Zero padding past the prompt, as WanPipeline does with UMT5 states beyond the sequence length.
        return nn.functional.pad(hidden, (0, 0, 0, pad)) if pad > 0 else hidden

    def _position_bias(self, layer: int, batch: int, length: int) -> torch.Tensor | None:
        """The additive attention mask (batch * heads, L, L) of `layer`, or None without relative positions."""
        if not hasattr(self, "relative_bias"):
            return None
        index = torch.arange(length, device=self.relative_bias.device)
        offsets = index[None, :] - index[:, None] + self.config.max_tokens - 1  # (L query, L key)
        bias = self.relative_bias[layer][:, offsets]  # (heads, L, L)
        return bias.expand(batch, *bias.shape).reshape(-1, length, length)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        ids = torch.tensor([tokenize(text) for text in prompts], device=self.device)
        return self(ids)


def image_tokens(first_frame: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, (H/p)*(W/p), 3*p*p) patch tokens, the stand-in for CLIP tokens."""
    batch, channels, height, width = first_frame.shape
    patches = first_frame.unfold(2, patch, patch).unfold(3, patch, patch)  # (B, C, H/p, W/p, p, p)
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(batch, (height // patch) * (width // patch), -1)


def image_condition(first_frame: torch.Tensor, frames: int) -> torch.Tensor:
    """Wan2.1-I2V channel condition: a frame mask (1 on frame 0) and the first frame, zero elsewhere.

    (B, 3, H, W) -> (B, 4, F, H, W), concatenated to the noisy video on the channel axis.
    """
    batch, _, height, width = first_frame.shape
    mask = torch.zeros(batch, 1, frames, height, width, dtype=first_frame.dtype, device=first_frame.device)
    mask[:, :, 0] = 1.0
    video = torch.zeros(batch, 3, frames, height, width, dtype=first_frame.dtype, device=first_frame.device)
    video[:, :, 0] = first_frame
    return torch.cat([mask, video], dim=1)
