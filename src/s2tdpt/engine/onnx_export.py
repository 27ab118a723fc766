"""ONNX export for inference: images ``[B, C, H, W]`` → logits ``[B, classes]``, any batch size.

The graph is the whole forward with its time loop unrolled for the model's T — not a per-step graph with the
membranes as explicit inputs and outputs. Why: the model is defined on a fixed T (direct encoding repeats the image
T times, the head averages over T), so one call is one prediction, as an ONNX runtime user expects; and every
neuron's state starts at rest and ends inside the call, so no state has to cross the graph's boundary. The cost is
a graph T times longer, which is small at the T of these models (1–4).

What is exported is the same function in its plainest form (tested against PyTorch's logits): eval mode, each
BatchNorm folded into its conv or linear, the neurons' reference loop (``lif_backend="torch"``: no custom
autograd kernels in the graph) and, for the STDP attention, its dense form (``impl="dense"``: matrix products
rather than the linear form's scatter-adds, which ONNX runtimes implement unevenly).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import torch
from torch import nn

from ..attention import attention_options
from .fast import fold_batchnorm

OPSET = 18


def onnx_ready(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in the form that is exported (see the module docstring)."""
    from ..models import S2TDPT

    cfg = model.config
    changes = dict(lif_backend="torch")
    if "impl" in attention_options(cfg.attention):
        changes["attn_kwargs"] = {**cfg.attn_kwargs, "impl": "dense"}
    plain = S2TDPT(dataclasses.replace(cfg, **changes))
    plain.load_state_dict(model.state_dict())
    return fold_batchnorm(plain)


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``model`` as ONNX to ``path`` (dynamic batch size). Needs the ``onnx`` extra (onnx, onnxscript)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ValueError("ONNX export needs onnx and onnxscript: pip install 's2tdpt[onnx]'") from None
    ready = onnx_ready(model)
    cfg = model.config
    example = torch.zeros(2, cfg.in_chans, cfg.img_size, cfg.img_size)
    path = Path(path)
    batch = torch.export.Dim("batch")
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates each stage
            program = torch.onnx.export(
                ready, (example,), dynamo=True, opset_version=opset, dynamic_shapes=({0: batch},),
                input_names=["images"], output_names=["logits"],
            )  # fmt: skip
        program.save(str(path))
    except Exception as e:  # the exporter's failures come from torch.export, onnxscript or onnx alike
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"ONNX export of this model failed ({type(e).__name__}: {first})") from e
    return path


def export_onnx_folder(ckpt: dict, out: str | Path, source: str = "the checkpoint") -> Path:
    """``model.onnx`` beside the same ``config.json`` as the safetensors export, written as one folder (complete
    or absent). Image models only: an event-frame model takes ``[T, B, C, H, W]`` frames, not exported yet."""
    from .pretrained import model_with_weights, staged_folder, write_description

    if (ckpt.get("dataset") or {}).get("layout") == "frames":
        raise ValueError(
            f"{source} was trained on event frames [T, B, C, H, W]; ONNX export covers image models only for now "
            "(export its weights with the default --format safetensors)"
        )
    model = model_with_weights(ckpt, source)
    with staged_folder(out) as tmp:
        export_onnx(model, tmp / "model.onnx")  # it carries the weights
        write_description(ckpt, tmp)
    return Path(out)
