"""``BitLinear`` (a ternary-weight linear layer with int8 activations) and torchao-style ``quantize_``.

A :class:`BitLinear` runs in one of two modes:

* ``"train"``: a latent float weight (a Parameter) quantized at every call (weights per-tensor absmean
  ternary, activations per-token absmax int8) with straight-through estimators; gradients reach the
  latent weight. The forward computes the kernels' own arithmetic (exact integer product, then the shared
  fp32 epilogue ``acc * beta / s``), so a train-mode model and its packed inference copy give bit-identical
  outputs (see :class:`_TrainForward`).
* ``"inference"``: only the packed 2-bit weight (:class:`bno_kernels.packed.PackedTernaryWeight`) and its
  fp32 scale are kept, no dense copy; the forward is one :func:`bno_kernels.ternary_matmul` call. The scale is
  a 0-d ``beta`` or, for fused projections (q|k|v, gate|up), a per-output-channel (N,) vector.

A layer may fuse several projections that share their input (``segments``: their row counts, e.g. q|k|v).
Each segment keeps its own per-tensor ``beta`` in both modes, so a fused layer computes exactly what the
separate layers would, with one activation quantization and one matmul.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from bno_bitnet.quant import absmean_quantize, latent_from_ternary
from bno_kernels.dispatch import ternary_matmul
from bno_kernels.packed import PackedTernaryWeight
from bno_kernels.reference import apply_scales, quantize_activations

MODES: tuple[str, ...] = ("train", "inference")

Ternary = tuple[torch.Tensor, torch.Tensor]  # (wq int8 (N, K) in {-1, 0, 1}, scale fp32: 0-d beta or (N,))


# Largest |partial sum| of an int8 x ternary dot product is 128 * K: exact in fp32 below 2**24.
_FP32_EXACT_K = (1 << 24) // 128


def ternary_int_matmul(xq: torch.Tensor, wq: torch.Tensor) -> torch.Tensor:
    """Exact ``xq @ wq^T`` as integer-valued floats: xq int8 (..., K), wq int8 (N, K) -> fp32 or fp64 (..., N).

    The operands are integers of magnitude <= 128, exactly representable in fp32, TF32 and bf16, and every
    partial sum stays below 2**24 (fp32) when K <= 131072 (fp64 beyond), so any summation order and any
    float32 matmul precision give the exact integer product.
    """
    dtype = torch.float32 if wq.shape[-1] <= _FP32_EXACT_K else torch.float64
    return torch.matmul(xq.to(dtype), wq.to(dtype).t())  # (..., N)


class _TrainForward(torch.autograd.Function):
    """Train-mode BitLinear without bias: forward ``(xq @ Wq^T) * beta / s`` exactly as the kernels compute it.

    Forward: ``xq, s = quantize_activations(x)``, ``Wq, beta = absmean_quantize(W)``, the exact integer
    product, and :func:`bno_kernels.reference.apply_scales` (the epilogue every kernel backend shares), so the
    value is bit-identical to :func:`bno_kernels.ternary_matmul` on the packed weight. (The textbook
    ``F.linear(fake_quant(x), fake_quant(W))`` differs from it by float rounding; at an exact rounding tie
    of a later activation quantizer, e.g. an entry exactly half its token's absmax, which fresh models with
    unit norm weights produce, that last-bit difference flips an int8 code and the logits drift by 1e-3.)
    Backward: the straight-through gradients of ``F.linear(xq / s, Wq * beta)`` w.r.t. x and W.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, w: torch.Tensor, segments: tuple[int, ...]
    ) -> torch.Tensor:
        xq, s = quantize_activations(x)  # (..., K) int8, (..., 1) fp32
        wq, beta = segment_quantize(w, segments)  # (N, K) int8, () or (N,) fp32
        acc = ternary_int_matmul(xq, wq)  # (..., N) exact integers
        ctx.save_for_backward(xq, s, wq, beta)
        ctx.dtypes = (x.dtype, w.dtype)  # type: ignore[attr-defined]
        return apply_scales(acc, beta, s).to(x.dtype)  # (..., N)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        xq, s, wq, beta = ctx.saved_tensors  # type: ignore[attr-defined]
        x_dtype, w_dtype = ctx.dtypes  # type: ignore[attr-defined]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            beta_rows = beta.reshape(-1, 1) if beta.dim() else beta  # (N, 1) or ()
            w_fq = (wq.float() * beta_rows).to(w_dtype).to(grad.dtype)  # (N, K), the fake-quantized weight
            grad_x = (grad @ w_fq).to(x_dtype)  # (..., K)
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            x_fq = (xq.float() / s).to(x_dtype).to(grad.dtype)  # (..., K), the fake-quantized activations
            k = x_fq.shape[-1]
            grad_w = (grad.reshape(-1, grad.shape[-1]).t() @ x_fq.reshape(-1, k)).to(w_dtype)  # (N, K)
        return grad_x, grad_w, None


def segment_quantize(w: torch.Tensor, segments: Sequence[int]) -> Ternary:
    """Absmean-quantize each row block of ``w`` on its own: w (N, K) float -> (wq int8 (N, K), scale).

    ``segments`` are the row counts of the fused projections (summing to N). One segment gives the 0-d
    per-tensor beta of :func:`absmean_quantize`; several give the per-output-channel (N,) scale holding
    each segment's beta on its rows. A segment is a contiguous row slice, so its beta is bit-identical to
    that of the separate projection.
    """
    if len(segments) == 1:
        return absmean_quantize(w)
    parts = [absmean_quantize(part) for part in w.split(list(segments))]  # [(wq_i (N_i, K), beta_i ())]
    return fuse_ternary(parts)


def fuse_ternary(parts: Sequence[Ternary]) -> Ternary:
    """Projections sharing an input as one: rows concatenated, wq (sum N_i, K), scale per output channel.

    Each part is (wq_i int8 (N_i, K), beta_i 0-d); a single part is returned as it is (0-d beta).
    """
    if len(parts) == 1:
        return parts[0]
    wq = torch.cat([p[0] for p in parts], dim=0)  # (sum N_i, K)
    scale = torch.cat([p[1].float().reshape(()).expand(p[0].shape[0]) for p in parts])  # (sum N_i,)
    return wq, scale


def split_ternary(wq: torch.Tensor, scale: torch.Tensor, segments: Sequence[int]) -> list[Ternary]:
    """Inverse of :func:`fuse_ternary`: per-segment (wq_i int8 (N_i, K), beta_i 0-d fp32).

    Raises ValueError when a segment's scale is not one number (a general per-channel scale).
    """
    scale = scale.float()
    rows = scale.expand(wq.shape[0]) if scale.dim() == 0 else scale  # (N,)
    out: list[Ternary] = []
    for w_part, s_part in zip(wq.split(list(segments)), rows.split(list(segments)), strict=True):
        if not bool((s_part == s_part[0]).all()):
            raise ValueError("a fused segment has more than one scale (expected one beta per segment)")
        out.append((w_part.contiguous(), s_part[0].clone()))
    return out


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is ``"train"`` or ``"inference"``, else raise ValueError."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


class BitLinear(nn.Module):
    """A BitNet b1.58 linear layer ``y = (xq @ Wq^T) * beta / s`` (+ bias). x (..., K) -> (..., N).

    Build one with ``BitLinear(K, N, mode=...)`` (random init), :meth:`from_linear`, :meth:`from_ternary`
    or :meth:`from_parts` (fused projections). ``segments`` are the row counts of the projections fused
    into the layer (default: one segment of all N rows); each is quantized with its own beta. In inference
    mode ``packed`` and ``weight_scale`` are plain attributes (not parameters or buffers):
    ``module.to(device)`` moves (and, across layouts, repacks) them, ``module.to(dtype)`` leaves the fp32
    scale alone.
    """

    weight: nn.Parameter | None
    bias: nn.Parameter | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        mode: str = "train",
        bias: bool = False,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        init: bool = True,
        segments: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        assert in_features > 0 and out_features > 0, f"empty BitLinear ({out_features}, {in_features})"
        self.in_features = in_features
        self.out_features = out_features
        self.mode = check_mode(mode)
        self.segments: tuple[int, ...] = tuple(segments) if segments is not None else (out_features,)
        assert sum(self.segments) == out_features and min(self.segments) > 0, (
            f"segments {self.segments} do not split {out_features} rows"
        )
        self.packed: PackedTernaryWeight | None = None
        self.weight_scale: torch.Tensor | None = None  # fp32 () or (N,); inference mode only
        self.weight = None
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device)) if bias else None
        if mode == "train":
            self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype, device=device))
            if init:
                _init_latent(self.weight, self.segments)
        elif init:
            latent = torch.empty(out_features, in_features, dtype=torch.float32, device=device)  # (N, K)
            _init_latent(latent, self.segments)
            self.set_ternary(*segment_quantize(latent, self.segments))

    # ---------------------------------------------------------------- construction and conversion
    @classmethod
    def from_linear(cls, linear: nn.Linear, mode: str = "train", layout: str | None = None) -> BitLinear:
        """A BitLinear with ``linear``'s weight (as the latent weight, or quantized and packed) and bias."""
        w = linear.weight.detach()
        layer = cls(
            linear.in_features, linear.out_features, mode=mode, bias=linear.bias is not None,
            dtype=w.dtype, device=w.device, init=False,
        )
        if mode == "train":
            assert layer.weight is not None
            layer.weight.data.copy_(w)
        else:
            layer.set_ternary(*absmean_quantize(w), layout=layout)
        if linear.bias is not None:
            assert layer.bias is not None
            layer.bias.data.copy_(linear.bias.detach())
        return layer

    @classmethod
    def from_ternary(
        cls,
        wq: torch.Tensor,
        weight_scale: torch.Tensor | float,
        *,
        mode: str = "inference",
        dtype: torch.dtype = torch.float32,
        layout: str | None = None,
        segments: Sequence[int] | None = None,
    ) -> BitLinear:
        """A BitLinear from a ternary matrix wq int8 (N, K) and its scale (0-d beta or (N,) per channel).

        In train mode each segment's scale must be one number: the latent weight is
        :func:`latent_from_ternary` per segment, which quantizes back to exactly ``(wq, scale)``.
        """
        n, k = wq.shape
        layer = cls(k, n, mode=mode, dtype=dtype, device=wq.device, init=False, segments=segments)
        layer.set_ternary(wq, weight_scale, layout=layout)
        return layer

    @classmethod
    def from_parts(
        cls,
        parts: Sequence[Ternary],
        *,
        mode: str = "inference",
        dtype: torch.dtype = torch.float32,
        layout: str | None = None,
    ) -> BitLinear:
        """One layer fusing projections that share an input, from their (wq_i (N_i, K), beta_i 0-d)."""
        return cls.from_ternary(*fuse_ternary(parts), mode=mode, dtype=dtype, layout=layout,
                                segments=[p[0].shape[0] for p in parts])

    def set_ternary(
        self, wq: torch.Tensor, weight_scale: torch.Tensor | float, layout: str | None = None
    ) -> None:
        """Install wq int8 (N, K) and its fp32 scale (0-d or (N,)): packed in inference mode, as a latent
        weight that quantizes back to exactly ``(wq, scale)`` in train mode (``layout`` is then unused)."""
        assert tuple(wq.shape) == (self.out_features, self.in_features), (
            f"ternary weight shape {tuple(wq.shape)} != ({self.out_features}, {self.in_features})"
        )
        ws = torch.as_tensor(weight_scale, dtype=torch.float32, device=wq.device).detach().clone()
        if ws.numel() == 1:
            ws = ws.reshape(())
        assert ws.shape in ((), (self.out_features,)), (
            f"weight_scale must be 0-d or ({self.out_features},), got {tuple(ws.shape)}"
        )
        if self.mode == "inference":
            self.packed = PackedTernaryWeight.from_ternary(wq, layout=layout)
            self.weight_scale = ws
            return
        assert self.weight is not None
        try:
            parts = split_ternary(wq, ws, self.segments)
        except ValueError:
            raise ValueError("train mode needs one per-tensor scale per segment; got a per-channel "
                             "weight_scale") from None
        latent = torch.cat([latent_from_ternary(w, beta, self.weight.dtype) for w, beta in parts])  # (N, K)
        self.weight.data.copy_(latent)

    def ternary(self) -> Ternary:
        """The quantized weight: (wq int8 (N, K), weight_scale fp32 () or (N,)) in either mode."""
        if self.mode == "train":
            assert self.weight is not None
            return segment_quantize(self.weight.detach(), self.segments)
        assert self.packed is not None and self.weight_scale is not None, "BitLinear has no weights loaded"
        return self.packed.to_ternary(), self.weight_scale

    def ternary_parts(self) -> list[Ternary]:
        """Each segment's (wq_i int8 (N_i, K), beta_i 0-d fp32): the separate projections, unfused."""
        return split_ternary(*self.ternary(), self.segments)

    def converted(self, mode: str, layout: str | None = None, dtype: torch.dtype | None = None) -> BitLinear:
        """A copy of this layer in ``mode`` (train -> inference quantizes and packs; the reverse is exact).

        ``dtype``: of the latent weight and bias (default: this layer's, fp32 for a bias-free inference layer).
        """
        check_mode(mode)
        wq, ws = self.ternary()
        if dtype is None:
            dtype = self.bias.dtype if self.bias is not None else (
                self.weight.dtype if self.weight is not None else torch.float32
            )
        layer = BitLinear.from_ternary(wq, ws, mode=mode, dtype=dtype, layout=layout, segments=self.segments)
        if self.bias is not None:
            layer.bias = nn.Parameter(self.bias.detach().clone())
        return layer

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., K) float -> (..., N) in x's dtype."""
        if self.mode == "train":
            assert self.weight is not None
            y_train: torch.Tensor = _TrainForward.apply(x, self.weight, self.segments)  # (..., N)
            return y_train if self.bias is None else y_train + self.bias
        assert self.packed is not None and self.weight_scale is not None, "BitLinear has no weights loaded"
        y = ternary_matmul(x, self.packed, self.weight_scale)  # (..., N)
        return y if self.bias is None else y + self.bias

    # ---------------------------------------------------------------- bookkeeping
    def packed_nbytes(self) -> int:
        """Bytes of packed ternary storage (0 in train mode)."""
        return self.packed.nbytes if self.packed is not None else 0

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> BitLinear:
        super()._apply(fn, recurse)
        if self.packed is not None and self.weight_scale is not None:
            target = fn(torch.empty(0, device=self.packed.device)).device  # where .to()/.cuda() sends us
            if target != self.packed.device:
                self.packed = self.packed.to(target)
                self.weight_scale = self.weight_scale.to(target)
        return self

    def extra_repr(self) -> str:
        scale = "" if self.weight_scale is None else f", weight_scale={tuple(self.weight_scale.shape)}"
        fused = "" if len(self.segments) == 1 else f", segments={self.segments}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, mode={self.mode!r}, "
            f"bias={self.bias is not None}{fused}{scale}"
        )


def _init_latent(weight: torch.Tensor, segments: tuple[int, ...]) -> None:
    """nn.Linear's default init (Kaiming uniform), one segment after the other: weight (N, K), in place.

    Per segment, so a fused layer draws the same random numbers as its separate projections would.
    """
    with torch.no_grad():
        for part in weight.split(list(segments)):  # (N_i, K) views
            nn.init.kaiming_uniform_(part, a=5**0.5)


@dataclass
class QuantizeConfig:
    """What :func:`quantize_` converts and how.

    mode: "train" (latent weights + STE) or "inference" (packed, kernels).
    skip: module names left as ``nn.Linear``; a name matches a module's full dotted name or its last part.
    filter_fn: optional ``fn(module, full_name) -> bool``; only modules it accepts are converted.
    layout: packed layout for inference mode (None: the weight's device default).
    """

    mode: str = "train"
    skip: tuple[str, ...] = ("lm_head",)
    filter_fn: Callable[[nn.Module, str], bool] | None = None
    layout: str | None = None


def _skipped(name: str, skip: tuple[str, ...]) -> bool:
    last = name.rsplit(".", 1)[-1]
    return any(name == s or last == s or name.endswith("." + s) for s in skip)


def quantize_(model: nn.Module, config: QuantizeConfig | None = None) -> nn.Module:
    """Replace the ``nn.Linear`` layers of ``model`` by :class:`BitLinear`, in place (torchao style).

    ``lm_head`` is skipped by default (:class:`QuantizeConfig`). Returns ``model``.
    """
    cfg = config if config is not None else QuantizeConfig()
    check_mode(cfg.mode)
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and name
        and not _skipped(name, cfg.skip)
        and (cfg.filter_fn is None or cfg.filter_fn(module, name))
    ]
    for name, module in targets:
        assert isinstance(module, nn.Linear)
        model.set_submodule(name, BitLinear.from_linear(module, mode=cfg.mode, layout=cfg.layout))
    return model
