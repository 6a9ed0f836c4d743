"""BitLinear in train and inference mode, and torchao-style quantize_."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bno_bitnet.layers import BitLinear, QuantizeConfig, quantize_
from bno_bitnet.quant import absmax_quantize, absmean_quantize


def _manual(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(xq @ Wq^T) * beta / s computed independently in float64."""
    wq, beta = absmean_quantize(w)
    xq, s = absmax_quantize(x)
    return ((xq.double() @ wq.double().T) * beta.double() / s.double()).float()


def test_train_and_inference_agree_with_the_formula() -> None:
    torch.manual_seed(0)
    layer = BitLinear(40, 30, mode="train")
    x = torch.randn(3, 5, 40)
    assert layer.weight is not None
    expected = _manual(x, layer.weight.detach())
    y_train = layer(x)
    inference = layer.converted("inference")
    y_inf = inference(x)
    assert y_train.shape == y_inf.shape == (3, 5, 30)
    torch.testing.assert_close(y_train, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y_inf, expected, atol=1e-5, rtol=1e-5)


def test_train_mode_gradients_reach_latent_weight() -> None:
    torch.manual_seed(0)
    layer = BitLinear(16, 8, mode="train", bias=True)
    x = torch.randn(4, 16, requires_grad=True)
    layer(x).pow(2).sum().backward()
    assert layer.weight is not None and layer.weight.grad is not None
    assert layer.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert layer.bias is not None and layer.bias.grad is not None


def test_inference_mode_keeps_no_dense_weight() -> None:
    layer = BitLinear(64, 48, mode="inference")
    assert layer.weight is None and layer.packed is not None
    dense = [t for t in [*layer.parameters(), *layer.buffers()] if t.numel() >= 64 * 48]
    assert dense == []
    assert layer.packed_nbytes() == 64 * 48 // 4  # 2 bits per weight, no padding at these sizes
    assert layer.weight_scale is not None and layer.weight_scale.dtype == torch.float32


def test_per_channel_scale_and_dtype_moves() -> None:
    torch.manual_seed(1)
    wq = torch.randint(-1, 2, (6, 20), dtype=torch.int8)
    scale = torch.linspace(0.1, 0.6, 6)
    layer = BitLinear.from_ternary(wq, scale)
    x = torch.randn(2, 20)
    xq, s = absmax_quantize(x)
    expected = (xq.float() @ wq.float().T) * scale / s
    torch.testing.assert_close(layer(x), expected)
    layer.to(torch.bfloat16)
    assert layer.weight_scale is not None and layer.weight_scale.dtype == torch.float32
    assert layer(x.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="per-tensor"):
        BitLinear.from_ternary(wq, scale, mode="train")


def test_train_mode_from_ternary_is_exact() -> None:
    wq = torch.randint(-1, 2, (12, 9), dtype=torch.int8)
    layer = BitLinear.from_ternary(wq, torch.tensor(0.07), mode="train")
    wq2, beta2 = layer.ternary()
    assert torch.equal(wq2, wq)
    assert torch.isclose(beta2, torch.tensor(0.07), rtol=1e-6)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(12, 10)
        self.block = nn.Sequential(nn.Linear(10, 10, bias=False), nn.ReLU())
        self.lm_head = nn.Linear(10, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.block(self.proj(x)))


@pytest.mark.parametrize("mode", ["train", "inference"])
def test_quantize_replaces_linears_but_not_lm_head(mode: str) -> None:
    torch.manual_seed(0)
    model = _Toy()
    w_proj = model.proj.weight.detach().clone()
    b_proj = model.proj.bias.detach().clone()
    out = quantize_(model, QuantizeConfig(mode=mode))
    assert out is model
    assert isinstance(model.proj, BitLinear) and model.proj.mode == mode
    assert isinstance(model.block[0], BitLinear)
    assert type(model.lm_head) is nn.Linear
    x = torch.randn(3, 12)
    expected = _manual(x, w_proj) + b_proj
    torch.testing.assert_close(model.proj(x), expected, atol=1e-5, rtol=1e-5)
    assert model(x).shape == (3, 5)


def test_quantize_filter_fn() -> None:
    model = _Toy()
    quantize_(model, QuantizeConfig(filter_fn=lambda m, name: name == "proj"))
    assert isinstance(model.proj, BitLinear) and type(model.block[0]) is nn.Linear
