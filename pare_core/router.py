"""PARE depth: a light router picks, per sample and per denoising step, which transformer blocks run.

`BlockRouter` maps the timestep embedding and statistics of the patch-embedded content tokens (`pooled_content`:
their mean, their spread over space and time, and their mean change from frame to frame) to one keep logit
per block. It is a diffusers model (`ModelMixin`, `ConfigMixin`): `save_pretrained` writes its config (shape,
inputs and the budget it was trained for) beside its weights, and `from_pretrained` rebuilds it.

`apply_router(model, router, config)` attaches it with diffusers' hook registry (`diffusers.hooks.HookRegistry`,
the mechanism its cache methods use), so the model's class and weights are untouched and `remove_router(model)`
restores the original forwards:

- a hook on `condition_embedder` (which runs after `patch_embedding` in Wan's forward) reads both inputs
  and computes the decisions for the whole forward;
- a hook on each block runs the block only for the samples that keep it. A block nobody keeps does not
  run; a partial batch runs on the kept rows only and the others pass through unchanged, so nothing is
  computed and then thrown away.

Training (`router.train()`): decisions are Gumbel-sigmoid samples with a straight-through estimator, and
every block runs so the gate gets a gradient: out = x + gate * (block(x) - x). `budget_loss` pulls the
mean executed share of block FLOPs toward `config.budget`.

Inference (`router.eval()`): `mode="topk"` walks each sample's blocks from the highest logit down and keeps
every block that still fits in `budget` x the block FLOPs (an exact top-k when blocks cost the same; a width-
pruned student's blocks do not, and a count would overshoot the budget); `mode="threshold"` keeps blocks whose
keep probability exceeds `threshold`. Budget 1.0 with top-k keeps every block, which is the dense model exactly.

Block costs come from `pare_core.flops.block_flops` at the live token and context lengths, read from the
shapes of the forward being routed, so the budget holds at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from pare_core.flops import block_flops

ROUTER_HOOK = "pare_router"
_BLOCK_HOOK = "pare_router_block"


@dataclass
class RouterConfig:
    budget: float = 1.0  # share of the block FLOPs to execute per sample and forward
    mode: str = "topk"  # "topk" or "threshold" at inference
    threshold: float = 0.5
    temperature: float = 1.0  # Gumbel-sigmoid temperature in training
    generator: torch.Generator | None = None  # the gate noise's generator in training (None: torch's global one)
    # (process index, process count): each process takes its rows of the noise drawn for the global batch, so
    # data-parallel training draws what one process would (its batch rows are rank, rank + count, ...)
    noise_split: tuple[int, int] = (0, 1)


CONTENT_FEATURES = ("mean", "motion")


class BlockRouter(ModelMixin, ConfigMixin):
    """(timestep embedding, pooled content tokens) -> (B, blocks) keep logits.

    `use_timestep` / `use_content` switch an input off (the `route-timestep-only` ablation drops content;
    dropping both leaves a learned static set of blocks, `static-depth`). `content` names the statistics the
    router reads (`pooled_content`). `budget` is the share of block FLOPs it was trained to execute, the
    default of `apply_router`.
    """

    @register_to_config
    def __init__(
        self,
        dim: int,
        blocks: int,
        hidden: int = 64,
        use_timestep: bool = True,
        use_content: bool = True,
        content: str = "motion",
        budget: float = 1.0,
    ):
        super().__init__()
        if content not in CONTENT_FEATURES:
            raise ValueError(f"unknown content features {content!r}; use one of {CONTENT_FEATURES}")
        self.use_timestep, self.use_content = use_timestep, use_content
        self.time_norm = nn.LayerNorm(dim)
        self.content_norm = nn.LayerNorm(content_dim(dim, content))
        self.inp = nn.Linear(dim + content_dim(dim, content), hidden)
        self.out = nn.Linear(hidden, blocks)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, 3.0)  # starts keeping every block (sigmoid(3) = 0.95)

    def forward(self, temb: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        t = self.time_norm(temb) if self.use_timestep else torch.zeros_like(temb)
        c = self.content_norm(content) if self.use_content else torch.zeros_like(content)
        return self.out(nn.functional.silu(self.inp(torch.cat([t, c], dim=-1))))


@dataclass
class _State:
    """What one forward's hooks share: the pooled content tokens and the decisions."""

    content: torch.Tensor | None = None
    gates: torch.Tensor | None = None  # (B, blocks): 0/1 at inference, straight-through samples in training
    logits: torch.Tensor | None = None
    costs: torch.Tensor | None = None  # (blocks,) FLOPs of each block in this forward
    tokens: int = 0
    rows: list[torch.Tensor | None] = field(default_factory=list)  # per block at inference: kept rows (None: all)
    history: list[torch.Tensor] = field(default_factory=list)  # gates of every forward since the last reset


def gumbel_sigmoid(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None, split: tuple[int, int] = (0, 1)
) -> torch.Tensor:
    """Hard 0/1 samples with the gradient of the relaxed sigmoid (straight-through). `split` (index, count): the
    rows index, index + count, ... of the noise for `count` times as many rows."""
    index, count = split
    shape = (logits.shape[0] * count, *logits.shape[1:])
    uniform = torch.rand(shape, generator=generator, device=logits.device)[index::count].clamp(1e-6, 1 - 1e-6)
    noise = torch.log(uniform) - torch.log1p(-uniform)  # difference of two Gumbels
    soft = torch.sigmoid((logits + noise) / temperature)
    return (soft > 0.5).to(soft.dtype) - soft.detach() + soft


def decide(logits: torch.Tensor, config: RouterConfig, costs: torch.Tensor | None = None) -> torch.Tensor:
    """Inference decisions (B, blocks) in {0, 1}; `costs` (blocks,) are block FLOPs (None: equal)."""
    if config.mode == "topk":
        # The greedy fill is sequential (a block that does not fit is skipped and the next one tried), and a
        # Python loop over a few dozen blocks beats a dozen tiny tensor ops per rank: this runs every forward.
        cost = [1.0] * logits.shape[1] if costs is None else costs.double().tolist()
        allowed = config.budget * sum(cost) * (1 + 1e-9)
        keep = []
        for order in logits.detach().float().argsort(dim=1, descending=True, stable=True).tolist():
            spent, row = 0.0, [0.0] * len(cost)
            for block in order:
                if spent + cost[block] <= allowed:
                    spent += cost[block]
                    row[block] = 1.0
            keep.append(row)
        return torch.tensor(keep, dtype=logits.dtype, device=logits.device)
    if config.mode == "threshold":
        return (torch.sigmoid(logits) > config.threshold).to(logits.dtype)
    raise ValueError(f"unknown router mode {config.mode!r}; use 'topk' or 'threshold'")


def content_dim(dim: int, features: str) -> int:
    return dim if features == "mean" else 3 * dim


def pooled_content(patch_embedded: torch.Tensor, features: str = "motion") -> torch.Tensor:
    """The router's content input from the patch-embedded tokens (B, dim, F, H, W).

    "mean": the mean token, (B, dim). It is a linear function of the average input patch, so it carries almost
    no layout and no motion. "motion": per channel the mean, the standard deviation over all tokens (how the
    frame is laid out: few objects on a plain field or many) and the mean absolute change between consecutive
    latent frames (how much moves), (B, 3 dim). Both are O(tokens x dim) reductions, nothing next to one block.
    """
    mean = patch_embedded.flatten(2).mean(dim=2)
    if features == "mean":
        return mean
    spread = patch_embedded.flatten(2).std(dim=2)
    frames = patch_embedded.shape[2]
    change = (
        (patch_embedded[:, :, 1:] - patch_embedded[:, :, :-1]).abs().flatten(2).mean(dim=2)
        if frames > 1
        else torch.zeros_like(mean)
    )
    return torch.cat([mean, spread, change], dim=1)


class _ContentHook(ModelHook):
    def __init__(self, state: _State, features: str):
        super().__init__()
        self.state, self.features = state, features

    def post_forward(self, module, output):
        self.state.content = pooled_content(output, self.features)
        self.state.tokens = output[0, 0].numel()
        return output


class _DecisionHook(ModelHook):
    def __init__(self, state: _State, router: BlockRouter, config: RouterConfig, model_config: dict):
        super().__init__()
        self.state, self.router, self.config, self.model_config = state, router, config, model_config
        self._costs: dict[tuple, torch.Tensor] = {}

    def costs(self, tokens: int, text_len: int, image_len: int) -> torch.Tensor:
        key = (tokens, text_len, image_len)
        if key not in self._costs:
            self._costs[key] = torch.tensor(
                block_flops(self.model_config, tokens, text_len, image_len), dtype=torch.float64
            )
        return self._costs[key]

    def post_forward(self, module, output):
        temb, _, text, image = output
        self.state.costs = self.costs(self.state.tokens, text.shape[1], 0 if image is None else image.shape[1])
        logits = self.router(temb, self.state.content.to(temb.dtype))
        if self.router.training:
            gates = gumbel_sigmoid(logits, self.config.temperature, self.config.generator, self.config.noise_split)
        else:
            gates = decide(logits, self.config, self.state.costs)
            # which rows each block runs on, worked out once per forward rather than once per block
            kept = gates.t() > 0.5
            counts = kept.sum(dim=1).tolist()
            self.state.rows = [None if n == len(gates) else kept[i].nonzero().squeeze(1) for i, n in enumerate(counts)]
        self.state.logits, self.state.gates = logits, gates
        self.state.history.append(gates.detach())
        return output


class _BlockHook(ModelHook):
    def __init__(self, state: _State, router: BlockRouter, index: int):
        super().__init__()
        self.state, self.router, self.index = state, router, index

    def new_forward(self, module, hidden_states, encoder_hidden_states, temb, rotary_emb):
        forward = self.fn_ref.original_forward
        if self.router.training:  # every block runs; the gate scales its residual so it gets a gradient
            gate = self.state.gates[:, self.index]
            out = forward(hidden_states, encoder_hidden_states, temb, rotary_emb)
            return hidden_states + gate.view(-1, 1, 1).to(out.dtype) * (out - hidden_states)
        rows = self.state.rows[self.index]
        if rows is None:
            return forward(hidden_states, encoder_hidden_states, temb, rotary_emb)
        if len(rows) == 0:
            return hidden_states
        out = hidden_states.clone()
        out[rows] = forward(hidden_states[rows], encoder_hidden_states[rows], temb[rows], rotary_emb)
        return out


def apply_router(model: nn.Module, router: BlockRouter, config: RouterConfig | None = None) -> None:
    """Attach `router` to a Wan transformer (teacher or pruned student), at `config` (default: top-k at the
    budget the router was trained for). Raises if one is attached already."""
    registry = HookRegistry.check_if_exists_or_initialize(model.condition_embedder)
    if registry.get_hook(ROUTER_HOOK) is not None:
        raise RuntimeError("a router is already applied to this model; remove_router(model) first")
    if router.out.out_features != len(model.blocks):
        raise ValueError(f"router has {router.out.out_features} outputs, model has {len(model.blocks)} blocks")
    state, config = _State(), config or RouterConfig(budget=router.config.budget)
    content = _ContentHook(state, router.config.content)
    HookRegistry.check_if_exists_or_initialize(model.patch_embedding).register_hook(content, ROUTER_HOOK)
    registry.register_hook(_DecisionHook(state, router, config, dict(model.config)), ROUTER_HOOK)
    for index, block in enumerate(model.blocks):
        HookRegistry.check_if_exists_or_initialize(block).register_hook(_BlockHook(state, router, index), _BLOCK_HOOK)
    model._pare_router = (router, config, state)


def remove_router(model: nn.Module) -> None:
    """Detach the router; the model's forwards are the originals again."""
    if not hasattr(model, "_pare_router"):
        raise RuntimeError("no router is applied to this model")
    model.patch_embedding._diffusers_hook.remove_hook(ROUTER_HOOK, recurse=False)
    model.condition_embedder._diffusers_hook.remove_hook(ROUTER_HOOK, recurse=False)
    for block in model.blocks:
        block._diffusers_hook.remove_hook(_BLOCK_HOOK, recurse=False)
    del model._pare_router


def place(model: nn.Module, device: torch.device | str) -> nn.Module:
    """`model.to(device)` and its attached router with it: the router is held beside the module tree (hooks),
    so `.to` alone would leave it behind."""
    model.to(device)
    attached = attached_router(model)
    if attached is not None:
        attached[0].to(device)
    return model


def router_state(model: nn.Module) -> _State:
    return model._pare_router[2]


def attached_router(model: nn.Module) -> tuple[BlockRouter, RouterConfig] | None:
    """The router attached to `model` and the config it routes at, or None."""
    attached = getattr(model, "_pare_router", None)
    return None if attached is None else attached[:2]


def budget_loss(gates: torch.Tensor, block_flops: torch.Tensor, budget: float) -> torch.Tensor:
    """(executed share of block FLOPs, averaged over the batch, minus the budget) squared."""
    share = (gates * block_flops).sum(dim=1) / block_flops.sum()
    return (share.mean() - budget) ** 2


def router_size(router: BlockRouter) -> dict:
    """Parameters and FLOPs of one router call per sample (two linears; norms, activations and the content
    reductions not counted)."""
    params = sum(p.numel() for p in router.parameters())
    flops = 2 * (router.inp.in_features * router.inp.out_features + router.inp.out_features * router.out.out_features)
    return {"parameters": params, "flops_per_sample": flops}
