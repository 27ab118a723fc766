"""``norm_lif``: LIF(BatchNorm(x)) without stored slopes, against running the two modules as written."""

import contextlib
import copy

import pytest
import torch
from torch import nn

import s2tdpt
from s2tdpt.layers.norm import TokenBatchNorm
from s2tdpt.snn import LIFNode, compiled
from s2tdpt.snn import norm_lif as norm_lif_module
from s2tdpt.snn.norm_lif import norm_lif

pytestmark = pytest.mark.skipif(not compiled.available("cpu"), reason="torch.compile does not work here")
# T = 2, as in s2tdpt_tiny: the LIF kernels unroll the time loop, so each T compiles its own; these tests then share
# the kernels the model tests compile. One step of state (t = 1 after t = 0) is what the recomputation must carry.
T, B = 2, 3


def _layer(kind: str):
    """A trained-looking BN and a matching BN input in the layout ``norm_lif`` takes."""
    if kind == "tokens":
        bn, x, timesteps = TokenBatchNorm(16), torch.randn(T, B, 10, 16), None
    else:
        bn, x, timesteps = nn.BatchNorm2d(8), torch.randn(T * B, 8, 5, 5), T
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-0.5, 1.0)
    return bn, 2 * x + 0.5, timesteps


def _run(x0, bn, lif, timesteps, fused: bool, amp: bool, weights):
    x = x0.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        xin = x.to(torch.bfloat16) if amp else x  # a bf16 linear/conv output under autocast
        if fused:
            s = norm_lif(xin, bn, lif, timesteps)
        else:
            y = bn(xin)
            s = lif(y if timesteps is None else y.unflatten(0, (timesteps, -1)))
    (s.float() * weights).sum().backward()
    return s, x.grad, bn.weight.grad, bn.bias.grad


# every pair of (layout, bf16, charge) values once: 4 of the 8 combinations, each compiling its own kernels
@pytest.mark.parametrize(
    ("kind", "amp", "charge"),
    [
        ("tokens", False, "decay_input"),
        ("conv", False, "paper"),
        ("tokens", True, "paper"),
        ("conv", True, "decay_input"),
    ],
)
def test_norm_lif_equals_bn_then_lif(kind, amp, charge):
    torch.manual_seed(0)
    bn_ref, x0, timesteps = _layer(kind)
    bn_fused = copy.deepcopy(bn_ref)
    lif = LIFNode(backend="compiled", charge=charge)
    w = torch.randn(x0.shape if timesteps is None else (T, B, *x0.shape[1:]))  # weights of the spikes in a loss
    s_ref, *g_ref = _run(x0, bn_ref, lif, timesteps, False, amp, w)
    s, *g = _run(x0, bn_fused, lif, timesteps, True, amp, w)
    assert s.grad_fn is not None and type(s.grad_fn).__name__ == "_NormLIFBackward"
    # forward: the same operations, so identical spikes and running statistics
    assert s.dtype == s_ref.dtype and torch.equal(s, s_ref) and 0 < s.float().mean() < 1
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(bn_fused, name), getattr(bn_ref, name)), name
    # backward: the recomputed membrane can differ from BN's output by one unit in the last place
    rel = 1e-5 if not amp else 2e-2
    for a, b in zip(g, g_ref, strict=True):
        assert b.abs().sum() > 0
        assert (a - b).norm() <= rel * b.norm(), (a - b).norm() / b.norm()


def test_norm_lif_keeps_one_tensor_fewer_for_backward():
    torch.manual_seed(0)
    bn, x0, _ = _layer("tokens")
    lif = LIFNode(backend="compiled")
    saved = {}
    for fused in (False, True):
        storages = {}

        def pack(t, storages=storages):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        x = x0.clone().requires_grad_()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            norm_lif(x, bn, lif) if fused else lif(bn(x))
        saved[fused] = sum(storages.values())
    assert saved[False] - saved[True] >= x0.numel() * 4  # the float32 slopes of every element are gone


def test_norm_lif_runs_the_modules_as_written_where_it_must():
    torch.manual_seed(0)
    bn, x0, _ = _layer("tokens")
    lif = LIFNode(backend="compiled")
    x = x0.clone().requires_grad_()
    bn.eval()  # running statistics: plain BN then LIF
    assert type(norm_lif(x, bn, lif).grad_fn).__name__ != "_NormLIFBackward"
    bn.train()
    seen = []
    handle = lif.register_forward_hook(lambda m, i, o: seen.append(o))  # an observer (firing rates, Grad-CAM)
    out = norm_lif(x, bn, lif)
    handle.remove()
    assert len(seen) == 1 and seen[0] is out and type(out.grad_fn).__name__ != "_NormLIFBackward"
    with torch.no_grad():  # no gradients wanted: the modules as written
        assert torch.equal(norm_lif(x, bn, lif), out)
    torch_lif = LIFNode(backend="torch")
    assert type(norm_lif(x, bn, torch_lif).grad_fn).__name__ != "_NormLIFBackward"


def test_model_with_fused_layers_matches_the_reference_model_step():
    """A training step of s2tdpt_tiny with compiled LIFs (fused BN+LIF layers) against the python-loop LIF."""
    torch.manual_seed(0)
    ref = s2tdpt.create_model("s2tdpt_tiny", lif_backend="torch", depth=2)
    fast = s2tdpt.create_model("s2tdpt_tiny", lif_backend="compiled", depth=2)
    fast.load_state_dict(ref.state_dict())
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    for m in (ref, fast):
        nn.functional.cross_entropy(m(x), y).backward()
    for (name, a), b in zip(fast.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5, msg=name)
    for (name, a), b in zip(fast.named_buffers(), ref.buffers(), strict=True):
        assert torch.equal(a, b), name  # running statistics updated identically


def test_fused_and_unfused_model_agree_under_bf16_autocast():
    """The shipped setting (bf16 autocast, compiled LIF) with the fused layers switched off and on."""
    torch.manual_seed(0)
    model = s2tdpt.create_model("s2tdpt_tiny", lif_backend="compiled", depth=1)
    state = copy.deepcopy(model.state_dict())
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    results = []
    for fused in (True, False):
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        with contextlib.nullcontext() if fused else norm_lif_module.unfused():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (loss_f, grads_f), (loss_u, grads_u) = results
    assert loss_f == loss_u  # identical forward
    flat_f, flat_u = torch.cat([g.flatten() for g in grads_f]), torch.cat([g.flatten() for g in grads_u])
    assert flat_u.norm() > 0 and (flat_f - flat_u).norm() <= 2e-2 * flat_u.norm()


@pytest.mark.parametrize(
    "options",
    [dict(affine=False), dict(momentum=None), dict(track_running_stats=False), dict(frozen=True)],
    ids=["no-affine", "cumulative-average", "no-running-stats", "frozen-affine"],
)
def test_norm_lif_follows_batchnorm_options(options):
    torch.manual_seed(0)
    frozen = options.pop("frozen", False)
    bn_ref = TokenBatchNorm(16, **options)
    if frozen:
        bn_ref.requires_grad_(False)
    bn_fused = copy.deepcopy(bn_ref)
    lif = LIFNode(backend="compiled")
    x0, w = 2 * torch.randn(T, B, 10, 16) + 0.5, torch.randn(T, B, 10, 16)
    for _ in range(2):  # two steps: the cumulative average depends on num_batches_tracked
        outs = []
        for bn, fused in ((bn_ref, False), (bn_fused, True)):
            x = x0.clone().requires_grad_()
            s = norm_lif(x, bn, lif) if fused else lif(bn(x))
            (s * w).sum().backward()
            outs.append((s, x.grad))
        (s_ref, gx_ref), (s_f, gx_f) = outs
        assert torch.equal(s_f, s_ref)
        torch.testing.assert_close(gx_f, gx_ref, rtol=1e-4, atol=1e-6)
    for (name, a), b in zip(bn_fused.state_dict().items(), bn_ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(bn_fused.parameters(), bn_ref.parameters(), strict=True):
        assert (a.grad is None) == frozen and (frozen or torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6))


def test_backward_hooks_and_other_batchnorms_run_the_modules_as_written():
    torch.manual_seed(0)
    lif = LIFNode(backend="compiled")
    x = torch.randn(T, B, 10, 16, requires_grad=True)
    bn = TokenBatchNorm(16)
    bn.register_full_backward_hook(lambda m, gi, go: None)
    assert type(norm_lif(x, bn, lif).grad_fn).__name__ != "_NormLIFBackward"
    plain = nn.BatchNorm1d(16)  # normalises dim 1 of [N, C, L], not the token layout's last dim, nor BatchNorm2d's
    assert type(norm_lif(x.reshape(T, 16, -1), plain, lif).grad_fn).__name__ != "_NormLIFBackward"
    assert type(norm_lif(x.reshape(T * B, 16, 10), plain, lif, T).grad_fn).__name__ != "_NormLIFBackward"


def test_tokenizer_with_fused_stages_equals_its_stages_run_in_sequence():
    """The tokenizer pairs each stage's BN with the *next* stage's LIF; the stage modules run in order must agree."""
    torch.manual_seed(0)
    model = s2tdpt.create_model("s2tdpt_tiny", lif_backend="compiled")
    sps = model.patch_embed
    img = torch.randn(3, 3, 32, 32)
    reference = copy.deepcopy(sps)
    fused_calls = []
    original = norm_lif_module._NormLIF.apply
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(norm_lif_module._NormLIF, "apply", lambda *a: fused_calls.append(1) or original(*a))
        tokens = sps(img)
    assert len(fused_calls) == 3  # BN of stages 1–3 with the LIF of stages 2–4
    z0 = reference.stem_bn(reference.stem_conv(img))
    x = reference.stages(z0.unsqueeze(0).expand(reference.timesteps, *z0.shape))
    expected = x.flatten(3).transpose(2, 3)
    assert torch.equal(tokens, expected)
    for a, b in zip(sps.buffers(), reference.buffers(), strict=True):
        assert torch.equal(a, b)
