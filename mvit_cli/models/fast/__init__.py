"""Exact fast paths of the forward pass: the same numbers as the reference path in
models/attention.py, models/block.py and models/model.py, with less work.

They are functions of the reference modules' parameters: they import the reference modules,
never the other way round. One switch covers them all: `model.fast_paths` (on by default;
off runs the reference path, whose multiply-adds are the ones the papers count), read once
at the top of the model's forward, which then runs `network` (registered by the package,
models/__init__.py). Measured gains, and the commands that measure them:
benchmarks/RESULTS.md ("The fast paths, one by one", "The fast paths' figures"). Tuned chunk
sizes and thresholds, per CPU kind: tuning.py.

- network: the whole forward, forward_features and run_blocks on the fast paths.
- kv_windows: K and V projected only at the grid positions a strided pooling window reads
  (most of stage 1's K/V projection in B-16x4 is never read).
- relative_dot: MViTv2's relative positions ride in the attention's dot product, so the
  (Lq, Lk) bias is never built (a large share of v2-S-16x4's CPU time).
- class_token: when the head reads the class token alone, the last block computes only its
  row (every token still gives keys and values).
- chunks: CPU inference runs a block's per-token steps in chunks of tokens that stay in the
  CPU's caches.
- clip_batches: CPU inference runs a batch clip by clip, for the same reason, and side by
  side on 2+ threads (`map_clips`).
- patch_embedding: CPU inference patchifies channels last, so the convolution's output is
  the token layout itself, and writes the class token and positions into one buffer.
- graph_pooling: in exported graphs, the skip's max pool works on the token layout, so the
  graph needs no transposes around it.
- attention_kernels: the one entry of every fast attention, choosing among the kernels
  below and torch's fused kernel.
- packed_linear: linear layers through oneDNN with the weights packed once, fc1's GELU and
  the MLP's residual add fused into the GEMMs. In fp32, on AMD CPUs with AVX-512, where
  MKL's GEMMs (torch's default) run at about half oneDNN's rate: only the order of the sums
  changes. In bf16 see below.
- fp32_attention: in fp32 on those CPUs, q.k and p.v through oneDNN, head by head.

Two paths are not exact, and are taken only in bf16 CPU inference on a CPU with bf16 in
hardware, whose rounding they share:
- bf16_attention: the attention as two bf16 GEMMs around a softmax instead of torch's fused
  kernel (its scores are rounded to bf16, as the fused kernel's are not).
- packed_linear in bf16 (one bf16 rounding fewer).
"""


def clear_tensor_caches() -> None:
    """Forget the index and coordinate tensors the fast paths cache per grid.

    Why: a trace (ONNX export) runs the forward on fake tensors, and the caches would keep
    those fakes for every later eager call."""
    from .kv_windows import _token_indices
    from .relative_dot import key_coordinates

    _token_indices.cache_clear()
    key_coordinates.cache_clear()
