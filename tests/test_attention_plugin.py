"""A new mechanism is one class: the registry, the model, energy, explain and ``bench budget`` pick it up."""

import json
import re

import pytest
import torch
import yaml
from conftest import step_clock
from firing import warm_batchnorm

import s2tdpt
from s2tdpt.analysis.attention_maps import attention_maps
from s2tdpt.analysis.energy import estimate_energy
from s2tdpt.analysis.firing import measure_rates
from s2tdpt.analysis.memory_energy import MemoryCosts, memory_aware_energy
from s2tdpt.attention import create_attention, list_attentions, register_attention
from s2tdpt.attention import registry as attention_registry
from s2tdpt.attention.base import AttentionOp, AttentionWork, ProjectedAttention, SpikingAttention, accumulate
from s2tdpt.bench.budget import main as budget_main
from s2tdpt.snn import NeuronSpec


class TokenMean(SpikingAttention):
    """Toy mechanism: every token receives SN(s · mean over tokens of V)."""

    branches = ("v",)
    default_scale = 4.0

    def mix(self, v: torch.Tensor) -> torch.Tensor:
        return self.fire(v.mean(-2, keepdim=True).expand_as(v))

    def energy_ops(self, timesteps, rates, **_):
        n, d = self.tokens, self.dim
        return [AttentionOp("Σₙ V", "AC", n * d, rates["v"], timesteps * rates["v"] * n * d)], {}

    def memory_work(self, timesteps, rates):
        n, d = self.tokens, self.dim
        return [accumulate("Σₙ V", timesteps * rates["v"] * n * d, d)], {}

    def maps(self, heads):
        return {"mean V per channel": heads["v"].mean(-2).mean(0)}  # [H, D_H]


class Undescribed(ProjectedAttention):
    branches = ("v",)

    def mix(self, v: torch.Tensor) -> torch.Tensor:
        return v


@pytest.fixture
def plugin():
    """Register the toy mechanisms for one test and remove them afterwards (the registry is process-wide)."""
    register_attention("token_mean")(TokenMean)
    register_attention("undescribed")(Undescribed)
    yield
    for name in ("token_mean", "undescribed"):
        attention_registry._ATTENTIONS.pop(name)


def test_a_registered_class_is_a_mechanism_everywhere(plugin, image_folder, tmp_path, capsys):
    assert {"token_mean", "undescribed"} <= set(list_attentions())
    mixer = create_attention("token_mean", 32, 2, neuron=NeuronSpec(), grid=(4, 4), scale=2.0)
    assert mixer.scale == 2.0 and isinstance(mixer.attn_lif, torch.nn.Module)
    with pytest.raises(ValueError, match=r"does not accept option\(s\) \['order'\]"):
        create_attention("token_mean", 32, 2, neuron=NeuronSpec(), grid=(4, 4), order="kv_first")

    torch.manual_seed(0)
    model = s2tdpt.create_model("s2tdpt_tiny", attention="token_mean")
    x = torch.randn(8, 3, 32, 32)
    warm_batchnorm(model, [x])
    mon = measure_rates(model, [(x,)])
    report = estimate_energy(model, mon)
    mine = [line for line in report.lines if line.layer.endswith(".attn Σₙ V")]
    assert len(mine) == model.config.depth
    rate_v = mon.attention["blocks.0.attn"]["v"].rate
    assert rate_v > 0  # the network fires, so the line is not trivially zero
    n, d = model.config.num_tokens, model.config.embed_dim
    assert mine[0].ops == pytest.approx(model.config.timesteps * rate_v * n * d)
    # the memory-aware model prices its declared work: T·r·N·D accumulates, 3 accesses each, a memory of D words
    costs = MemoryCosts(e_add_pj=1.0, sram_base_pj=2.0, sram_pj_per_byte=0.0)
    work = [x for x in memory_aware_energy(model, mon, costs).lines if x.layer == "blocks.0.attn Σₙ V"]
    ops = model.config.timesteps * rate_v * n * d
    assert len(work) == 1 and work[0].parts == pytest.approx(dict(arithmetic=ops, attention=3 * ops * 2.0))
    maps = attention_maps(model, x[0])
    assert list(maps) == ["mean V per channel"] and maps["mean V per channel"].shape == (model.config.num_heads, 16)

    # a mechanism that does not describe itself is named in the error, not a bare KeyError
    model = s2tdpt.create_model("s2tdpt_tiny", attention="undescribed")
    with pytest.raises(NotImplementedError, match="'undescribed' does not describe its operation counts"):
        estimate_energy(model, measure_rates(model, [(x[:2],)]))
    with pytest.raises(NotImplementedError, match="'undescribed' does not describe its maps"):
        attention_maps(model, x[0])
    with pytest.raises(NotImplementedError, match="'undescribed' does not describe its memory traffic"):
        model.blocks[0].attn.memory_work(4, dict(v=0.1))

    # bench budget runs it by name, and refuses an unknown one before writing anything
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(dict(
        model="s2tdpt_tiny", dataset="imagefolder", data_dir=str(image_folder), epochs=10, time_budget=1.0,
        limit_train=4, limit_test=4, batch_size=4, warmup_epochs=0, amp="none",
    )))  # fmt: skip
    args = ["-c", str(recipe), "--out-root", str(tmp_path / "runs"), "--energy-images", "4", "--attentions"]
    with pytest.raises(SystemExit, match="unknown --attentions nope; available: .*token_mean"):
        budget_main([*args, "token_mean", "nope"])
    assert not (tmp_path / "runs").exists()
    with step_clock(1.0) as clock:
        assert budget_main([*args, "token_mean"], timer=clock) == 0
    assert re.search(r"^\| token_mean \| 0 \| [\d,]+ \|", capsys.readouterr().out, re.M)
    energy = json.loads((tmp_path / "runs" / "token_mean-s0" / "energy.json").read_text())
    assert energy["memory_aware_mj"] > energy["energy_mj"] > 0 and "break_even_rate" in energy
    saved = yaml.safe_load((tmp_path / "runs" / "token_mean-s0" / "config.yaml").read_text())
    assert saved["attention"] == "token_mean"


@pytest.mark.parametrize("name", list_attentions())
def test_every_builtin_describes_itself(name):
    mixer = create_attention(name, 32, 2, neuron=NeuronSpec(), grid=(4, 4))
    lines, info = mixer.energy_ops(4, dict(q=0.2, k=0.1, v=0.15))
    assert isinstance(info, dict) and all(isinstance(line, AttentionOp) for line in lines)
    assert all(line.kind in ("MAC", "AC") and line.ops >= 0 for line in lines)
    assert (name == "identity") == (not lines)  # only the control that mixes nothing charges nothing
    heads = {b: (torch.rand(2, 2, 16, 16) < 0.3).float() for b in mixer.branches}  # [T, H, N, D_H]
    work, info = mixer.memory_work(4, dict(q=0.2, k=0.1, v=0.15))
    assert isinstance(info, dict) and all(isinstance(w, AttentionWork) for w in work)
    assert all(min(w.add, w.mul, w.reads, w.writes) >= 0 and w.words > 0 for w in work)
    assert (name == "identity") == (not work)
    maps = mixer.maps(heads)
    assert (name == "identity") == (not maps)
    assert all(torch.isfinite(m).all() for m in maps.values())
