"""BitNet b1.58 quantizers: per-tensor absmean ternary weights, per-token absmax int8 activations.

All functions are pure (they never modify their inputs). The math (docs/architecture.md, "BitNet b1.58"):

* weights: ``beta = mean(|W|).clamp(min=1e-5)``, ``Wq = round(W / beta).clamp(-1, 1)``;
* activations: ``s = 127 / max(|x|).clamp(min=1e-5)`` per token, ``xq = round(x * s).clamp(-128, 127)``;
* a BitLinear output is ``y = (xq @ Wq^T) * beta / s``.

Rounding is round-half-to-even (``torch.round``). The weight quantizer computes ``round(W * (1 / beta))``
in fp32, the same operation order as transformers' ``WeightQuant``, so a latent checkpoint quantizes to
the same ternary matrix here and there (a different order can flip a weight that sits on a .5 boundary).
"""

from __future__ import annotations

import torch

WEIGHT_EPS = 1e-5
ACT_EPS = 1e-5
ACT_MAX = 127.0


def absmean_quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor absmean ternary quantization.

    w (N, K) float -> (wq int8 (N, K) in {-1, 0, 1}, beta 0-d float32) with ``w ≈ wq * beta``.
    """
    if not w.is_floating_point():
        raise TypeError(f"absmean_quantize: expected a floating-point weight, got {w.dtype}")
    wf = w.float()  # (N, K)
    # the mean summed in fp64, then rounded to fp32: the same beta whatever torch's thread count (an fp32 sum's
    # last bit follows the reduction order, and one bit of beta can flip a rounded activation downstream)
    mean = wf.abs().sum(dtype=torch.float64).div(wf.numel()).float()
    inv = 1.0 / mean.clamp(min=WEIGHT_EPS)  # () fp32, 1 / beta
    scaled = wf * inv  # (N, K); rounded and clamped in place: one float temporary, not three
    wq = scaled.round_().clamp_(-1, 1).to(torch.int8)  # (N, K)
    del scaled
    beta = (1.0 / inv).reshape(())  # () fp32
    return wq, beta


def absmax_quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token absmax int8 quantization (delegates to :func:`bno_kernels.reference.quantize_activations`).

    x (..., K) float -> (xq int8 (..., K), s float32 (..., 1)) with ``x ≈ xq / s``.
    """
    from bno_kernels.reference import quantize_activations

    return quantize_activations(x)


def fake_quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """``wq * beta`` in ``w``'s dtype (no gradient trick): w (N, K) -> (N, K)."""
    wq, beta = absmean_quantize(w)
    return (wq.float() * beta).to(w.dtype)


def fake_quantize_activation(x: torch.Tensor) -> torch.Tensor:
    """``xq / s`` in ``x``'s dtype (no gradient trick): x (..., K) -> (..., K)."""
    xf = x.float()  # (..., K)
    s = ACT_MAX / xf.abs().amax(dim=-1, keepdim=True).clamp(min=ACT_EPS)  # (..., 1)
    return (torch.round(xf * s).clamp(-128, 127) / s).to(x.dtype)


class _StraightThrough(torch.autograd.Function):
    """Forward: a fake quantizer's exact output; backward: the incoming gradient unchanged (STE)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, weight: bool) -> torch.Tensor:
        return fake_quantize_weight(x) if weight else fake_quantize_activation(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def ste_weight_quant(w: torch.Tensor) -> torch.Tensor:
    """Fake-quantized weight with a straight-through estimator: forward ``wq * beta``, gradient identity.

    w (N, K) float (a latent weight, usually a Parameter) -> (N, K) in ``w.dtype``. Equivalent to
    ``w + (q(w) - w).detach()`` but the forward value is exactly ``q(w)`` (no ``w + (q - w)`` rounding).
    """
    out: torch.Tensor = _StraightThrough.apply(w, True)
    return out


def ste_activation_quant(x: torch.Tensor) -> torch.Tensor:
    """Fake-quantized activations with a straight-through estimator: forward ``xq / s``, gradient identity.

    x (..., K) float -> (..., K) in ``x.dtype``.
    """
    out: torch.Tensor = _StraightThrough.apply(x, False)
    return out


def ternary_density(wq: torch.Tensor) -> float:
    """The fraction of non-zero entries of a ternary matrix (``mean(|wq|)``), 0.0 for an all-zero matrix."""
    return float(wq.ne(0).float().mean().item()) if wq.numel() else 0.0


def latent_from_ternary(wq: torch.Tensor, beta: torch.Tensor | float, dtype: torch.dtype) -> torch.Tensor:
    """A latent float weight that :func:`absmean_quantize` maps back to exactly ``(wq, beta)``.

    wq (N, K) int8, beta scalar -> (N, K) ``dtype``. The latent is ``wq * beta / p`` with ``p`` the fraction
    of non-zeros: its absmean is ``beta`` and every non-zero entry divided by ``beta`` is ``±1/p`` (>= 1),
    which rounds and clamps back to ``±1``. An all-zero ``wq`` maps to zeros.
    """
    p = ternary_density(wq)
    b = float(beta) if not isinstance(beta, torch.Tensor) else float(beta.float().item())
    magnitude = b / p if p > 0 else 0.0
    return (wq.to(torch.float32) * magnitude).to(dtype)  # (N, K)
