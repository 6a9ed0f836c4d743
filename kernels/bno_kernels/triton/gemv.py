"""Decode GEMV / split-K kernel (M = 1..16) on packed 2-bit weights, epilogue fused, one launch per matmul.

Grid ``(cdiv(N, BLOCK_N), SPLIT_K)``: each program owns BLOCK_N outputs and one contiguous range of words
along K, and all M (<= 16) tokens, so every weight word is read from memory exactly once. Per word tile
(BLOCK_KW, BLOCK_N) and plane ``j`` (see :mod:`bno_kernels.triton.layout`)::

    E_j  = (word >> 2j) & 0x03030303          four unsigned codes c = w + 1 of k = j*4KW + 4kw + 0..3
    X_j  = xq viewed as int32 at [m, j*KW + kw]  the four int8 activations of the same k
    acc += dp4a(E_j, X_j)                      sum_b c_b * x_b        (dp4a.u32.s32 on a GPU)
    xs  += dp4a(0x01010101, X_j)               sum_b x_b, so that sum w*x = acc - xs

On a GPU ``dp4a`` is one PTX instruction (``tl.inline_asm_elementwise``); in Triton's interpreter (which has no
inline assembly) the same sum is computed byte by byte with shifts, so CI checks everything except that one
instruction (``python -m bno_kernels.triton.aot`` checks that it compiles for sm_90).

Batch 1 (``FUSE_QUANT``): the kernel quantizes the activations itself. Every program reads the whole float row
for its absmax (from L2: a few KB), derives the same scale, and rounds only the k of its own words, packing
four int8 into the int32 ``X_j`` in registers; the separate quantization kernel and its launch disappear.

With ``SPLIT_K > 1`` the programs of one N tile meet in a persistent int32 workspace: each adds its partial
sums atomically (exact in any order, so the result is deterministic), then takes a ticket from the tile's
counter; the program holding the last ticket reads the totals back while resetting them to zero
(``atomic_xchg``), resets the counter, and runs the epilogue (``acc * weight_scale / s`` in fp32, or the int32
totals). No zero-fill launch: the workspace is zero again after every call. It is cached per (device, stream,
N), so calls on one stream follow each other safely and two streams never share one.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from bno_kernels.triton.epilogue import store_scaled
from bno_kernels.triton.quant import quantize_values, row_scale
from bno_kernels.triton.runtime import Config, Kernel, device_function, interpret_mode

MAX_GEMV_M = 16


def _dp4a_impl(a, b, c, USE_DP4A: tl.constexpr):
    # c + sum over the 4 bytes of (unsigned byte of a) * (signed byte of b), elementwise on int32 tensors
    if USE_DP4A:
        return tl.inline_asm_elementwise(
            "dp4a.u32.s32 $0, $1, $2, $3;", "=r,r,r,r", [a, b, c], dtype=tl.int32, is_pure=True, pack=1
        )
    else:
        for i in tl.static_range(4):
            c += ((a >> (8 * i)) & 0xFF) * ((b << (24 - 8 * i)) >> 24)
        return c


_dp4a = device_function(_dp4a_impl)


def _gemv_kernel(
    xq_ptr,  # int32 view (M, 4*KW) of the zero-padded int8 activations (M, K_pad); unused with FUSE_QUANT
    x_ptr,  # float (1, K) activations, quantized in the kernel when FUSE_QUANT (M = 1); else unused
    w_ptr,  # int32 (KW, N) packed words
    out_ptr,  # (M, N): out dtype, or int32 when SCALE is False
    s_ptr,  # fp32 (M,) activation scales (unused when SCALE is False or with FUSE_QUANT)
    ws_ptr,  # fp32 () or (N,) weight scale (unused when SCALE is False)
    work_ptr,  # int32 (16, N) workspace, zero on entry and on exit
    count_ptr,  # int32 (cdiv(N, 32),) tickets per N tile, zero on entry and on exit
    M,
    N,
    K,
    KW,
    stride_xm,  # in int32 units
    stride_om,
    M_BUCKET,  # autotune key only: next power of two of M
    FUSE_QUANT: tl.constexpr,  # M = 1: absmax, scale and int8 rounding of x inside this kernel
    QBLOCK: tl.constexpr,  # block of the absmax loop over K when FUSE_QUANT
    SCALE: tl.constexpr,
    WS_PER_CHANNEL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_KW: tl.constexpr,
    SPLIT_K: tl.constexpr,
    USE_DP4A: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    chunk = tl.cdiv(tl.cdiv(KW, SPLIT_K), BLOCK_KW) * BLOCK_KW
    kw_start = pid_k * chunk
    kw_end = tl.minimum(kw_start + chunk, KW)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_kw = tl.arange(0, BLOCK_KW)
    m_mask = offs_m < M
    n_mask = offs_n < N
    if FUSE_QUANT:
        s_row = row_scale(x_ptr, K, QBLOCK)  # (1,): every program derives the same scale
        s_q = tl.sum(s_row, axis=0)
        s_vec = s_row  # (BLOCK_M = 1,)
    else:
        s_q = 1.0
        s_vec = tl.load(s_ptr + offs_m, mask=m_mask, other=1.0) if SCALE else tl.full((BLOCK_M,), 1.0, tl.float32)
    if BLOCK_M == 1:
        # batch 1: a 2-D accumulator keeps the words in the layout they were loaded in (no shuffles)
        acc1 = tl.zeros((BLOCK_KW, BLOCK_N), dtype=tl.int32)
        xsum1 = tl.zeros((BLOCK_KW, 1), dtype=tl.int32)
        for kw0 in range(kw_start, kw_end, BLOCK_KW):
            kw = kw0 + offs_kw
            k_mask = kw < kw_end
            words = tl.load(
                w_ptr + kw[:, None] * N + offs_n[None, :], mask=k_mask[:, None] & n_mask[None, :], other=0
            )  # (BLOCK_KW, BLOCK_N)
            for j in tl.static_range(4):
                codes = (words >> (2 * j)) & 0x03030303  # (BLOCK_KW, BLOCK_N), four {0,1,2} bytes
                if FUSE_QUANT:
                    byte = tl.arange(0, 4)
                    kk = j * 4 * KW + 4 * kw[:, None] + byte[None, :]  # (BLOCK_KW, 4)
                    xv = tl.load(x_ptr + kk, mask=k_mask[:, None] & (kk < K), other=0.0).to(tl.float32)
                    q = quantize_values(xv, s_q)  # (BLOCK_KW, 4) int32 in [-128, 127]
                    xw = tl.sum((q & 0xFF) << (8 * byte)[None, :], axis=1)[:, None]  # (BLOCK_KW, 1), 4 int8
                else:
                    xw = tl.load(xq_ptr + j * KW + kw[:, None], mask=k_mask[:, None], other=0)  # (BLOCK_KW, 1)
                acc1 = _dp4a(codes, tl.broadcast_to(xw, (BLOCK_KW, BLOCK_N)), acc1, USE_DP4A)
                xsum1 = _dp4a(tl.full((BLOCK_KW, 1), 0x01010101, tl.int32), xw, xsum1, USE_DP4A)
        part = (tl.sum(acc1, axis=0) - tl.sum(xsum1, axis=0))[None, :]  # (1, BLOCK_N)
    else:
        # M in 2..16: the token axis innermost, (BLOCK_KW, BLOCK_N, BLOCK_M), keeps the accumulator in registers
        acc = tl.zeros((BLOCK_KW, BLOCK_N, BLOCK_M), dtype=tl.int32)
        xsum = tl.zeros((BLOCK_KW, BLOCK_M), dtype=tl.int32)
        for kw0 in range(kw_start, kw_end, BLOCK_KW):
            kw = kw0 + offs_kw
            k_mask = kw < kw_end
            words = tl.load(
                w_ptr + kw[:, None] * N + offs_n[None, :], mask=k_mask[:, None] & n_mask[None, :], other=0
            )  # (BLOCK_KW, BLOCK_N)
            for j in tl.static_range(4):
                codes = (words >> (2 * j)) & 0x03030303  # (BLOCK_KW, BLOCK_N), four {0,1,2} bytes
                xw = tl.load(
                    xq_ptr + offs_m[None, :] * stride_xm + j * KW + kw[:, None],
                    mask=k_mask[:, None] & m_mask[None, :],
                    other=0,
                )  # (BLOCK_KW, BLOCK_M), four int8 each
                a3 = tl.broadcast_to(codes[:, :, None], (BLOCK_KW, BLOCK_N, BLOCK_M))
                b3 = tl.broadcast_to(xw[:, None, :], (BLOCK_KW, BLOCK_N, BLOCK_M))
                acc = _dp4a(a3, b3, acc, USE_DP4A)
                xsum = _dp4a(tl.full((BLOCK_KW, BLOCK_M), 0x01010101, tl.int32), xw, xsum, USE_DP4A)
        part = tl.trans(tl.sum(acc, axis=0) - tl.sum(xsum, axis=0)[None, :])  # (BLOCK_M, BLOCK_N)
    mask = m_mask[:, None] & n_mask[None, :]
    if SPLIT_K == 1:
        _gemv_epilogue(out_ptr, ws_ptr, part, s_vec, offs_m, offs_n, m_mask, n_mask, stride_om,
                       SCALE, WS_PER_CHANNEL, BLOCK_M, BLOCK_N)
    else:
        work = work_ptr + offs_m[:, None] * N + offs_n[None, :]
        tl.atomic_add(work, part, mask=mask, sem="relaxed")
        tl.debug_barrier()  # every thread's partial sums are issued before the ticket is taken (release)
        ticket = tl.atomic_add(count_ptr + pid_n, 1, sem="acq_rel")
        if ticket == SPLIT_K - 1:  # the last program of this N tile: every partial sum has landed
            total = tl.atomic_xchg(work, tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32), mask=mask, sem="acq_rel")
            total = tl.where(mask, total, 0)  # masked lanes of an atomic hold no defined value
            tl.atomic_xchg(count_ptr + pid_n, 0, sem="relaxed")
            _gemv_epilogue(out_ptr, ws_ptr, total, s_vec, offs_m, offs_n, m_mask, n_mask, stride_om,
                           SCALE, WS_PER_CHANNEL, BLOCK_M, BLOCK_N)


def _gemv_epilogue_impl(out_ptr, ws_ptr, acc, s, offs_m, offs_n, m_mask, n_mask, stride_om,
                        SCALE: tl.constexpr, WS_PER_CHANNEL: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr):
    # acc (BLOCK_M, BLOCK_N) int32 totals, s (BLOCK_M,) fp32 -> out (scaled, or int32)
    mask = m_mask[:, None] & n_mask[None, :]
    out_ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
    if SCALE:
        if WS_PER_CHANNEL:
            ws = tl.load(ws_ptr + offs_n, mask=n_mask, other=0.0)[None, :]  # (1, BLOCK_N)
        else:
            ws = tl.load(ws_ptr + tl.zeros((1, 1), dtype=tl.int32))  # (1, 1)
        store_scaled(out_ptrs, acc, s, ws, mask, BLOCK_M, BLOCK_N)
    else:
        tl.store(out_ptrs, acc, mask=mask)


_gemv_epilogue = device_function(_gemv_epilogue_impl)


def _cfg(block_n: int, block_kw: int, split_k: int, num_warps: int = 4) -> Config:
    return Config({"BLOCK_N": block_n, "BLOCK_KW": block_kw, "SPLIT_K": split_k}, num_warps=num_warps, num_stages=1)


# Registers per thread of the BLOCK_M * BLOCK_KW * BLOCK_N int32 accumulator, at most. ptxas allocates about
# 3x that plus ~40 in all (sm_90, measured with `python -m bno_kernels.triton.aot`): 32 keeps a kernel near 140
# registers, 64 reaches 180-250 and spills at BLOCK_M = 16.
_MAX_ACC_REGS = 32


def _prune(configs: list[Any], named_args: dict[str, Any], **kwargs: Any) -> list[Any]:
    """Drop configurations whose accumulator would not fit in registers for this BLOCK_M."""
    block_m = int(kwargs.get("BLOCK_M", named_args.get("BLOCK_M", 1)))
    kept = [
        c for c in configs
        if block_m * c.kwargs["BLOCK_KW"] * c.kwargs["BLOCK_N"] <= _MAX_ACC_REGS * 32 * c.num_warps
    ]
    return kept or [min(configs, key=lambda c: c.kwargs["BLOCK_KW"] * c.kwargs["BLOCK_N"])]


GEMV = Kernel(
    fn=_gemv_kernel,
    gpu_configs=[
        # split-K matters at batch 1: N / BLOCK_N x SPLIT_K programs must cover 132 SMs several times over
        _cfg(64, 8, 8), _cfg(64, 8, 16), _cfg(64, 8, 32), _cfg(64, 16, 4), _cfg(64, 16, 8), _cfg(64, 32, 4),
        _cfg(128, 8, 8), _cfg(128, 8, 16), _cfg(128, 16, 2), _cfg(128, 16, 4), _cfg(128, 16, 8),
        _cfg(128, 32, 4), _cfg(256, 8, 4), _cfg(256, 16, 2), _cfg(256, 16, 4, 8), _cfg(32, 16, 16),
        _cfg(32, 8, 32), _cfg(64, 4, 8), _cfg(64, 4, 16), _cfg(64, 4, 32), _cfg(128, 4, 8), _cfg(32, 4, 16),
    ],
    key=("M_BUCKET", "N", "KW", "FUSE_QUANT"),
    interpreter_config=_cfg(64, 8, 2),
    gpu_options={"enable_fp_fusion": False},
    prune=_prune,
)


# Workspace rows (the largest M of the GEMV) and the smallest BLOCK_N of any configuration (ticket count).
_WORK_ROWS = MAX_GEMV_M
_MIN_BLOCK_N = 8
_QBLOCK_MAX = 2048  # block of the in-kernel absmax loop (fused quantization)
_workspaces: dict[tuple[str, int, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _workspace(device: torch.device, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The zeroed (int32 (16, N) sums, int32 tickets) of this device, stream and N (kept zero by the kernel)."""
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (str(device), int(stream), n)
    if key not in _workspaces:
        _workspaces[key] = (
            torch.zeros((_WORK_ROWS, n), dtype=torch.int32, device=device),  # (16, N)
            torch.zeros((triton.cdiv(n, _MIN_BLOCK_N),), dtype=torch.int32, device=device),
        )
    return _workspaces[key]


def _launch(
    xq_pad: torch.Tensor | None,
    x_row: torch.Tensor | None,
    words: torch.Tensor,
    n: int,
    k: int,
    s: torch.Tensor | None,
    weight_scale: torch.Tensor | None,
    out_dtype: torch.dtype,
    config: Config | None,
    use_dp4a: bool | None,
) -> torch.Tensor:
    """Launch the GEMV on pre-quantized ``xq_pad`` (M, K_pad) or, fused, on the float row ``x_row`` (1, K)."""
    kw = int(words.shape[0])
    assert tuple(words.shape) == (kw, n) and words.dtype == torch.int32, (
        f"gemv: words must be int32 ({kw}, {n}), got {words.dtype} {tuple(words.shape)}"
    )
    assert kw == -(-k // 16), f"gemv: K={k} needs {-(-k // 16)} words per row, the weight has {kw}"
    scale = weight_scale is not None
    assert scale or out_dtype == torch.int32, "gemv: an unscaled result is int32"
    if config is not None:
        assert config.meta["BLOCK_N"] >= _MIN_BLOCK_N, f"gemv: BLOCK_N must be >= {_MIN_BLOCK_N}"
    fuse = x_row is not None
    if x_row is not None:
        assert tuple(x_row.shape) == (1, k) and x_row.stride(-1) == 1, f"gemv: x_row must be (1, {k}), unit stride"
        m, x32, device = 1, words, x_row.device  # words: a placeholder for the unused xq pointer
    else:
        assert xq_pad is not None, "gemv: pass xq_pad or x_row"
        m, k_pad = (int(v) for v in xq_pad.shape)
        assert k_pad == 16 * kw, f"gemv: activations have K_pad={k_pad}, the weight has K_pad={16 * kw}"
        assert xq_pad.dtype == torch.int8 and xq_pad.stride(-1) == 1, "gemv: xq_pad must be int8, unit stride"
        assert scale == (s is not None), "gemv: pass both s and weight_scale, or neither"
        x32, device = xq_pad.view(torch.int32), xq_pad.device  # (M, 4*KW): byte b of word = k offset b
    assert 1 <= m <= MAX_GEMV_M, f"gemv: M must be in 1..{MAX_GEMV_M}, got {m}"
    out = torch.empty((m, n), dtype=out_dtype, device=device)  # (M, N)
    work, tickets = _workspace(device, n)
    block_m = max(1, triton.next_power_of_2(m))
    interpreted = interpret_mode(device)
    dp4a = (not interpreted) if use_dp4a is None else use_dp4a
    assert not (dp4a and interpreted), "gemv: Triton's interpreter has no inline assembly (dp4a)"
    GEMV.launch(
        lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), meta["SPLIT_K"]),
        x32, x_row if x_row is not None else out, words, out, s if s is not None else out,
        weight_scale if weight_scale is not None else out, work, tickets,
        m, n, k, kw, x32.stride(0), out.stride(0), block_m,
        device=device,
        config=config,
        FUSE_QUANT=fuse,
        QBLOCK=min(triton.next_power_of_2(k), _QBLOCK_MAX),
        SCALE=scale,
        WS_PER_CHANNEL=weight_scale is not None and weight_scale.dim() == 1,
        BLOCK_M=block_m,
        USE_DP4A=dp4a,
    )
    return out


def gemv(
    xq_pad: torch.Tensor,
    words: torch.Tensor,
    n: int,
    s: torch.Tensor | None = None,
    weight_scale: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.int32,
    *,
    config: Config | None = None,
    use_dp4a: bool | None = None,
) -> torch.Tensor:
    """(M, N) = xq @ W^T for M <= 16, one launch: int32 when ``s``/``weight_scale`` are None, else
    ``acc * weight_scale / s`` in ``out_dtype``.

    xq_pad int8 (M, K_pad) zero-padded; words int32 (KW, N); s fp32 (M,); weight_scale fp32 () or (N,).
    ``use_dp4a`` None: the PTX ``dp4a`` instruction when compiled for a GPU, the byte-wise sum otherwise.
    """
    k_pad = int(xq_pad.shape[1])
    return _launch(xq_pad, None, words, n, k_pad, s, weight_scale, out_dtype, config, use_dp4a)


def gemv_fused(
    x_row: torch.Tensor,
    words: torch.Tensor,
    n: int,
    weight_scale: torch.Tensor,
    out_dtype: torch.dtype,
    *,
    config: Config | None = None,
    use_dp4a: bool | None = None,
) -> torch.Tensor:
    """Batch 1 in one launch: x_row float (1, K) is quantized inside the GEMV (absmax, scale, int8, all
    bit-exact with :func:`bno_kernels.reference.quantize_activations`), then ``acc * weight_scale / s``."""
    return _launch(None, x_row, words, n, int(x_row.shape[1]), None, weight_scale, out_dtype, config, use_dp4a)


def gemv_int32(
    xq_pad: torch.Tensor,
    words: torch.Tensor,
    n: int,
    *,
    config: Config | None = None,
    use_dp4a: bool | None = None,
) -> torch.Tensor:
    """int32 (M, N) = xq @ W^T for M <= 16 (see :func:`gemv`)."""
    return gemv(xq_pad, words, n, config=config, use_dp4a=use_dp4a)
