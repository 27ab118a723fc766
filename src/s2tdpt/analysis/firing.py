"""Firing rates: removable hooks that observe, per layer, the tensor entering every conv / linear and the
attention branches (Q, K, V), per timestep and overall, accumulated over as many batches as are run.

The model is not modified: hooks are registered on ``__enter__`` and removed on ``__exit__``.

    with FiringRateMonitor(model) as mon:
        for images, _ in loader:
            model(images)
    mon.layers["blocks.0.mlp.fc1"].rate          # fraction of nonzero inputs, all timesteps
    mon.layers["blocks.0.mlp.fc1"].per_step      # the same for each timestep
    mon.attention["blocks.0.attn"]["v"].rate     # a branch of the attention
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class RateStats:
    """Nonzero counts of one observed tensor, accumulated over batches."""

    nonzero: float = 0.0
    total: float = 0.0
    abs_sum: float = 0.0  # Σ|x|, for the lenient rate of non-binary inputs
    binary: bool = True  # every value seen was 0 or 1
    counts: bool = True  # every value seen was a non-negative integer (integer spike counts)
    values: set = field(default_factory=set)  # distinct values while few (spike alphabets: {0,1}, {−1,0,1})
    step_nonzero: list[float] | None = None
    step_total: list[float] | None = None
    flops: int = 0  # dense multiply-accumulates of the layer per image per timestep (conv/linear only)
    image_input: bool = False  # the layer reads the model's input (the real-valued image) directly
    event_input: bool = False  # the layer reads event frames [T, B, C, H, W] (folded to [T·B, ...]) directly
    time_major: bool = True  # the input carries the T axis (False: the image stem and the head)
    # shapes per image and timestep (conv/linear only), for the memory-aware energy model
    in_elems: int = 0
    out_elems: int = 0
    weights: int = 0
    bias_words: int = 0  # output channels: the bias a layer has (or gets when its BatchNorm is folded into it)
    conv: bool = False

    @property
    def rate(self) -> float:
        return self.nonzero / self.total if self.total else 0.0

    @property
    def mean_abs(self) -> float:
        return self.abs_sum / self.total if self.total else 0.0

    @property
    def per_step(self) -> list[float] | None:
        if self.step_nonzero is None:
            return None
        return [n / t if t else 0.0 for n, t in zip(self.step_nonzero, self.step_total, strict=True)]

    def add(self, x: torch.Tensor, steps: int | None) -> None:
        x = x.detach()
        nz = x != 0
        self.nonzero += float(nz.sum())
        self.total += x.numel()
        self.abs_sum += float(x.abs().sum(dtype=torch.float64))
        if self.binary and bool(((x != 0) & (x != 1)).any()):
            self.binary = False
        if self.counts and not self.binary and bool(((x < 0) | (x != x.round())).any()):
            self.counts = False
        if len(self.values) <= 3:
            self.values |= set(torch.unique(x).tolist()[:4])
        if steps:
            per = nz.reshape(steps, -1).sum(1).tolist()
            n = x.numel() // steps
            if self.step_nonzero is None:
                self.step_nonzero, self.step_total = [0.0] * steps, [0.0] * steps
            for t in range(steps):
                self.step_nonzero[t] += per[t]
                self.step_total[t] += n

    @property
    def spikes(self) -> bool:
        """Binary or ternary ({−1, 0, 1}) values: each nonzero input triggers an accumulate, not a multiply."""
        return self.binary or (len(self.values) <= 3 and self.values <= {-1.0, 0.0, 1.0})


@dataclass
class NeuronStats:
    """Output of one neuron layer: its spikes (``out``), neurons per image and timestep, its declared update."""

    out: RateStats = field(default_factory=RateStats)
    neurons: int = 0
    steps: int = 0
    ops: object = None  # the neuron's NeuronOps (s2tdpt.snn.registry)
    emits: str = "spikes"


def _is_neuron(module: nn.Module) -> bool:
    return isinstance(getattr(type(module), "emits", None), str) and callable(getattr(module, "update_ops", None))


class FiringRateMonitor:
    """Context manager recording input rates of every ``nn.Conv2d`` / ``nn.Linear``, the attention branches and the
    output of every neuron layer (``neurons``)."""

    def __init__(self, model: nn.Module, timesteps: int | None = None, time_major_input: bool = False) -> None:
        """``time_major_input``: the model takes ``[T, B, ...]`` (not images ``[B, ...]``), e.g. a toy network."""
        self.model = model
        self.time_major_input = time_major_input
        self.timesteps = timesteps or getattr(getattr(model, "config", None), "timesteps", None)
        self.layers: dict[str, RateStats] = {}
        self.attention: dict[str, dict[str, RateStats]] = {}
        self.neurons: dict[str, NeuronStats] = {}
        self.images = 0
        self._batch = None
        self._input = None
        self._handles: list = []

    def _steps(self, x: torch.Tensor) -> int | None:
        """Number of timesteps along dim 0 if this tensor is time-major ([T, B, ...] or [T·B, ...])."""
        t, b = self.timesteps, self._batch
        if not t or not b:
            return None
        if x.dim() >= 2 and x.shape[0] == t and x.shape[1] == b:
            return t
        if x.shape[0] == t * b and t > 1:
            return t
        return None

    def _pre_hook(self, name: str):
        def hook(module: nn.Module, args) -> None:
            x = args[0]
            stats = self.layers.setdefault(name, RateStats())
            stats.image_input = x is self._input
            # event frames [T, B, C, H, W] enter the first conv folded to [T·B, C, H, W]: the same memory
            src = self._input
            stats.event_input = src.dim() == 5 and x.data_ptr() == src.data_ptr() and x.numel() == src.numel()
            steps = self._steps(x)
            stats.time_major = steps is not None or (self.timesteps == 1 and x.shape[0] == self._batch and x.dim() > 2)
            stats.add(x, steps)

        return hook

    def _flops_hook(self, name: str):
        def hook(module: nn.Module, args, out: torch.Tensor) -> None:
            per_output = module.in_features if isinstance(module, nn.Linear) else (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )  # fmt: skip
            steps = self._steps(args[0]) or 1
            stats = self.layers[name]
            per_image = steps * self._batch
            stats.flops = out.numel() // per_image * per_output
            stats.in_elems, stats.out_elems = args[0].numel() // per_image, out.numel() // per_image
            stats.weights = module.weight.numel()
            stats.bias_words = module.out_features if isinstance(module, nn.Linear) else module.out_channels
            stats.conv = isinstance(module, nn.Conv2d)

        return hook

    def _neuron_hook(self, name: str):
        def hook(module: nn.Module, args, out: torch.Tensor) -> None:
            stats = self.neurons.setdefault(name, NeuronStats(ops=module.update_ops(), emits=type(module).emits))
            steps = out.shape[0]  # neurons take and return time-first tensors [T, B, ...]
            stats.neurons, stats.steps = out.numel() // (steps * self._batch), steps
            stats.out.add(out, steps)

        return hook

    def _heads_hook(self, name: str):
        def hook(module: nn.Module, args, heads) -> None:
            branches = getattr(self._owner[name], "branches", ())
            entry = self.attention.setdefault(name, {})
            for branch, h in zip(branches, heads, strict=True):
                entry.setdefault(branch, RateStats()).add(h, self.timesteps if h.shape[0] == self.timesteps else None)

        return hook

    def _count_images(self, module: nn.Module, args) -> None:
        self._input = x = args[0]
        # images [B, C, H, W]; frames [T, B, C, H, W] (event data) and time-major toy inputs carry B in dim 1
        self._batch = x.shape[1 if self.time_major_input or x.dim() == 5 else 0]
        self.images += self._batch

    def __enter__(self) -> FiringRateMonitor:
        self._owner = {}
        self._handles.append(self.model.register_forward_pre_hook(self._count_images))
        for name, module in self.model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
                self._handles.append(module.register_forward_hook(self._flops_hook(name)))
            if _is_neuron(module):
                self._handles.append(module.register_forward_hook(self._neuron_hook(name)))
            if hasattr(module, "heads_tap"):
                self._owner[name] = module
                self._handles.append(module.heads_tap.register_forward_hook(self._heads_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def branch_rates(monitor: FiringRateMonitor, name: str, assume_rate: float | None = None) -> dict[str, float]:
    """The rate of each branch (Q, K, V) of the attention ``name`` as observed, or ``assume_rate`` for all."""
    return {b: (s.rate if assume_rate is None else assume_rate) for b, s in monitor.attention.get(name, {}).items()}


@torch.no_grad()
def measure_rates(model: nn.Module, batches, device: torch.device | str = "cpu", max_images: int | None = None):
    """Run ``model`` (eval mode) over ``(images, labels)`` batches (images or frames) under a monitor."""
    was_training = model.training
    model.eval()
    with FiringRateMonitor(model) as mon:
        for images, *_ in batches:
            if max_images is not None and mon.images >= max_images:
                break
            if max_images is not None:  # frames [T, B, ...] keep the batch in dim 1
                n = max_images - mon.images
                images = images[:, :n] if images.dim() == 5 else images[:n]
            model(images.to(device))
    model.train(was_training)
    return mon
