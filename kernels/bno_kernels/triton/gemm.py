"""Prefill GEMM kernel (M > 16): int8 ``tl.dot`` with int32 accumulation on weights unpacked in registers.

Program ``(pid_m, pid_n)`` (grouped along M for L2 reuse) computes a (BLOCK_M, BLOCK_N) output tile. For a
block of BLOCK_KW words along K it loads the words once, replicated 4x along k (``t = 0..4*BLOCK_KW-1`` reads
word ``kw0 + t // 4``, a cache hit), and for each plane ``j`` (see :mod:`bno_kernels.triton.layout`) decodes::

    B_j[t, n] = ((word >> (8 * (t % 4) + 2j)) & 3) - 1      int8 (4*BLOCK_KW, BLOCK_N), k = j*4KW + 4kw0 + t
    A_j[m, t] = xq[m, j*4KW + 4kw0 + t]                      int8 (BLOCK_M, 4*BLOCK_KW), contiguous
    acc      += tl.dot(A_j, B_j)                             int32, exact

The epilogue applies ``acc * weight_scale / s`` in fp32 (the reference's order, correctly rounded division)
and stores ``out_dtype``; with ``SCALE=False`` it stores the int32 accumulator (exactness tests).
Triton's interpreter runs ``tl.dot`` on int8 as an int32 numpy matmul, so CI checks the same code path.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from bno_kernels.triton.epilogue import store_scaled
from bno_kernels.triton.runtime import Config, Kernel


def _gemm_kernel(
    xq_ptr,  # int8 (M, K_pad), zero-padded
    w_ptr,  # int32 (KW, N)
    out_ptr,  # (M, N): out dtype, or int32 when SCALE is False
    s_ptr,  # fp32 (M,)
    ws_ptr,  # fp32 () or (N,)
    M,
    N,
    KW,
    stride_xm,
    stride_om,
    M_BUCKET,  # autotune key only
    SCALE: tl.constexpr,
    WS_PER_CHANNEL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_KW: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    group_size = GROUP_M * num_pid_n
    first_m = (pid // group_size) * GROUP_M
    rows = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group_size) % rows
    pid_n = (pid % group_size) // rows

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = offs_m < M
    n_mask = offs_n < N
    t = tl.arange(0, 4 * BLOCK_KW)  # local k inside one plane block
    t_word = t // 4
    t_shift = 8 * (t % 4)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for kw0 in range(0, KW, BLOCK_KW):
        kw = kw0 + t_word  # (4*BLOCK_KW,)
        k_mask = kw < KW
        words = tl.load(
            w_ptr + kw[:, None] * N + offs_n[None, :], mask=k_mask[:, None] & n_mask[None, :], other=0
        )  # (4*BLOCK_KW, BLOCK_N), each word 4 times
        for j in tl.static_range(4):
            b = (((words >> (t_shift[:, None] + 2 * j)) & 3) - 1).to(tl.int8)  # (4*BLOCK_KW, BLOCK_N)
            a = tl.load(
                xq_ptr + offs_m[:, None] * stride_xm + (j * 4 * KW + 4 * kw0) + t[None, :],
                mask=m_mask[:, None] & k_mask[None, :],
                other=0,
            )  # (BLOCK_M, 4*BLOCK_KW) int8
            acc = tl.dot(a, b, acc, out_dtype=tl.int32)

    out_ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
    mask = m_mask[:, None] & n_mask[None, :]
    if SCALE:
        s = tl.load(s_ptr + offs_m, mask=m_mask, other=1.0)  # (BLOCK_M,)
        if WS_PER_CHANNEL:
            ws = tl.load(ws_ptr + offs_n, mask=n_mask, other=0.0)[None, :]  # (1, BLOCK_N)
        else:
            ws = tl.load(ws_ptr + tl.zeros((1, 1), dtype=tl.int32))  # (1, 1)
        store_scaled(out_ptrs, acc, s, ws, mask, BLOCK_M, BLOCK_N)
    else:
        tl.store(out_ptrs, acc, mask=mask)


def _cfg(bm: int, bn: int, bkw: int, warps: int, stages: int) -> Config:
    return Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_KW": bkw, "GROUP_M": 8}, num_warps=warps, num_stages=stages)


GEMM = Kernel(
    fn=_gemm_kernel,
    gpu_configs=[
        _cfg(128, 128, 16, 8, 3), _cfg(128, 256, 16, 8, 3), _cfg(256, 128, 16, 8, 3),
        _cfg(128, 128, 32, 8, 3), _cfg(64, 128, 16, 4, 4), _cfg(128, 64, 16, 4, 4),
        _cfg(64, 64, 32, 4, 3), _cfg(32, 128, 16, 4, 4), _cfg(32, 64, 32, 4, 3),
    ],
    key=("M_BUCKET", "N", "KW"),
    interpreter_config=_cfg(16, 16, 4, 4, 1),
    gpu_options={"enable_fp_fusion": False},
)


def gemm(
    xq_pad: torch.Tensor,
    words: torch.Tensor,
    n: int,
    s: torch.Tensor | None = None,
    weight_scale: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.int32,
    *,
    config: Config | None = None,
) -> torch.Tensor:
    """(M, N) = xq @ W^T: int32 when ``s``/``weight_scale`` are None, else ``acc * weight_scale / s``.

    xq_pad int8 (M, K_pad) zero-padded; words int32 (KW, N); s fp32 (M,); weight_scale fp32 () or (N,).
    """
    m, k_pad = (int(v) for v in xq_pad.shape)
    kw = int(words.shape[0])
    assert k_pad == 16 * kw, f"gemm: activations have K_pad={k_pad}, the weight has {kw} words (K_pad={16 * kw})"
    assert tuple(words.shape) == (kw, n) and words.dtype == torch.int32, (
        f"gemm: words must be int32 ({kw}, {n}), got {words.dtype} {tuple(words.shape)}"
    )
    assert xq_pad.dtype == torch.int8 and xq_pad.stride(-1) == 1, "gemm: xq_pad must be int8, unit stride on K"
    scale = s is not None
    assert scale == (weight_scale is not None), "gemm: pass both s and weight_scale, or neither"
    assert scale or out_dtype == torch.int32, "gemm: an unscaled result is int32"
    out = torch.empty((m, n), dtype=out_dtype, device=xq_pad.device)  # (M, N)
    if m == 0:
        return out
    s_arg = s if s is not None else out  # unused when SCALE is False
    ws_arg = weight_scale if weight_scale is not None else out
    GEMM.launch(
        lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),),
        xq_pad, words, out, s_arg, ws_arg, m, n, kw, xq_pad.stride(0), out.stride(0),
        triton.next_power_of_2(m),
        device=xq_pad.device,
        config=config,
        SCALE=scale,
        WS_PER_CHANNEL=weight_scale is not None and weight_scale.dim() == 1,
    )
    return out
