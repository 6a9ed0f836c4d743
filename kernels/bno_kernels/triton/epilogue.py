"""The scaling epilogue shared by the GEMV's scale kernel and the GEMM: ``acc * weight_scale / s``, stored.

fp32 exactly as :func:`bno_kernels.reference.apply_scales` computes it (a multiply, then a correctly rounded
division). A bf16 result is rounded to nearest-even with integer operations: Triton's interpreter truncates
fp32 -> bf16 casts, while a GPU rounds to nearest-even, and the integer form gives the same bits on both.
"""

from __future__ import annotations

import triton.language as tl

from bno_kernels.triton.runtime import device_function


def _store_scaled(out_ptrs, acc, s, ws, mask, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # acc (BLOCK_M, BLOCK_N) int32; s (BLOCK_M,) fp32; ws (1, 1) or (1, BLOCK_N) fp32
    y = acc.to(tl.float32) * ws
    y = tl.math.div_rn(y, tl.broadcast_to(s[:, None], (BLOCK_M, BLOCK_N)))  # (BLOCK_M, BLOCK_N) fp32
    if out_ptrs.dtype.element_ty == tl.bfloat16:
        bits = y.to(tl.int32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)  # round to nearest even on the dropped 16 bits
        hi = (bits >> 16).to(tl.int16)
        tl.store(out_ptrs, hi.to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(out_ptrs, y.to(out_ptrs.dtype.element_ty), mask=mask)


store_scaled = device_function(_store_scaled)
