"""The benchmark harness: FLOP and byte accounting, the floor, timing plumbing, JSON schema and the CLI.

Tiny sizes only, and no assertion on how fast anything is: these check that the numbers the harness
reports are computed as documented (docs/benchmarks.md).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import blocks
from assemble.cli import main
from benchmarks import (
    SCHEMA,
    Case,
    Context,
    Probe,
    Settings,
    Work,
    all_cases,
    compulsory_bytes,
    count_flops,
    floor,
    run_case,
    run_probe,
    run_suite,
    select,
    time_interleaved,
)
from benchmarks.block_cases import BLOCK_CASES
from benchmarks.cases import block_build
from benchmarks.env import allocator, environment
from benchmarks.report import compare, markdown, table
from benchmarks.targets import TARGETS, evaluate

CPU = torch.device("cpu")
# A fake probe with round numbers: 1 GB/s and 1 GFLOP/s.
PROBE = Probe(copy_bytes_per_s=1e9, fresh_copy_bytes_per_s=1e8, matmul_flops_per_s=1e9, conv_flops_per_s=5e8)
QUICK = Settings(rounds=2, min_run_time=0.001, warmup=1)


def conv_case(B: int = 2, C: int = 4, O: int = 6, H: int = 5) -> Case:
    def build(ctx: Context):
        return block_build(ctx, lambda: blocks.LAYERS.create("equalized_conv", in_channels=C, out_channels=O),
                           (ctx.randn(B, C, H, H),), config={"x": [B, C, H, H]})
    return Case("equalized_conv/tiny", "block", "equalized_conv", "test", build)


def blur_case() -> Case:
    def build(ctx: Context):
        return block_build(ctx, lambda: blocks.RESAMPLE.create("blur"), (ctx.randn(2, 3, 8, 8),),
                           config={"x": [2, 3, 8, 8]})
    return Case("blur/tiny", "block", "blur", "test", build)


# ---- accounting --------------------------------------------------------------------------------------


def test_compulsory_bytes_reads_inputs_and_state_writes_outputs_and_gradients():
    x = torch.zeros(10, requires_grad=True)  # 40 bytes, needs grad
    idx = torch.zeros(3, dtype=torch.int64)  # 24 bytes, no grad
    w = torch.zeros(5, requires_grad=True)  # 20 bytes
    buf = torch.zeros(2)  # 8 bytes, no grad
    out = torch.zeros(7)  # 28 bytes
    fwd, fwd_bwd = compulsory_bytes([x, idx], [w, buf, w], [out])  # w listed twice counts once
    i, p, o = 40 + 24, 20 + 8, 28
    assert fwd == i + p + o
    assert fwd_bwd == fwd + (o + i + p + 40 + 20)


def test_flops_follow_the_conv_and_matmul_formulas_forward_and_backward():
    B, C, O, H, k = 2, 3, 5, 6, 3
    x = torch.randn(B, C, H, H, requires_grad=True)
    w = torch.randn(O, C, k, k, requires_grad=True)
    fwd = 2 * B * C * O * k * k * H * H  # one multiply-add per weight tap per output
    assert count_flops(lambda: F.conv2d(x, w, padding=1)) == fwd
    # backward: the input gradient and the weight gradient cost one forward each
    assert count_flops(lambda: torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), [x, w])) == 3 * fwd
    a, b = torch.randn(4, 7), torch.randn(7, 9)
    assert count_flops(lambda: a @ b) == 2 * 4 * 7 * 9
    assert count_flops(lambda: (a * 2).relu()) == 0  # elementwise work is not counted


def test_floor_is_the_slower_of_moving_the_bytes_and_doing_the_flops():
    assert floor(Work(flops=10, bytes=1000), bandwidth=100.0, compute=10.0) == (10.0, "memory")
    assert floor(Work(flops=1000, bytes=10), bandwidth=100.0, compute=10.0) == (100.0, "compute")


def test_probe_reports_positive_rates_and_uses_the_faster_compute():
    p = run_probe(CPU, min_run_time=0.001, small=True)
    assert p.bandwidth == p.copy_bytes_per_s > 0 and p.fresh_copy_bytes_per_s > 0
    assert p.compute == max(p.matmul_flops_per_s, p.conv_flops_per_s) > 0
    d = p.as_dict()
    assert {"bandwidth_bytes_per_s", "compute_flops_per_s", "sizes"} <= set(d)


# ---- timing ------------------------------------------------------------------------------------------


def test_time_interleaved_merges_every_round_of_every_function():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1
        return fn

    rounds = []
    stats = time_interleaved({"a": make("a"), "b": make("b")}, CPU, rounds=3, min_run_time=0.001, warmup=2,
                             on_round=lambda: rounds.append(1))
    assert set(stats) == {"a", "b"} and len(rounds) == 3
    for s in stats.values():
        assert s.n >= 3 and s.median > 0 and s.iqr >= 0
    assert calls["a"] > 3 and calls["b"] > 3


# ---- cases and rows ----------------------------------------------------------------------------------


def test_run_case_reports_work_floor_ratio_and_speedup_for_every_variant_and_pass():
    rows = run_case(conv_case(), Context(CPU), PROBE, QUICK)
    assert {(r["mode"], r["variant"]) for r in rows} == {(m, v) for m in ("fwd", "fwd+bwd") for v in ("ref", "fast")}
    B, C, O, H = 2, 4, 6, 5
    conv = 2 * B * C * O * 9 * H * H
    x_bytes, w_bytes, b_bytes, filt, out_bytes = 4 * B * C * H * H, 4 * O * C * 9, 4 * O, 4 * 16, 4 * B * O * H * H
    for r in rows:
        assert "error" not in r
        fwd = r["mode"] == "fwd"
        assert r["flops"] == (conv if fwd else 3 * conv)
        i, p = x_bytes, w_bytes + b_bytes + filt
        assert r["bytes"] == (i + p + out_bytes if fwd else 2 * (i + p + out_bytes) + x_bytes + w_bytes + b_bytes)
        expected_floor, bound = floor(Work(r["flops"], r["bytes"]), PROBE.bandwidth, PROBE.compute)
        assert r["floor_s"] == pytest.approx(expected_floor) and r["bound"] == bound
        assert r["ratio_to_floor"] == pytest.approx(r["median_s"] / r["floor_s"])
        assert r["flops_per_s"] == pytest.approx(r["flops"] / r["median_s"])
        assert r["bytes_per_s"] == pytest.approx(r["bytes"] / r["median_s"])
        ref = next(q for q in rows if q["mode"] == r["mode"] and q["variant"] == "ref")
        assert r["speedup_vs_ref"] == pytest.approx(ref["median_s"] / r["median_s"])
        assert r["default"] == (r["variant"] == blocks.LAYERS.get("equalized_conv").default_impl["cpu"])
        assert r["peak_memory_bytes"] is None  # CPU: not measured
        assert len(r["loadavg_1m"]) == QUICK.rounds


def test_a_failing_variant_becomes_an_error_row_and_the_others_still_run():
    def build(ctx: Context):
        built = blur_case().build(ctx)

        def broken():
            raise RuntimeError("no kernel for this\nsecond line")
        built.variants[0].forward = broken  # the reference fails
        return built
    rows = run_case(Case("blur/broken", "block", "blur", "test", build), Context(CPU), PROBE,
                    Settings(1, 0.001, 1, ("fwd",)))
    errors = [r for r in rows if "error" in r]
    assert [r["variant"] for r in errors] == ["ref"] and errors[0]["error"] == "RuntimeError: no kernel for this"
    ok = next(r for r in rows if r["variant"] == "fast")
    assert ok["median_s"] > 0 and ok["speedup_vs_ref"] is None


def test_every_block_case_declares_one_default_and_its_reference():
    ctx = Context(CPU)
    for case in select(BLOCK_CASES, CPU):
        built = case.build(ctx)
        names = [v.name for v in built.variants]
        assert len(names) == len(set(names)), case.name
        assert sum(v.default for v in built.variants) == 1, case.name
        cls = next((reg.get(case.key) for reg in blocks.KINDS.values() if case.key in reg.list()), None)
        impls = getattr(cls, "impls", ())
        if len(impls) > 1:
            assert {"ref", *impls} <= set(names) and built.ref.name == "ref", case.name
        assert all(t.requires_grad for v in built.variants for t in v.wrt), case.name


def test_select_filters_by_key_name_kind_and_device():
    cases = all_cases()
    cuda_only = [c for c in cases if c.devices == ("cuda",)]
    assert cuda_only and not set(cuda_only) & set(select(cases, CPU))
    picked = select(cases, CPU, blocks=["modulated_conv"])
    assert picked and {c.key for c in picked} == {"modulated_conv"}
    assert [c.name for c in select(cases, CPU, blocks=["blur/*"])] == ["blur/128ch 64x64",
                                                                      "blur/128ch 64x64 channels_last"]
    assert all(c.kind == "recipe" for c in select(cases, CPU, recipes=["*"]))


def test_recipe_cases_cover_present_recipes_and_skip_absent_ones(monkeypatch):
    import benchmarks.recipe_cases as rc

    monkeypatch.setattr(rc.assemble, "list_recipes", lambda: ["dcgan", "gan_mlp"])
    names = [c.name for c in rc.recipe_cases()]
    assert names == ["dcgan/G batch 2", "dcgan/D batch 2"]


def test_recipe_case_times_every_block_on_ref_and_on_its_default(monkeypatch):
    import assemble
    import benchmarks.recipe_cases as rc

    recipe = assemble.load("stylegan2")
    real_build = assemble.build
    monkeypatch.setattr(rc.assemble, "build", lambda name, **kw: real_build(recipe, **recipe["tiny"], **kw))
    case = next(c for c in rc.recipe_cases() if c.name == "stylegan2/G batch 2")
    built = case.build(Context(CPU))
    ref, fast = built.variants
    assert (ref.name, ref.role, fast.name, fast.default) == ("ref", "ref", "fast", True)
    assert built.config["blocks_with_impls"] > 0
    rows = run_case(case, Context(CPU), PROBE, Settings(1, 0.001, 1, ("fwd",)))
    assert all("error" not in r and r["flops"] > 0 for r in rows)


# ---- document, targets, report -----------------------------------------------------------------------


def test_suite_document_has_the_schema_and_round_trips_through_json():
    doc = run_suite([blur_case(), conv_case()], Context(CPU), QUICK, PROBE, log=lambda s: None)
    doc = json.loads(json.dumps(doc))
    assert doc["schema"] == SCHEMA
    for key in ("created", "commit", "torch", "python", "device", "threads", "allocator", "loadavg_start",
                "loadavg_end", "dtype", "settings", "probe", "results", "targets"):
        assert key in doc, key
    assert doc["device"]["type"] == "cpu" and doc["threads"] == torch.get_num_threads()
    assert doc["allocator"]["name"] in ("glibc", "jemalloc", "tcmalloc", "mimalloc", "unknown")
    assert doc["probe"]["bandwidth_bytes_per_s"] == PROBE.bandwidth
    assert {r["case"] for r in doc["results"]} == {"blur/tiny", "equalized_conv/tiny"}
    assert all(t["met"] is None for t in doc["targets"])  # none of the target cases ran
    assert "blur/tiny" in table(doc) and "| blur/tiny" in markdown(doc)


def _row(case, variant, median, mode="fwd", default=True, **extra):
    return {"case": case, "mode": mode, "variant": variant, "default": default, "median_s": median, **extra}


def test_targets_compare_ratios_speedups_overheads_and_other_variants():
    rows = [
        _row("pixel_norm/512ch 32x32", "fast", 1.0, ratio_to_floor=2.9),
        _row("adain/512ch 32x32", "fast", 1.0, ratio_to_floor=7.5),
        _row("stylegan2/G batch 2", "fast", 1.0, "fwd+bwd", speedup_vs_ref=1.6),
        _row("spectral_norm/conv 256ch 32x32", "parametrization", 1.04, speedup_vs_ref=1 / 1.04),
        _row("self_attention/192ch 64x64", "bmm", 1.0, default=False),
        _row("self_attention/192ch 64x64", "sdpa", 1.1),  # a slower default than bmm misses
    ]
    doc = {"device": {"type": "cpu"}, "dtype": "float32", "results": rows}
    got = {(t["case"], t["mode"]): t for t in evaluate(doc)}
    assert got[("pixel_norm/512ch 32x32", "fwd")]["met"] is True
    assert got[("adain/512ch 32x32", "fwd")]["met"] is False
    assert got[("stylegan2/G batch 2", "fwd+bwd")]["met"] is True
    sn = got[("spectral_norm/conv 256ch 32x32", "fwd")]
    assert sn["value"] == pytest.approx(0.04) and sn["met"] is True
    att = got[("self_attention/192ch 64x64", "fwd")]
    assert att["value"] == pytest.approx(1.1) and att["met"] is False
    assert got[("blur/128ch 64x64", "fwd")]["met"] is None
    assert all(t.device == "cuda" for t in TARGETS if t.metric in ("pct_copy", "memory_growth"))
    assert not any(t["metric"] == "pct_copy" for t in evaluate(doc))  # CUDA targets skip a CPU run


def test_memory_growth_target_divides_by_the_growth_in_positions():
    small = _row("self_attention/192ch 32x32 (memory)", "sdpa", 1.0, "fwd+bwd", peak_memory_bytes=100,
                 config={"x": [4, 192, 32, 32]})
    big = _row("self_attention/192ch 128x128 (memory)", "sdpa", 1.0, "fwd+bwd", peak_memory_bytes=1600,
               config={"x": [4, 192, 128, 128]})
    doc = {"device": {"type": "cuda"}, "dtype": "bfloat16", "results": [small, big]}
    t = next(t for t in evaluate(doc) if t["metric"] == "memory_growth")
    assert t["value"] == pytest.approx(1.0) and t["met"] is True


def test_compare_reports_base_over_new_per_row():
    base = {"allocator": {"name": "glibc"}, "probe": PROBE.as_dict(),
            "results": [_row("blur/tiny", "fast", 2.0)]}
    new = {"allocator": {"name": "jemalloc"}, "probe": PROBE.as_dict(),
           "results": [_row("blur/tiny", "fast", 0.5)]}
    text = compare(base, new)
    assert "glibc ms" in text and "jemalloc ms" in text and "| 4.00" in text


def test_environment_records_commit_threads_allocator_and_load():
    env = environment(CPU)
    assert env["threads"] == torch.get_num_threads() and env["torch"] == torch.__version__
    assert set(env["commit"]) == {"sha", "dirty", "changed"}
    assert env["commit"]["dirty"] == bool(env["commit"]["changed"])
    assert not any(p.startswith("benchmarks/results") for p in env["commit"]["changed"])
    assert allocator()["name"] == env["allocator"]["name"]


# ---- CLI ---------------------------------------------------------------------------------------------


def test_cli_lists_cases_and_rejects_unknown_ones(capsys):
    assert main(["bench", "--list"]) == 0
    assert "modulated_conv/demod 512ch 16x16" in capsys.readouterr().out
    assert main(["bench", "--block", "no_such_block"]) == 2
    assert "no case matches" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cli_cuda_without_cuda_is_a_clean_error(capsys):
    assert main(["bench", "--device", "cuda", "--quick"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_cli_quick_run_writes_json_and_markdown(tmp_path, capsys):
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    assert main(["bench", "--block", "blur", "--pass", "fwd", "--quick", "--json", str(out),
                 "--markdown", str(md)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == SCHEMA and doc["dtype"] == "float32"
    assert {r["variant"] for r in doc["results"]} == {"ref", "fast"}
    assert {r["config"]["layout"] for r in doc["results"]} == {"NCHW", "channels_last"}
    assert {r["mode"] for r in doc["results"]} == {"fwd"}
    assert "blur/128ch 64x64" in capsys.readouterr().out and "## Targets" in md.read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_cli_quick_run_on_cuda(tmp_path, dtype):
    out = tmp_path / "r.json"
    assert main(["bench", "--device", "cuda", "--dtype", dtype, "--block", "blur", "--block", "modulated_conv/up*",
                 "--quick", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["device"]["type"] == "cuda" and doc["probe"]["bf16_compute_flops_per_s"] > 0
    rows = [r for r in doc["results"] if "error" not in r]
    assert rows and all(r["peak_memory_bytes"] is not None and "pct_copy_rate" in r for r in rows)
