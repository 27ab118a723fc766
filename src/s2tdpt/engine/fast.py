"""Speed settings that leave the model's function unchanged up to rounding (each has an equivalence test).

* :func:`fold_batchnorm` — inference: fold every BatchNorm into the conv / linear before it (a copy; eval only).
* :func:`prepare_inference` — the folded copy with its convolution weights in channels-last memory, so the convs
  run on channels-last maps (~7 % less time per batch for ``s2tdpt_4_384`` on a 2-core CPU,
  ``benchmarks/layouts.py``; in training the same layout was 30–40 % slower, so it stays an inference setting).
* :func:`compile_training` — the training step's forward and backward as whole-model ``torch.compile`` graphs
  (``s2tdpt train --compile on``): the same saved activations, fused elementwise work around the products and
  far fewer large temporaries (less time, a smaller heap).
* :class:`CompiledInference` — :func:`prepare_inference`, then ``torch.compile`` with inductor's freezing (weights
  become constants, pre-packed for the CPU's matrix products) for batches of one size (``s2tdpt eval --compile``).

Compiling costs 20–75 s per graph on a 2-core CPU (``BENCHMARKS.md``), so it pays off for long runs only. The
compiled graphs fuse elementwise steps and round in bf16 at other places than eager autocast does, so under bf16
a membrane near threshold can fire in one and not the other: an evaluation's top-1 can differ by a few images in
ten thousand (BENCHMARKS.md); in float32 they agree to float32 rounding (tested).

Which layer pairs fold is declared by the modules themselves (``bn_pairs``), so nothing is guessed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each declared (conv/linear, BN) pair fused into one layer."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        for layer_name, bn_name in getattr(module, "bn_pairs", ()):
            layer, bn = getattr(module, layer_name), getattr(module, bn_name)
            if isinstance(bn, nn.Identity):
                continue
            fused = fuse_conv_bn_eval(layer, bn) if isinstance(layer, nn.Conv2d) else fuse_linear_bn_eval(layer, bn)
            setattr(module, layer_name, fused)
            setattr(module, bn_name, nn.Identity())
    return folded


@torch.no_grad()
def prepare_inference(model: nn.Module) -> nn.Module:
    """:func:`fold_batchnorm`, then every ``Conv2d`` weight in channels-last memory (same function, tested)."""
    ready = fold_batchnorm(model)
    for module in ready.modules():
        if isinstance(module, nn.Conv2d):
            module.to(memory_format=torch.channels_last)
    return ready


def configure_inductor(device: torch.device) -> None:
    """Inductor settings for compiling a spiking model on ``device``.

    On CUDA, layout optimisation (Inductor converting convolutions to channels-last and propagating the layout)
    made compiled spiking networks slower than eager — 0.8× in SpikingJelly issue #753, fixed there by turning
    it off — because the many elementwise neuron kernels between the convolutions then run on permuted tensors.
    It is turned off for CUDA here too; the CPU path was measured with it as it is (BENCHMARKS.md).
    """
    if torch.device(device).type == "cuda":
        import torch._inductor.config as inductor_config  # imported here: `import s2tdpt` stays light

        inductor_config.layout_optimization = False


def compile_training(net: nn.Module) -> nn.Module:
    """``net`` under ``torch.compile`` for training steps: the same parameters, the same function (tested).

    Static shapes: training batches have one size (the loaders drop the last partial batch). Evaluate the
    uncompiled module: eval mode and other batch sizes would each compile another graph.
    """
    configure_inductor(next(net.parameters()).device)
    return torch.compile(net, dynamic=False)


class CompiledInference(nn.Module):
    """Inference through a frozen ``torch.compile`` graph of :func:`prepare_inference`'s copy of ``model``.

    The graph is built at the first call, for that batch size; batches of any other size (a loader's last, partial
    batch) run through the same prepared copy eagerly instead of compiling again. Freezing folds the weights into
    the graph as constants: in-place changes to ``self.model`` after the first call would reach the eager batches
    but not the graph, so build a new ``CompiledInference`` instead. Every call runs under ``torch.no_grad``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from ..snn import compiled

        compiled.require(next(model.parameters()).device.type, "compiled inference (s2tdpt eval --compile)")
        self.model = prepare_inference(model)
        self.config = getattr(model, "config", None)
        configure_inductor(next(model.parameters()).device)
        # kept out of the module tree: it wraps self.model, whose parameters are registered once already
        self.__dict__["_graph"] = torch.compile(self.model, dynamic=False)
        self._batch: int | None = None
        self.eval()

    def train(self, mode: bool = True) -> CompiledInference:
        if mode:
            raise RuntimeError("CompiledInference only evaluates; train the original model and compile it again")
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config  # imported here: `import s2tdpt` stays light

        if self._batch is None:
            self._batch = images.shape[0]
        if images.shape[0] != self._batch:
            return self.model(images)
        # freezing must be on while the graph compiles (at the first call); passing it through torch.compile's
        # `options` did not take effect in torch 2.14 (measured: same time as without it)
        with inductor_config.patch(freezing=True):
            return self._graph(images)
