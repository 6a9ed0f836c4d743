"""The matmul shapes of microsoft/bitnet-b1.58-2B-4T, the benchmarks' workload: their one definition.

The kernel benchmarks (:mod:`bno_kernels.bench`, :mod:`bno_kernels.triton.bench_gpu`) read them here, and
:mod:`bno_bitnet.shapes` builds the model's ``"2b4t"`` config from the same dimensions (bno_bitnet may import
bno_kernels, never the reverse).
"""

from __future__ import annotations

HIDDEN_SIZE_2B4T = 2560
INTERMEDIATE_SIZE_2B4T = 6912
NUM_ATTENTION_HEADS_2B4T = 20
NUM_KEY_VALUE_HEADS_2B4T = 5
HEAD_DIM_2B4T = HIDDEN_SIZE_2B4T // NUM_ATTENTION_HEADS_2B4T  # 128

_H, _I = HIDDEN_SIZE_2B4T, INTERMEDIATE_SIZE_2B4T
_Q, _KV = NUM_ATTENTION_HEADS_2B4T * HEAD_DIM_2B4T, NUM_KEY_VALUE_HEADS_2B4T * HEAD_DIM_2B4T

# (out_features N, in_features K) of each ternary projection of one layer, by transformers' module name,
# in transformers' order.
PROJECTIONS_2B4T: dict[str, tuple[int, int]] = {
    "q_proj": (_Q, _H),
    "k_proj": (_KV, _H),
    "v_proj": (_KV, _H),
    "o_proj": (_H, _Q),
    "gate_proj": (_I, _H),
    "up_proj": (_I, _H),
    "down_proj": (_H, _I),
}


def fused_shape(*projections: str) -> tuple[int, int]:
    """(N, K) of the named 2B4T projections fused into one matmul (rows stacked; they share K)."""
    ks = {PROJECTIONS_2B4T[p][1] for p in projections}
    assert len(ks) == 1, f"{projections} do not share their input features"
    return sum(PROJECTIONS_2B4T[p][0] for p in projections), ks.pop()
