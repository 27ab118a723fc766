"""Fast paths against their readable references: compiled LIF, folded BatchNorm, channels-last pooling, launcher."""

import copy
import json
import platform
import sys

import pytest
import torch
from firing import amplify_qkv, assert_late_neurons_fire, warm_batchnorm

import s2tdpt
from s2tdpt.bench import train_step
from s2tdpt.cli.launch import TUNED_MALLOC, wants_tuned_malloc
from s2tdpt.engine import hardware
from s2tdpt.engine.config import TrainConfig
from s2tdpt.engine.evaluate import resolve_amp
from s2tdpt.engine.fast import CompiledInference, compile_training, fold_batchnorm, prepare_inference
from s2tdpt.engine.hardware import native_bf16_cpu
from s2tdpt.engine.train import resolve_compile
from s2tdpt.layers import pool
from s2tdpt.snn import LIFNode, compiled

needs_compile = pytest.mark.skipif(not compiled.available("cpu"), reason="torch.compile does not work here")


@needs_compile
@pytest.mark.parametrize(
    "charge,dtype", [("decay_input", torch.float32), ("paper", torch.bfloat16)], ids=["decay_input-fp32", "paper-bf16"]
)
def test_compiled_lif_equals_the_reference_loop(charge, dtype):
    # Each (charge, dtype) compiles its own three kernels: the two cases cover both charges and both slope dtypes.
    torch.manual_seed(0)
    x = (torch.randn(4, 6, 40) * 1.5).to(dtype)
    w = torch.randn(4, 6, 40).to(dtype)
    results = []
    for backend in ("torch", "compiled"):
        xi = x.clone().requires_grad_()
        s = LIFNode(backend=backend, charge=charge)(xi)
        (s * w).sum().backward()
        results.append((s, xi.grad))
    (s_ref, g_ref), (s_c, g_c) = results
    assert s_c.dtype == dtype and torch.equal(s_c, s_ref)
    # float32: rounding only; bf16: the surrogate slope is stored in bf16 (8 bits of mantissa)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(g_c.float(), g_ref.float(), **tol)
    assert g_ref.abs().sum() > 0 and 0 < s_ref.float().mean() < 1
    with torch.no_grad():  # the inference kernel (no surrogate slopes kept)
        assert torch.equal(LIFNode(backend="compiled", charge=charge)(x), s_ref)


def tiny_models(*lif_backends: str) -> list[torch.nn.Module]:
    """One seeded ``s2tdpt_tiny`` per LIF backend, all with the first one's weights (Q/K/V gain 2, so that the
    attention neuron fires too)."""
    torch.manual_seed(0)
    models = [amplify_qkv(s2tdpt.create_model("s2tdpt_tiny", lif_backend=b)) for b in lif_backends]
    for m in models[1:]:
        m.load_state_dict(models[0].state_dict())
    return models


def loss_and_grads(net, params, x, y) -> tuple[float, torch.Tensor]:
    """Cross-entropy of ``net(x)`` and the gradients of ``params`` after its backward, flattened into one vector."""
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in params])


@needs_compile
def test_compiled_backend_in_a_model_trains_like_the_reference():
    ref, fast = tiny_models("torch", "compiled")
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    assert_late_neurons_fire(copy.deepcopy(ref), x)  # training mode (batch statistics), on a copy: BN buffers stay
    losses, grads = zip(*(loss_and_grads(m, m.parameters(), x, y) for m in (ref, fast)), strict=True)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-5)


@needs_compile
def test_compiled_training_step_equals_eager():
    # whole-model torch.compile of forward and backward against the same model run eagerly (fp32): the same loss,
    # gradients and BN running statistics to rounding. (Over many AdamW steps the runs drift apart: its first update
    # is ±lr wherever a gradient is ~0, so rounding-level differences there become parameter differences of 2·lr.)
    eager, model = tiny_models("compiled", "compiled")
    net = compile_training(model)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    assert_late_neurons_fire(tiny_models("torch")[0], x)  # the same weights in training mode (batch statistics)
    pairs = ((eager, eager.parameters()), (net, model.parameters()))
    losses, grads = zip(*(loss_and_grads(m, params, x, y) for m, params in pairs), strict=True)
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-4 * grads[0].abs().max().item())
    for (name, a), (_, b) in zip(eager.named_buffers(), model.named_buffers(), strict=True):
        torch.testing.assert_close(b, a, msg=name)
    assert all(k.startswith("_orig_mod.") for k in net.state_dict())  # hence train.py saves `model`, not `net`


@pytest.mark.parametrize("attention", ["stdp", "ssa", "qk_token"])
def test_folded_batchnorm_and_channels_last_give_the_same_outputs(attention):
    # Non-trivial affine parameters, then running statistics warmed on inputs like x: the eval-mode network fires
    # through its last block (at initial statistics it is silent past the first stage, and only the folded biases
    # would be compared), so a wrong fold of any layer's weights changes the logits.
    torch.manual_seed(0)
    m = s2tdpt.create_model("s2tdpt_tiny", attention=attention, depth=2).double()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    warm_batchnorm(m, [torch.randn(6, 3, 32, 32, dtype=torch.float64) for _ in range(3)])
    x = torch.randn(5, 3, 32, 32, dtype=torch.float64)
    assert_late_neurons_fire(m, x)
    folded, ready = fold_batchnorm(m), prepare_inference(m)
    assert not any(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in folded.modules())
    assert any(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in m.modules())  # original untouched
    convs = [x for x in ready.modules() if isinstance(x, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert all(x.weight.is_contiguous() for x in m.modules() if isinstance(x, torch.nn.Conv2d))  # untouched
    with torch.no_grad():
        torch.testing.assert_close(folded(x), m(x), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(ready(x), m(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("binary", [True, False])
def test_channels_last_pool_equals_nn_maxpool(dtype, binary):
    # binary spikes put many ties in a window: the argmax (and so the gradient) must pick the same one
    torch.manual_seed(0)
    x = (torch.rand(6, 5, 12, 10) < 0.3).to(dtype) if binary else torch.randn(6, 5, 12, 10, dtype=dtype)
    fast, ref = pool.ChannelsLastMaxPool2d(3, stride=2, padding=1), torch.nn.MaxPool2d(3, stride=2, padding=1)
    g = torch.randn(6, 5, 6, 5, dtype=dtype)
    outs, grads = [], []
    for layer in (fast, ref):
        xi = x.clone().requires_grad_()
        out = layer(xi)
        out.backward(g)
        outs.append(out)
        grads.append(xi.grad)
        with torch.no_grad():
            assert torch.equal(layer(x), out)  # the inference path too
    assert torch.equal(outs[0], outs[1]) and outs[0].is_contiguous()
    assert torch.equal(grads[0], grads[1])
    assert torch.equal(pool.ChannelsLastMaxPool2d(2)(x), torch.nn.MaxPool2d(2)(x))  # kernel 2, stride = kernel
    with_indices = pool.ChannelsLastMaxPool2d(3, 2, 1, return_indices=True)(x)  # an option it leaves to the parent
    assert torch.equal(with_indices[1], torch.nn.MaxPool2d(3, 2, 1, return_indices=True)(x)[1])


def test_tokenizer_pool_gives_the_reference_gradients(monkeypatch):
    torch.manual_seed(0)
    m = s2tdpt.create_model("s2tdpt_tiny")
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])

    def grads():
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        return [p.grad.clone() for p in m.parameters()]

    fast = grads()
    monkeypatch.setattr(pool.ChannelsLastMaxPool2d, "forward", torch.nn.MaxPool2d.forward)
    reference = grads()
    for a, b in zip(fast, reference, strict=True):
        assert torch.equal(a, b)


def test_launcher_allocator_decision():
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert wants_tuned_malloc({}) == on_glibc
    assert not wants_tuned_malloc({"S2TDPT_MALLOC": "default"})
    assert not wants_tuned_malloc({"GLIBC_TUNABLES": "glibc.malloc.check=0"})  # the user's own setting wins
    assert "mmap_max=0" in TUNED_MALLOC and "trim_threshold" in TUNED_MALLOC


def test_lif_backend_is_validated():
    with pytest.raises(ValueError, match="lif_backend"):
        TrainConfig(lif_backend="cuda-graph")
    with pytest.raises(ValueError, match="lif_backend"):
        s2tdpt.create_model("s2tdpt_tiny", lif_backend="magic")


def test_compile_setting_is_validated_and_resolved(monkeypatch):
    with pytest.raises(ValueError, match="config key 'compile' must be one of"):
        TrainConfig(compile="yes")
    assert TrainConfig(compile=False).compile == "off" and TrainConfig(compile=True).compile == "on"  # YAML off/on
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(compiled, "available", lambda device_type="cpu": True)
    bf16 = dict(kind="avx512_bf16")
    assert resolve_compile("auto", "compiled", cpu, **bf16) == "on"  # measured faster and leaner there
    assert resolve_compile("auto", "compiled", cpu, kind="amx") == "off"  # measured slower with AMX
    assert resolve_compile("auto", "compiled", cpu, kind="avx2") == "off"  # and in float32 on AVX2
    assert resolve_compile("auto", "compiled", cpu, amp="none", **bf16) == "off"  # measured in bf16 only
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert resolve_compile("auto", "compiled", cpu) == "on"  # this CPU's kind by default
    assert resolve_compile("auto", "fused", cpu, **bf16) == "off"  # the quick start: no compile time
    assert resolve_compile("auto", "compiled", cuda, **bf16) == "off"  # not measured on CUDA yet
    assert resolve_compile("auto", "compiled", cpu, world_size=2, **bf16) == "off"  # nor with DDP
    assert resolve_compile("on", "torch", cuda) == "on" and resolve_compile("off", "compiled", cpu) == "off"
    monkeypatch.setattr(compiled, "available", lambda device_type="cpu": False)  # no C++ compiler, say
    assert resolve_compile("auto", "compiled", cpu, **bf16) == "off"
    with pytest.raises(ValueError, match="--compile on needs a working torch.compile on cpu"):
        resolve_compile("on", "compiled", cpu)
    with pytest.raises(ValueError, match="s2tdpt eval --compile"):
        CompiledInference(s2tdpt.create_model("s2tdpt_tiny"))


def test_compiled_inference_only_evaluates():
    m = s2tdpt.create_model("s2tdpt_tiny").train()
    fast = CompiledInference(m)  # nothing compiles before the first call
    assert not fast.training and not fast.model.training and m.training  # the original is left as it was
    assert fast.config == m.config
    assert "_graph" not in dict(fast.named_children())  # the graph wraps fast.model: not registered twice
    assert all(k.startswith("model.") for k in fast.state_dict())
    with pytest.raises(RuntimeError, match="only evaluates"):
        fast.train()


@needs_compile
def test_compiled_inference_equals_the_prepared_model():
    # statistics warmed (and firing checked) under the reference LIF, which gives the same spikes without compiling
    warm = warm_batchnorm(tiny_models("torch")[0], [torch.randn(8, 3, 32, 32) for _ in range(2)])
    x = torch.randn(4, 3, 32, 32)
    assert_late_neurons_fire(warm, x)  # eval mode that fires: the outputs depend on x
    m = s2tdpt.create_model("s2tdpt_tiny", lif_backend="compiled")
    m.load_state_dict(warm.state_dict())
    m.eval()
    fast, ref = CompiledInference(m), prepare_inference(m)
    graph, calls = fast._graph, []
    fast.__dict__["_graph"] = lambda images: calls.append(images.shape[0]) or graph(images)
    torch._dynamo.utils.counters.clear()
    with torch.no_grad():
        expected = ref(x)
    torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=1e-5)  # float32: the graph, built now
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    torch.testing.assert_close(fast(x[:2]), expected[:2], rtol=1e-5, atol=1e-5)  # another size: eager
    torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=1e-5)
    assert calls == [4, 4] and fast._batch == 4


def test_model_macs_counts_every_conv_and_linear_once_per_output():
    # a toy whose multiply-accumulates are easy to count by hand: conv (out · C_in · 3 · 3), linear (out · in)
    toy = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.Flatten(), torch.nn.Linear(64, 5)
    )
    assert train_step.model_macs(toy, torch.randn(2, 3, 4, 4)) == 2 * (4 * 16 * 3 * 9) + 2 * (5 * 64)


def test_train_step_benchmark_reports_every_configuration(capsys, monkeypatch):
    # tiny model, reference only (no compilation): checks a worker process, the FLOP accounting and the JSON. The
    # training row comes from a real worker process; the inference row runs the same worker entry point (main) in
    # this process, and the GEMM peaks are measured here on small matrices: two interpreter start-ups and two
    # 2048² products fewer, nothing less checked about the report.
    real_worker = train_step._worker

    def worker(argv: list[str], tuned: bool) -> dict:
        if argv[0] == "--gemm-peak":
            return {"flop_s": train_step.gemm_peak(argv[1], size=64, reps=2)}
        if argv[:3] == ["--worker", "reference", "train"]:
            return real_worker(argv, tuned)
        assert train_step.main(argv) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    monkeypatch.setattr(train_step, "_worker", worker)
    argv = ["--model", "s2tdpt_tiny", "--batch-size", "2", "--steps", "1", "--malloc", "default"]
    for native in (True, False):  # the bf16 GEMM peak is measured only where bf16 is native
        monkeypatch.setattr(hardware, "cpu_flags", lambda n=native: frozenset({"avx512_bf16"} if n else {"avx2"}))
        assert train_step.main(argv + ["--configs", "reference", "--modes", "infer", "--json"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert ("bf16" in out["rows"][0]["gemm_peaks"]) == native
    monkeypatch.undo()
    monkeypatch.setattr(train_step, "_worker", worker)
    assert train_step.main(argv + ["--configs", "reference", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {r["mode"]: r for r in out["rows"]}
    assert set(rows) == {"train", "infer"} and all("error" not in r for r in rows.values()), rows
    assert rows["train"]["flops"] == 3 * rows["infer"]["flops"] > 0  # forward, input grad, weight grad
    for r in rows.values():
        assert r["images_per_s"] == pytest.approx(2 / r["seconds"])
        assert r["peak_mb"] > 100 and r["gemm_peaks"]["fp32"] > 0 and r["malloc"] == "default"


def test_the_cpu_kind_follows_its_most_capable_flag():
    from s2tdpt.engine.hardware import cpu_kind

    flags = {
        "amx": "fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile",
        "avx512_bf16": "avx2 avx512f avx512_bf16",
        "avx512": "avx2 avx512f",
        "avx2": "sse4_2 avx2 fma",
        "other": "sse4_2",
    }
    for kind, line in flags.items():
        assert cpu_kind(frozenset(line.split())) == kind
        assert native_bf16_cpu(frozenset(line.split())) == (kind in ("amx", "avx512_bf16"))


@pytest.mark.parametrize("kind, amp", [("amx", "bf16"), ("avx512_bf16", "bf16"), ("avx512", "none"), ("avx2", "none")])
def test_amp_auto_follows_the_cpu_kind(monkeypatch, kind, amp):
    flags = {"amx": {"amx_bf16"}, "avx512_bf16": {"avx512f", "avx512_bf16"}, "avx512": {"avx512f"}, "avx2": {"avx2"}}
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags[kind]))
    assert resolve_amp("auto", torch.device("cpu")) == amp
