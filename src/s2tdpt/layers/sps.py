"""Spiking Patch Splitting (paper Eq. 10–13; spec §3): real image → membrane tokens ``U_0 ∈ R^{T×B×N×D}``.

| stage  | ops                       | channels  |
|--------|---------------------------|-----------|
| stem   | Conv, BN (real input)     | C → D/8   |
| SPE 1  | LIF, Conv, BN             | D/8 → D/4 |
| SPE 2  | LIF, Conv, BN             | D/4 → D/2 |
| SPED 1 | LIF, MaxPool, Conv, BN    | D/2 → D   |
| SPED 2 | LIF, MaxPool, Conv, BN    | D → D     |

Convs are 3×3, stride 1, padding 1, no bias; MaxPool(3, stride 2, padding 1). With the paper's two pooling
stages a 32×32 image gives 8×8 = 64 tokens of 4×4 pixels. ``pool_stages`` moves or drops the pooling: ``(2,)``
pools in SPED 1 only (8×8 digits), ``(1, 2)`` pools before SPE 2 and SPED 1 — the same tokens from half as many
full-resolution multiply-accumulates (``s2tdpt_cpu``).

Direct encoding repeats the image T times; the stem (conv + BN) is computed once per image and broadcast over
T, which gives the same values as running it on T copies (BN batch statistics of identical copies are those of
one copy; only the unbiased correction ``n/(n−1)`` of BN's running variance differs, by < 1e-5 relative).
"""

from __future__ import annotations

import torch
from torch import nn

from ..attention.registry import NeuronFactory
from ..snn.norm_lif import norm_lif
from .pool import ChannelsLastMaxPool2d


class _SpikingConv(nn.Module):
    """``BN(Conv(MP?(SN(x))))`` on ``[T, B, C, H, W]`` (Eq. 11 without pooling, Eq. 12 with).

    :class:`SpikingPatchSplitting` runs a stage's BN together with the next stage's LIF (:func:`norm_lif`), so it
    calls :meth:`conv_spikes` rather than ``forward`` (the same function; hooks on a stage module itself do not
    fire, hooks on its LIF, conv or BN do).
    """

    bn_pairs = (("conv", "bn"),)  # foldable for inference (engine.fast.fold_batchnorm)

    def __init__(self, c_in: int, c_out: int, neuron: NeuronFactory, pool: bool) -> None:
        super().__init__()
        self.lif = neuron()
        self.pool = ChannelsLastMaxPool2d(3, stride=2, padding=1) if pool else nn.Identity()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv_spikes(self.lif(x))).unflatten(0, x.shape[:2])

    def conv_spikes(self, s: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, B, C, H, W]`` → ``Conv(MP?(s))`` before BN, time folded: ``[T·B, C', H', W']``."""
        return self.conv(self.pool(s.flatten(0, 1)))


class SpikingPatchSplitting(nn.Module):
    """``[B, C, H, W]`` image or ``[T, B, C, H, W]`` frames → ``[T, B, N, D]`` membrane tokens,
    ``N = (H / 2^P)·(W / 2^P)``, P pooling stages.

    ``pool_stages``: indices of the four spiking stages (0 = SPE 1, 1 = SPE 2, 2 = SPED 1, 3 = SPED 2) that
    max-pool before their conv; the paper's is ``(2, 3)``.
    """

    bn_pairs = (("stem_conv", "stem_bn"),)

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        timesteps: int,
        neuron: NeuronFactory,
        pool_stages: tuple[int, ...] = (2, 3),
    ):
        super().__init__()
        if embed_dim % 8:
            raise ValueError(f"embed_dim must be divisible by 8 for the tokenizer's D/8 stem, got {embed_dim}")
        if not set(pool_stages) <= {0, 1, 2, 3}:
            raise ValueError(f"pool_stages must be a subset of (0, 1, 2, 3), got {pool_stages}")
        d = embed_dim
        self.timesteps = timesteps
        self.stem_conv = nn.Conv2d(in_chans, d // 8, 3, padding=1, bias=False)  # Eq. 10
        self.stem_bn = nn.BatchNorm2d(d // 8)
        self.stages = nn.Sequential(
            _SpikingConv(d // 8, d // 4, neuron, pool=0 in pool_stages),  # SPE 1
            _SpikingConv(d // 4, d // 2, neuron, pool=1 in pool_stages),  # SPE 2
            _SpikingConv(d // 2, d, neuron, pool=2 in pool_stages),  # SPED 1
            _SpikingConv(d, d, neuron, pool=3 in pool_stages),  # SPED 2
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` or frames ``[T, B, C, H, W]`` → membrane tokens ``[T, B, N, D]``."""
        if img.dim() == 5:  # event encoding: each step its own frame; the stem's BN pools over T and B
            x = self.stem_bn(self.stem_conv(img.flatten(0, 1))).unflatten(0, img.shape[:2])  # [T, B, D/8, H, W]
        else:  # direct encoding: the stem runs once and its output is repeated over T
            z0 = self.stem_bn(self.stem_conv(img))  # [B, D/8, H, W], real-valued, identical at every step
            x = z0.unsqueeze(0).expand(self.timesteps, *z0.shape)  # [T, B, D/8, H, W] (a view)
        stages = list(self.stages)
        s = stages[0].lif(x)  # [T, B, D/8, H, W] spikes
        for stage, following in zip(stages[:-1], stages[1:], strict=True):
            # this stage's BN and the next stage's LIF as one step (slopes not stored in training)
            s = norm_lif(stage.conv_spikes(s), stage.bn, following.lif, self.timesteps)
        last = stages[-1]
        x = last.bn(last.conv_spikes(s)).unflatten(0, (self.timesteps, -1))  # [T, B, D, H', W']
        return x.flatten(3).transpose(2, 3).contiguous()  # [T, B, N, D] (Eq. 13)
