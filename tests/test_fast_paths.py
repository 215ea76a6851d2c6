"""The exact fast paths (models/fast): the reference path's numbers, with less work.

K/V projected at read positions only, relative positions in the dot product, the
class-token-only last block, the chunked per-token steps and the clip-by-clip batches of CPU
inference must change nothing but speed: logits and gradients are held to the reference
path (`model.fast_paths = False`), each fast path on its own and all together.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mvit_cli import cpu_gates, get_config
from mvit_cli.models.fast import attention_kernels, chunks, network, tuning
from mvit_cli.models.model import model_from_config
from mvit_cli.models.fast.kv_windows import keys_values_everywhere, plan_axis, read_positions
from mvit_cli.models.fast.relative_dot import attention_with_relative_positions
from mvit_cli.models.precision import cast_for_inference
from mvit_cli.models.positions import (axis_table, relative_position_bias,
                                       relative_position_terms)

from conftest import TINY

# B-16x4's real schedule (1x8x8 K/V stride, 4 stages) on a small input: stage 1 is 4x16x16.
SMALL_B16X4 = replace(get_config("B-16x4"), name="small-b16x4", frames=8, size=64,
                      num_classes=10)
SMALL_V2S = replace(get_config("v2-S-16x4"), name="small-v2s", frames=8, size=64,
                    num_classes=10)
# B-16x4's real schedule (16 blocks, 1x8x8 K/V stride) on a 2x2 stage-1 grid and a sixth of
# its widths: windows 8 apart keep every position, yet need the layout.
TINY_GRID_B16X4 = replace(get_config("B-16x4"), name="tiny-grid-b16x4", frames=4, size=8,
                          num_classes=10, embed_dim=16)


def slow(cfg):
    """A config whose run takes seconds: in the whole suite only (the tiny ones cover the
    same code in the fast part)."""
    return pytest.param(cfg, marks=pytest.mark.slow, id=cfg.name)


def _model(cfg):
    torch.manual_seed(0)
    return model_from_config(cfg).eval()


def _clip(cfg, batch=2):
    torch.manual_seed(1)
    shape = (batch, 3, cfg.frames, cfg.size, cfg.size) if cfg.is_video else (batch, 3, cfg.size, cfg.size)
    return torch.randn(shape)


@pytest.mark.parametrize("length", range(1, 19))
@pytest.mark.parametrize("kernel,stride", [(3, 8), (3, 4), (3, 3), (3, 2), (3, 1), (2, 5), (1, 3)])
def test_kept_positions_pooled_with_stride_k_equal_the_strided_pooling(length, kernel, stride):
    values = torch.randn(1, 1, length, dtype=torch.float64)
    weight = torch.randn(1, 1, kernel, dtype=torch.float64)
    expected = F.conv1d(values, weight, stride=stride, padding=kernel // 2)
    plan = plan_axis(length, kernel, stride)
    kept = values[..., list(plan.kept)]
    got = F.conv1d(kept, weight, stride=plan.stride, padding=plan.conv_padding)
    torch.testing.assert_close(got, expected)
    if stride > kernel:
        assert len(plan.kept) < length or length <= kernel


def test_b16x4_keeps_an_eighth_of_stage_one_for_keys_and_values():
    plan = read_positions((8, 56, 56), (3, 3, 3), (1, 8, 8))
    assert plan.kept_grid == (8, 20, 20) and plan.stride == (1, 3, 3)
    assert not read_positions((8, 14, 14), (3, 3, 3), (1, 2, 2)).gathers


def test_kept_positions_are_gathered_in_grid_order_and_pooled_with_the_convs_padding():
    plan = read_positions((2, 9, 9), (3, 3, 3), (1, 8, 8))
    # H and W: windows (-1, 0, 1) and (7, 8, 9) keep 0, 1, 7, 8; the conv pads one zero each side.
    assert plan.kept_grid == (2, 4, 4)
    assert plan.stride == (1, 3, 3) and plan.conv_padding == (1, 1, 1)
    index = plan.token_indices(torch.device("cpu"))
    grid = (torch.arange(2 * 9 * 9.0, dtype=torch.float64) + 1).view(1, 1, 2, 9, 9)
    kept = grid.flatten()[index].view(1, 1, *plan.kept_grid)
    # frame 0, rows 0, 1, 7, 8 and columns 0, 1, 7, 8 of the grid (value = flat index + 1)
    assert kept[0, 0, 0].tolist() == [[1, 2, 8, 9], [10, 11, 17, 18],
                                      [64, 65, 71, 72], [73, 74, 80, 81]]
    weight = torch.randn(1, 1, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(F.conv3d(kept, weight, stride=plan.stride, padding=plan.conv_padding),
                               F.conv3d(grid, weight, stride=(1, 8, 8), padding=1))


# Every answer a CPU can give the gates (cpu_gates) that matters for a dtype. fp32: oneDNN's
# GEMMs or MKL's, with AMX's chunk sizes or not. bf16: emulated (no path of its own), or in
# hardware with or without AMX and with or without oneDNN's packed bf16 linears.
GATES = [(torch.float32, dict(onednn_fp32=onednn, amx=amx))
         for onednn in (False, True) for amx in (False, True)]
GATES += [(torch.bfloat16, dict(native_bf16=False, amx=False, onednn_bf16=False))]
GATES += [(torch.bfloat16, dict(native_bf16=True, amx=amx, onednn_bf16=onednn))
          for amx in (False, True) for onednn in (False, True)]


def _gates_id(case) -> str:
    dtype, gates = case
    on = [name for name, value in gates.items() if value]
    return f"{str(dtype).removeprefix('torch.')}-{'+'.join(on) or 'none'}"


@functools.cache
def _references(cfg) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights, clip, reference fp32 logits, reference bf16 logits) of a config: the
    reference path takes no gate, so one run serves every case."""
    model, clip = _model(cfg), _clip(cfg)
    model.fast_paths = False
    with torch.inference_mode():
        fp32 = model(clip)
        bf16 = cast_for_inference(model)(clip.bfloat16()).float()
    return _model(cfg).state_dict(), clip, fp32, bf16


@pytest.fixture
def small_chunks(shrink_tuning):
    """Chunk sizes and thresholds small enough that the test models' tokens, queries and
    keys cross them: every chunked loop runs more than once, its last chunk short, and with
    AMX some attention calls take the fused kernel and some the GEMMs. AMX's row keeps its
    longer bf16 chunks, as the measured table does."""
    shrink_tuning(bf16_query_chunk=64, fp32_query_chunk=64, fp32_token_chunk=100,
                  bf16_token_chunk=100)
    shrink_tuning("amx", bf16_query_chunk=160, bf16_token_chunk=200, fused_from_keys=16)


@pytest.mark.parametrize("cfg", [*TINY, TINY_GRID_B16X4], ids=lambda c: c.name)
@pytest.mark.parametrize("case", GATES, ids=_gates_id)
def test_the_fast_paths_keep_the_logits_whatever_the_cpu_answers(cfg, case, force_gates,
                                                                   monkeypatch, small_chunks):
    """Each gate forced on and off, on any CPU: in fp32 the fast paths give the reference
    path's logits within fp32 rounding; in bf16 they are no further from the fp32 reference
    than the bf16 reference path is. The paths the gates name really run (or do not)."""
    from mvit_cli.models.fast import bf16_attention, fp32_attention, packed_linear

    dtype, gates = case
    if gates.get("onednn_bf16") and not cpu_gates.probe().onednn_bf16:
        pytest.skip("torch's oneDNN runs bf16 only on CPUs with AVX-512 (or AMX)")
    force_gates(**gates)
    taken = collections.Counter()

    def spy(name, original):
        def counted(*args, **kwargs):
            taken[name] += 1
            return original(*args, **kwargs)
        return counted

    for module, name in ((packed_linear, "packed_weight"), (fp32_attention, "attend"),
                         (bf16_attention, "attend_as_gemms")):
        monkeypatch.setattr(module, name, spy(name, getattr(module, name)))
    weights, clip, fp32, bf16 = _references(cfg)
    model = model_from_config(cfg).eval()
    model.load_state_dict(weights)
    with torch.inference_mode():
        if dtype == torch.float32:
            torch.testing.assert_close(model(clip), fp32, rtol=1e-5, atol=1e-5)
        else:
            fast = cast_for_inference(model)(clip.bfloat16()).float()
            allowed = 2 * (bf16 - fp32).abs().max() + 0.01 * fp32.abs().max()
            assert (fast - fp32).abs().max() <= allowed
    onednn = gates.get("onednn_fp32") if dtype == torch.float32 else (
        gates["native_bf16"] and gates["onednn_bf16"])
    assert bool(taken["packed_weight"]) == onednn
    assert bool(taken["attend"]) == (dtype == torch.float32 and onednn)
    if dtype == torch.float32 or not gates["native_bf16"] or not gates["amx"]:
        assert bool(taken["attend_as_gemms"]) == (dtype == torch.bfloat16
                                                  and gates["native_bf16"])


@pytest.mark.parametrize("cfg", TINY, ids=lambda c: c.name)
def test_the_fast_paths_keep_the_logits_of_clips_wider_than_high(cfg, force_gates):
    """Every other test input is square, where height and width can be mixed up unseen: the
    kept positions' flat indices, the grids of pooling, v2's h and w position tables."""
    force_gates(onednn_fp32=False)  # the same sums on both paths: any difference is a mix-up
    model = _model(cfg)
    torch.manual_seed(1)
    shape = (2, 3, cfg.frames, 32, 48) if cfg.is_video else (2, 3, 32, 48)
    clip = torch.randn(shape)
    with torch.inference_mode():
        model.fast_paths = False
        plain = model(clip)
        model.fast_paths = True
        fast = model(clip)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", [TINY[0], TINY[1], TINY_GRID_B16X4, slow(SMALL_B16X4)],
                         ids=lambda c: c.name)
def test_run_blocks_returns_every_token_either_way(cfg):
    model, clip = _model(cfg), _clip(cfg, batch=1)
    out = {}
    with torch.no_grad():
        for enabled in (False, True):
            model.fast_paths = enabled
            out[enabled] = model.run_blocks(*model.embed(clip))
    assert out[True][1] == out[False][1]
    assert out[True][0].shape == out[False][0].shape and out[True][0].shape[1] > 1
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-5, atol=1e-5)


def test_each_fast_path_alone_keeps_the_logits(monkeypatch, shrink_tuning):
    """Switch on one fast path at a time, the others held to the reference."""
    from mvit_cli.models.fast import attention as fast_attention

    cfg = replace(get_config("v2-S-16x4"), name="small-v2s-cls", frames=8, size=32, embed_dim=16,
                  num_classes=10, cls_token=True, head_pool="cls")
    model, clip = _model(cfg), _clip(cfg)
    with torch.no_grad():
        model.fast_paths = False
        expected = model(clip)
        model.fast_paths = True
        for name, patch in (
                ("kv windows off", lambda: monkeypatch.setattr(
                    fast_attention, "keys_values", keys_values_everywhere)),
                ("relative dot off", lambda: monkeypatch.setattr(
                    fast_attention, "attention_with_relative_positions", _with_full_bias)),
                ("chunks off", lambda: shrink_tuning(fp32_token_chunk=10**9,
                                                     bf16_token_chunk=10**9)),
                ("class token off", lambda: monkeypatch.setattr(
                    network, "reads_class_token_only", lambda model: False)),
                ("patch embedding off", lambda: monkeypatch.setattr(
                    network, "embed", lambda model, x: model.embed(x))),
                ("clip batches off", lambda: monkeypatch.setattr(
                    network, "forward", lambda model, x: model.classify_features(
                        network.forward_features(model, x))))):
            patch()
            torch.testing.assert_close(model(clip), expected, rtol=1e-5, atol=1e-5, msg=name)
            monkeypatch.undo()


@pytest.mark.parametrize("cfg", TINY, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_patch_embedding_runs_channels_last_with_the_reference_tokens(cfg, dtype):
    """The fast embedding (patch_embedding) gives the reference's tokens bit for bit (class
    token and positions, or none, images too), from a channels-first clip as from a
    pipeline's channels-last one; its convolution really gets a channels-last clip in
    inference, and the reference's clip as it came with autograd."""
    from mvit_cli.models.fast.patch_embedding import embed

    model, clip = _model(cfg).to(dtype), _clip(cfg).to(dtype)
    seen = []
    model.patch_embed.register_forward_pre_hook(lambda module, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last_3d)))
    with torch.inference_mode():
        expected, grid = model.embed(clip)
        for given in (clip, model.as_clips(clip).contiguous(memory_format=torch.channels_last_3d)):
            tokens, fast_grid = embed(model, given)
            assert fast_grid == grid and tokens.dtype == dtype
            assert torch.equal(tokens, expected)
    assert seen == [False, True, True]
    with torch.enable_grad():
        embed(model, clip)
    assert seen[-1] is False


def _with_full_bias(q, k, v, terms, k_grid, temporal, skip):
    bias = relative_position_bias(terms, k_grid, temporal, skip)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


@pytest.mark.parametrize("cfg", [slow(SMALL_B16X4), TINY_GRID_B16X4], ids=lambda c: c.name)
def test_the_fast_paths_really_skip_multiply_adds(cfg):
    model, clip = _model(cfg), _clip(cfg, batch=1)
    counts = {}
    for enabled in (False, True):
        model.fast_paths = enabled
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(clip)
        counts[enabled] = counter.get_total_flops()
    assert counts[True] < 0.97 * counts[False]


def test_chunked_per_token_steps_match_one_pass(monkeypatch, shrink_tuning):
    """The same logits in chunks as in one pass, and the chunks really run: a block of more
    tokens than a chunk takes its per-token steps once per chunk."""
    cfg = TINY[0]
    model, clip = _model(cfg), _clip(cfg)
    calls, original = [], chunks.after_attention

    def counted(blk, skip, attended, out=None):
        calls.append(skip.shape[1])
        return original(blk, skip, attended, out=out)

    monkeypatch.setattr(chunks, "after_attention", counted)
    with torch.no_grad():
        shrink_tuning(fp32_token_chunk=10**9)
        whole = model(clip)
        assert len(calls) == len(model.blocks) * clip.shape[0]  # one pass a block, a clip
        calls.clear()
        shrink_tuning(fp32_token_chunk=37)  # uneven chunks, last one short
        chunked = model(clip)
    assert max(calls) <= 37 and len(calls) > len(model.blocks) * clip.shape[0]
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("amx", [False, True])
def test_token_chunks_are_longer_in_bf16_on_amx_only(force_gates, amx):
    force_gates(amx=amx)
    tokens = torch.zeros(1, 8, 4)
    fp32 = tuning.TUNING["avx512-bf16"].fp32_token_chunk
    assert chunks.token_chunk(tokens) == fp32
    assert chunks.token_chunk(tokens.bfloat16()) == fp32 * (2 if amx else 1)


@pytest.mark.parametrize("native_bf16", [False, True])
@pytest.mark.parametrize("amx", [False, True])
def test_the_tuning_row_follows_the_cpu_kind(force_gates, native_bf16, amx):
    """AMX's row wherever AMX answers yes; without it, the rows of bf16 in hardware and of
    emulated bf16 (the same values: the emulated kind takes no bf16 path)."""
    force_gates(native_bf16=native_bf16, amx=amx)
    kind = "amx" if amx else "avx512-bf16" if native_bf16 else "other"
    assert tuning.tuning() is tuning.TUNING[kind]
    assert (tuning.tuning().fused_from_keys is not None) == amx
    assert attention_kernels.fused_is_faster(torch.zeros(1, 1, 10**6, 1)) == amx


@pytest.mark.parametrize("cfg", [TINY[0], TINY[1], TINY[2], TINY_GRID_B16X4, slow(SMALL_B16X4)],
                         ids=lambda c: c.name)
def test_gradients_flow_through_the_fast_paths_unchanged(cfg):
    """Fine-tuning takes the same path: the input's and every weight's gradients agree."""
    model = _model(cfg)
    grads = {}
    for enabled in (False, True):
        model.fast_paths = enabled
        model.zero_grad()
        clip = _clip(cfg).requires_grad_()
        model(clip).square().sum().backward()
        # Weights the output does not depend on (those of the rows the class-token-only last
        # block skips) get no gradient on the fast path, and zeros on the reference one.
        grads[enabled] = (clip.grad, *(torch.zeros_like(p) if p.grad is None else p.grad.clone()
                                       for p in model.parameters()))
    for plain, fast in zip(grads[False], grads[True], strict=True):
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("q_grid,k_grid,temporal,skip", [
    ((4, 8, 8), (4, 2, 2), True, 1), ((2, 6, 6), (2, 6, 6), True, 0),
    ((1, 7, 5), (1, 4, 3), False, 0), ((4, 4, 4), (2, 2, 2), True, 1)])
def test_relative_positions_in_the_dot_product_equal_the_full_bias(q_grid, k_grid, temporal, skip):
    torch.manual_seed(2)
    heads, dim = 2, 12
    lq = skip + q_grid[0] * q_grid[1] * q_grid[2]
    lk = skip + k_grid[0] * k_grid[1] * k_grid[2]
    q, k, v = (torch.randn(2, heads, n, dim, dtype=torch.float64) for n in (lq, lk, lk))
    size = 2 * max(q_grid[1], k_grid[1], q_grid[2], k_grid[2]) - 1
    rel_h, rel_w = torch.randn(size, dim, dtype=torch.float64), torch.randn(size, dim, dtype=torch.float64)
    rel_t = torch.randn(2 * q_grid[0] - 1, dim, dtype=torch.float64) if temporal else None
    terms = relative_position_terms(q[:, :, skip:], q_grid, k_grid, rel_t, rel_h, rel_w)
    full = relative_position_bias(terms, k_grid, temporal, skip)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=full)
    got = attention_with_relative_positions(q, k, v, terms, k_grid, temporal, skip)
    torch.testing.assert_close(got, expected)
    # The bias itself, entry by entry, from the tables' definition.
    bias = _full_bias_by_definition(q[:, :, skip:], q_grid, k_grid, rel_t, rel_h, rel_w)
    torch.testing.assert_close(full, F.pad(bias, (skip, 0, skip, 0)))


def _full_bias_by_definition(q, q_grid, k_grid, rel_t, rel_h, rel_w):
    tables = [axis_table(rel_h, q_grid[1], k_grid[1]), axis_table(rel_w, q_grid[2], k_grid[2])]
    table_t = axis_table(rel_t, q_grid[0], k_grid[0]) if rel_t is not None else None
    bias = q.new_zeros(*q.shape[:2], q.shape[2], k_grid[0] * k_grid[1] * k_grid[2])
    queries = [(t, h, w) for t in range(q_grid[0]) for h in range(q_grid[1]) for w in range(q_grid[2])]
    keys = [(t, h, w) for t in range(k_grid[0]) for h in range(k_grid[1]) for w in range(k_grid[2])]
    for i, (tq, hq, wq) in enumerate(queries):
        for j, (tk, hk, wk) in enumerate(keys):
            r = tables[0][hq, hk] + tables[1][wq, wk]
            if table_t is not None:
                r = r + table_t[tq, tk]
            bias[:, :, i, j] = q[:, :, i] @ r
    return bias


@pytest.mark.parametrize("amx", [False, True], ids=["avx512_bf16", "amx"])
@pytest.mark.parametrize("heads,queries", [(1, 2 * 4096 + 5), (4, 37)])
def test_bf16_attention_as_gemms_stays_within_bf16_rounding_of_fp32(monkeypatch, force_gates,
                                                                     heads, queries, amx):
    """The GEMM path of bf16 CPU inference (bf16_attention): chunks of queries (of each CPU
    kind's size), each written in place, scores rounded once to bf16, a softmax computed in
    fp32 inside. Held to fp32 attention on the same bf16 inputs within a few times the fused
    kernel's own bf16 error, and really taken."""
    from mvit_cli.models.fast import bf16_attention

    # The path is for CPUs with bf16 in hardware; on one that emulates it the numbers are
    # the same, only slower, so the test runs it on either kind.
    force_gates(native_bf16=True, amx=amx)
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, heads, n, 96).bfloat16() for n in (queries, 393, 393))
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    fused_error = (F.scaled_dot_product_attention(q, k, v).float() - expected).abs().max()
    calls = []
    monkeypatch.setattr(bf16_attention.torch, "softmax",
                        lambda *a, **kw: calls.append(1) or torch.nn.functional.softmax(*a, **kw))
    with torch.inference_mode():
        got = attention_kernels.attend(q, k, v)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    chunk = tuning.TUNING["amx" if amx else "avx512-bf16"].bf16_query_chunk
    assert len(calls) == -(-queries // chunk)  # one per chunk
    error = (got.float() - expected).abs().max()
    assert error < 0.02 and error < 8 * fused_error, (error, fused_error)
    # Not taken in fp32, with gradients, or where bf16 is emulated.
    calls.clear()
    attention_kernels.attend(q.float(), k.float(), v.float())
    attention_kernels.attend(q.clone().requires_grad_(), k, v)
    with torch.inference_mode():
        force_gates(native_bf16=False)
        attention_kernels.attend(q, k, v)
    assert not calls


def test_bf16_attention_takes_the_fused_kernel_at_many_keys_on_amx_only(monkeypatch, force_gates):
    """On a CPU with AMX, from its row's `fused_from_keys` keys (tuning.py), bf16 attention
    is torch's fused kernel itself (same numbers, bit for bit); below that, or without AMX,
    the GEMM path."""
    from mvit_cli.models.fast import bf16_attention

    force_gates(native_bf16=True)
    torch.manual_seed(0)
    many = tuning.TUNING["amx"].fused_from_keys
    q = torch.randn(1, 2, 37, 16).bfloat16()
    calls = []
    monkeypatch.setattr(bf16_attention.torch, "softmax",
                        lambda *a, **kw: calls.append(1) or torch.nn.functional.softmax(*a, **kw))

    def gemm_path_taken(keys: int, amx: bool) -> bool:
        k, v = torch.randn(1, 2, keys, 16).bfloat16(), torch.randn(1, 2, keys, 16).bfloat16()
        force_gates(amx=amx)
        calls.clear()
        with torch.inference_mode():
            got = attention_kernels.attend(q, k, v, scale=0.3)
            if not calls:
                assert torch.equal(got, F.scaled_dot_product_attention(q, k, v, scale=0.3))
        return bool(calls)

    assert not gemm_path_taken(many, amx=True)
    assert gemm_path_taken(many - 1, amx=True)
    assert gemm_path_taken(many, amx=False)


needs_onednn_bf16 = pytest.mark.skipif(
    not cpu_gates.probe().onednn_bf16,
    reason="torch's oneDNN runs bf16 on this CPU only with AVX-512 (or AMX)")


@needs_onednn_bf16
def test_packed_linears_pack_once_fuse_gelu_and_add_and_follow_weight_changes(force_gates):
    """packed_linear: oneDNN GEMMs on packed weights, GELU or a residual add fused. Held to
    fp32 within bf16 rounding, for whole layers and for row slices (the Q|K|V split), and
    packed anew when the weights change."""
    from mvit_cli.models.fast import packed_linear

    force_gates(native_bf16=True, onednn_bf16=True)
    torch.manual_seed(0)
    layer = torch.nn.Linear(96, 288).bfloat16()
    x, add = torch.randn(2, 300, 96).bfloat16(), torch.randn(2, 300, 288).bfloat16()

    def expected(rows=slice(None)):
        return F.linear(x.float(), layer.weight[rows].float(), layer.bias[rows].float())

    def close(got, want):
        assert got.dtype == torch.bfloat16 and got.shape == want.shape
        assert (got.float() - want).abs().max() <= 0.01 * want.abs().max()

    with torch.inference_mode():
        close(packed_linear.linear(layer, x), expected())
        assert layer.weight in packed_linear._PACKED  # the packed path was taken
        close(packed_linear.linear(layer, x, gelu=True), F.gelu(expected()))
        close(packed_linear.linear(layer, x, add=add), expected() + add.float())
        close(packed_linear.linear(layer, x, slice(96, 288)), expected(slice(96, 288)))
        close(packed_linear.linear(layer, x, slice(0, 96)), expected(slice(0, 96)))
        other = torch.nn.Linear(96, 288).bfloat16()
        layer.load_state_dict(other.state_dict())  # in place: the version changes
        close(packed_linear.linear(layer, x, slice(96, 288)), expected(slice(96, 288)))
    layer = torch.nn.Linear(96, 288).bfloat16()
    with torch.inference_mode():
        packed_linear.linear(layer, x)
    layer.weight.data = -2 * layer.weight.data  # new storage, the same version (0)
    with torch.inference_mode():
        close(packed_linear.linear(layer, x), expected())
        made_here = torch.nn.Linear(96, 288).bfloat16()  # inference tensors: no version
        layer = made_here
        close(packed_linear.linear(layer, x, slice(96, 288), add=add[..., 96:]),
              expected(slice(96, 288)) + add[..., 96:].float())
        assert made_here.weight not in packed_linear._PACKED

    # Not taken in fp32 where MKL stays, with gradients, or where bf16 is emulated.
    fresh, fresh32 = torch.nn.Linear(96, 288).bfloat16(), torch.nn.Linear(96, 288)
    force_gates(onednn_fp32=False)
    with torch.inference_mode():
        packed_linear.linear(fresh32, x.float())
    packed_linear.linear(fresh, torch.randn(2, 300, 96).bfloat16().requires_grad_())
    force_gates(native_bf16=False)
    with torch.inference_mode():
        packed_linear.linear(fresh, x)
    assert fresh.weight not in packed_linear._PACKED and fresh32.weight not in packed_linear._PACKED


def test_fp32_linears_through_onednn_are_fp32_exact(force_gates):
    """packed_linear in fp32 (AMD CPUs with AVX-512, forced here on any CPU): the GEMMs,
    the fused GELU and add, and row slices within fp32 rounding of F.linear (the order of
    the sums is all that changes); a whole model's logits within 1e-5 of MKL's; not taken
    with gradients or where MKL stays."""
    from mvit_cli.models.fast import packed_linear

    force_gates(onednn_fp32=True)
    torch.manual_seed(0)
    layer = torch.nn.Linear(96, 288)
    x, add = torch.randn(2, 300, 96), torch.randn(2, 300, 288)

    def close(got, want):
        assert got.dtype == torch.float32 and got.shape == want.shape
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()

    with torch.inference_mode():
        close(packed_linear.linear(layer, x), F.linear(x, layer.weight, layer.bias))
        assert layer.weight in packed_linear._PACKED  # the packed path was taken
        close(packed_linear.linear(layer, x, gelu=True), F.gelu(layer(x)))
        close(packed_linear.linear(layer, x, add=add), layer(x) + add)
        close(packed_linear.linear(layer, x, slice(96, 288)),
              F.linear(x, layer.weight[96:], layer.bias[96:]))
    fresh = torch.nn.Linear(96, 288)
    packed_linear.linear(fresh, x.requires_grad_())
    assert fresh.weight not in packed_linear._PACKED

    model, clip = _model(SMALL_B16X4), _clip(SMALL_B16X4)
    with torch.inference_mode():
        onednn = model(clip)
        assert model.blocks[0].mlp.fc1.weight in packed_linear._PACKED
        force_gates(onednn_fp32=False)
        mkl = model(clip)
    assert (onednn - mkl).abs().max() <= 1e-5 * mkl.abs().max()
    assert (onednn - mkl).abs().max() > 0  # oneDNN's sums did run


@needs_onednn_bf16
@pytest.mark.parametrize("cfg", [slow(SMALL_B16X4), SMALL_V2S], ids=lambda c: c.name)
def test_a_bf16_model_with_packed_linears_keeps_its_logits(monkeypatch, force_gates, cfg):
    """The whole bf16 forward with packed_linear's fused GEMMs, against the same bf16 model
    with plain layers, both against fp32: no further from fp32 than bf16 itself."""
    from mvit_cli.models.fast import packed_linear
    from mvit_cli.models.precision import cast_for_inference

    force_gates(native_bf16=True, onednn_bf16=True)
    model, clip = _model(cfg), _clip(cfg)
    with torch.inference_mode():
        fp32 = model(clip)
    cast_for_inference(model)  # as a Pipeline does: outside inference mode
    with torch.inference_mode():
        packed = model(clip.bfloat16()).float()
        assert model.blocks[0].mlp.fc1.weight in packed_linear._PACKED
        monkeypatch.setattr(packed_linear, "takes_packed_path", lambda x, weight: False)
        plain = model(clip.bfloat16()).float()
    plain_error = (plain - fp32).abs().max()
    assert (packed - fp32).abs().max() <= 2 * plain_error + 1e-3, plain_error
    assert (packed - plain).abs().max() > 0  # the fused path did run: its rounding differs


@pytest.mark.parametrize("grid,kernel,stride", [((8, 14, 14), (1, 3, 3), (1, 2, 2)),
                                                ((4, 7, 9), (3, 3, 3), (2, 2, 2)),
                                                ((3, 5, 5), (1, 3, 3), (1, 1, 1)),
                                                ((2, 6, 5), (2, 2, 2), (2, 2, 2))])
def test_max_pooling_on_the_token_layout_gives_max_pool3d_exactly(monkeypatch, grid, kernel,
                                                                   stride):
    """graph_pooling (exported graphs only): pads of -inf and maxima of strided slices on
    (B, T, H, W, C) tokens, against nn.MaxPool3d through pooling.pool_tokens."""
    from mvit_cli.models.fast import graph_pooling
    from mvit_cli.models.pooling import pool_tokens

    torch.manual_seed(0)
    pool = torch.nn.MaxPool3d(kernel, stride, tuple(k // 2 for k in kernel))
    x = torch.randn(2, 1 + grid[0] * grid[1] * grid[2], 24)
    expected, expected_grid = pool_tokens(x, grid, pool, has_cls=True)
    monkeypatch.setattr(graph_pooling.torch.compiler, "is_exporting", lambda: True)
    monkeypatch.setattr(graph_pooling, "pool_tokens", None)  # the token-layout form, only
    got, got_grid = graph_pooling.pool_tokens_in_graph(x, grid, pool, has_cls=True)
    assert got_grid == expected_grid
    assert torch.equal(got, expected)


@pytest.mark.slow
def test_a_bf16_model_compiles_in_one_graph_with_its_fast_paths():
    """`--compile --precision bf16`: Dynamo traces the bf16 fast paths without a graph
    break (the bf16 probe once broke every block's graph, and the packed linears' opaque
    weights made inductor fail), and the compiled logits are the eager ones within bf16."""
    from torch._dynamo.utils import counters

    from mvit_cli.models.model import compile_for_inference
    from mvit_cli.models.precision import cast_for_inference

    torch._dynamo.reset()
    counters.clear()
    model = cast_for_inference(_model(SMALL_B16X4))
    clip = _clip(SMALL_B16X4, batch=1).bfloat16()
    with torch.no_grad():
        eager = model(clip).float()
        compiled = compile_for_inference(model)(clip).float()
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert (compiled - eager).abs().max() <= 0.05 * eager.abs().max()


@needs_onednn_bf16
def test_an_fp32_model_under_bf16_autocast_runs_with_the_fast_paths(force_gates):
    """Under autocast, bf16 activations meet fp32 weights: the packed linears must step
    aside (oneDNN refused the pair: "could not create a primitive descriptor")."""
    force_gates(native_bf16=True, onednn_bf16=True)
    model, clip = _model(SMALL_B16X4), _clip(SMALL_B16X4)
    with torch.inference_mode():
        fp32 = model(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(clip).float()
    assert (mixed - fp32).abs().max() <= 0.05 * fp32.abs().max()


@pytest.mark.parametrize("heads,queries,value_dim,scale", [
    (1, 2 * 1024 + 5, 96, None), (4, 37, 96, None), (2, 300, 40, 1.0)])
def test_fp32_attention_through_onednn_is_fp32_exact(monkeypatch, force_gates, heads, queries,
                                                     value_dim, scale):
    """fp32_attention (AMD CPUs with AVX-512, forced here on any CPU): q.k and p.v as oneDNN
    GEMMs, head by head and chunk by chunk, within fp32 rounding of the fused kernel, for a
    batch of two, several chunks, a given scale and values narrower than the keys (as
    relative_dot passes them); not taken with gradients or where MKL stays."""
    from mvit_cli.models.fast import fp32_attention

    force_gates(onednn_fp32=True)
    torch.manual_seed(0)
    q, k = (torch.randn(2, heads, n, 96) for n in (queries, 393))
    v = torch.randn(2, heads, 393, value_dim)
    expected = F.scaled_dot_product_attention(q, k, v, scale=scale)
    calls, original = [], fp32_attention.attend
    monkeypatch.setattr(fp32_attention, "attend", lambda *a: calls.append(1) or original(*a))
    with torch.inference_mode():
        got = attention_kernels.attend(q, k, v, scale=scale)
    assert calls and got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    calls.clear()
    attention_kernels.attend(q.clone().requires_grad_(), k, v, scale=scale)
    force_gates(onednn_fp32=False)
    with torch.inference_mode():
        attention_kernels.attend(q, k, v, scale=scale)
    assert not calls


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cfg", [slow(SMALL_B16X4), TINY[1]], ids=lambda c: c.name)
def test_clip_lanes_run_clips_side_by_side_with_the_same_logits(cfg, two_threads, monkeypatch):
    """On 2 threads, a batch's clips run on two lane threads, one intra-op thread each, and
    give the clip-by-clip logits bit for bit; the caller keeps its own thread count."""
    import threading

    from mvit_cli.models.fast import clip_batches

    model, clips = _model(cfg), _clip(cfg, batch=3)
    where, original = [], network.forward_features

    def watched(model, clip):
        where.append((threading.current_thread().name, torch.get_num_threads()))
        return original(model, clip)

    monkeypatch.setattr(network, "forward_features", watched)
    with torch.inference_mode():
        lanes = model(clips)
        assert {name.startswith("mvit-lane") for name, _ in where} == {True}
        assert {threads for _, threads in where} == {1}
        assert torch.get_num_threads() == 2
        where.clear()
        one_by_one = torch.cat(clip_batches.map_clips(model, clips.split(1), lanes=False))
        assert {name for name, _ in where} == {threading.current_thread().name}
    if packed_linear_takes_onednn_fp32():
        assert torch.equal(lanes, one_by_one)
    else:
        # MKL (fp32 on Intel, and on AMD without AVX-512) can split the sums of a GEMM with
        # few rows across threads (seen on an Intel Xeon): at this test model's 65 tokens x
        # 1536, a lane's one thread and the caller's two add in another order (full-size
        # B-16x4's GEMMs, 393 rows and more, gave the same bits).
        # Clips swapped or mixed would be off by far more than fp32 rounding.
        assert (lanes - one_by_one).abs().max() <= 1e-5 * one_by_one.abs().max()


def packed_linear_takes_onednn_fp32() -> bool:
    from mvit_cli.cpu_gates import gates

    return gates().onednn_fp32


def test_clip_lanes_carry_autocast_and_stay_out_of_training(two_threads):
    """Autocast and inference mode are per thread in torch: a lane must run the clip under
    the caller's. With gradients on, clips run on the caller's thread (autograd's graph)."""
    import threading

    from mvit_cli.models.fast.clip_batches import map_clips

    def probe(clip):
        return torch.tensor([float(torch.is_autocast_enabled("cpu")),
                             float(torch.is_inference_mode_enabled()),
                             float(threading.current_thread().name.startswith("mvit-lane"))])

    clips = [torch.zeros(1)] * 2
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert all(p.tolist() == [1.0, 1.0, 1.0] for p in map_clips(probe, clips))
    with torch.no_grad():
        assert all(p.tolist() == [0.0, 0.0, 1.0] for p in map_clips(probe, clips))
    assert all(p.tolist() == [0.0, 0.0, 0.0] for p in map_clips(probe, clips))


def test_a_failing_clip_stops_the_lanes_clips_not_yet_started(two_threads):
    """An error (or Ctrl-C) in one clip reaches the caller, and clips still waiting for a
    lane are not run after it."""
    import threading
    import time

    from mvit_cli.models.fast.clip_batches import map_clips

    ran, lock = [], threading.Lock()

    def run(clip):
        with lock:
            ran.append(int(clip))
        if int(clip) == 0:
            raise ValueError("clip 0 is broken")
        time.sleep(0.1)
        return clip

    with torch.inference_mode(), pytest.raises(ValueError, match="clip 0"):
        map_clips(run, [torch.tensor(i) for i in range(8)])
    time.sleep(1.0)  # time enough for all eight, had they been left to run
    assert len(ran) <= 4
