"""The Spiking STDP Transformer: SPS tokenizer → L encoder blocks → GTMP + GAP → linear head (Eq. 10–28)."""

from __future__ import annotations

import torch
from torch import nn

from ..layers.block import EncoderBlock
from ..layers.sps import SpikingPatchSplitting
from ..snn.neuron import reset_states
from ..snn.registry import NeuronSpec
from .config import S2TDPTConfig


class S2TDPT(nn.Module):
    """Images ``[B, C, H, W]`` → logits ``[B, num_classes]``. Neuron state is reset on every forward.

    ``forward_features`` returns the last block's membrane potentials ``[T, B, N, D]`` and ``forward_head``
    reads them out (mean over T = GTMP, mean over tokens = GAP, linear), so analysis tools can tap either.
    """

    def __init__(self, config: S2TDPTConfig) -> None:
        super().__init__()
        self.config = c = config
        neuron = NeuronSpec(c.neuron, c.lif_backend, c.neuron_options())
        self.patch_embed = SpikingPatchSplitting(c.in_chans, c.embed_dim, c.timesteps, neuron, c.pool_stages)
        self.blocks = nn.ModuleList(
            EncoderBlock(
                c.embed_dim,
                c.num_heads,
                c.mlp_ratio,
                neuron,
                c.token_grid,
                c.attention,
                c.attn_kwargs,
                c.mlp_layernorm,
            )
            for _ in range(c.depth)
        )
        self.head = nn.Linear(c.embed_dim, c.num_classes)
        self.apply(_init_weights)

    def check_input(self, x: torch.Tensor) -> None:
        """Images ``[B, C, H, W]`` (direct encoding: repeated over T) or frames ``[T, B, C, H, W]`` (event
        encoding: one frame per time step, T = the model's ``timesteps``); anything else is a ``ValueError``."""
        c = self.config
        chw = (c.in_chans, c.img_size, c.img_size)
        if x.dim() == 4 and tuple(x.shape[1:]) == chw:
            return
        if x.dim() == 5 and tuple(x.shape[2:]) == chw:
            if x.shape[0] != c.timesteps:
                raise ValueError(
                    f"{type(self).__name__} runs T = {c.timesteps} time steps but got {x.shape[0]} frames "
                    f"(input {tuple(x.shape)} read as [T, B, C, H, W]); make the data with T = {c.timesteps} frames "
                    f"or build the model with timesteps={x.shape[0]}"
                )
            return
        raise ValueError(
            f"{type(self).__name__} expects images [B, {c.in_chans}, {c.img_size}, {c.img_size}] or frames "
            f"[T={c.timesteps}, B, {c.in_chans}, {c.img_size}, {c.img_size}]; got {tuple(x.shape)}. Resize or "
            f"convert the input, or build the model with matching img_size / in_chans / timesteps."
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` or frames ``[T, B, C, H, W]`` → final membrane potentials ``U_L`` [T, B, N, D]."""
        self.check_input(x)
        reset_states(self)
        u = self.patch_embed(x)  # U_0, [T, B, N, D]
        for block in self.blocks:
            u = block(u)
        return u

    def forward_head(self, u: torch.Tensor) -> torch.Tensor:
        """GTMP over T, GAP over tokens, then the classifier (Eq. 28, 30–31): ``[T, B, N, D] → [B, classes]``."""
        return self.head(u.mean(0).mean(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay beyond norms and biases (read by timm's optimizer factory)."""
        names = set()
        for prefix, module in self.named_modules():
            if module is not self and hasattr(module, "no_weight_decay"):
                names |= {f"{prefix}.{n}" for n in module.no_weight_decay()}
        return names


def _init_weights(m: nn.Module) -> None:
    # Linear layers (Q/K/V, projection, MLP, head): truncated normal, std 0.02, zero bias — the convention the
    # anchor (Spikingformer) applies to its nn.Linear layers, of which it has only the head. Its Q/K/V, projection
    # and MLP are 1×1 Conv1d/Conv2d with PyTorch's default init (Kaiming-uniform, a = √5: weights and biases
    # U(±1/√fan_in), std 1/√(3·fan_in)), so this is a deviation. BN follows each of those layers and removes
    # their weight scale and bias from the forward pass; what differs is the starting scale against AdamW's
    # fixed-size steps (std 0.02 here, 1/√(3·fan_in) there). Kept: the recorded results were trained with it.
    # Convs (the tokenizer) keep PyTorch's default init, as in the anchor.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
