"""Write a model as a GGUF file llama.cpp runs: ternary projections in TQ2_0, on the same weights.

For the side-by-side benchmark (``bitnet bench e2e --compare llama.cpp``): llama.cpp times exactly our
ternary values and scales. Layout (llama.cpp's ``bitnet`` architecture, tied embeddings):

* ``blk.N.attn_{q,k,v,output}``, ``blk.N.ffn_{gate,up,down}``: TQ2_0 (2 bits per weight, an fp16 scale per
  256 weights). Each row is written as ``codes x beta`` of its projection, so a block's scale is beta
  (rounded to fp16) and its codes are ours: no separate ``.scale`` tensors. Our fused q|k|v and gate|up
  are split back into llama.cpp's separate tensors.
* ``token_embd`` (also the output head): ``f16``, ``q8_0`` or ``q6_k`` (the last converted with
  llama.cpp's own quantizer, through llama-cpp-python); norms f32.
* A generated vocabulary (llama.cpp needs one to load a model; the benchmark feeds token ids).

llama.cpp's ``bitnet`` graph computes ``silu(gate) * up`` where BitNet b1.58 2B4T has ``relu(gate)² * up``:
the same bytes, shapes and matmuls, one different vector op per layer, so its timings compare and its
logits do not. Tensors are quantized and written one at a time (no dense copy of the model).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bno_bitnet.errors import ConfigError

if TYPE_CHECKING:
    from bno_bitnet.model import BitNetForCausalLM

HEAD_TYPES: tuple[str, ...] = ("f16", "q8_0", "q6_k")
TERNARY_BLOCK = 256  # TQ2_0 weights per block: in_features must be a multiple
ARCH = "bitnet"


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as exc:
        raise ConfigError("writing GGUF needs the gguf package: pip install 'bitnet-orchestrator[bench]'") from exc
    return gguf


def _projections(model: BitNetForCausalLM, layer: int) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(llama.cpp name, int8 codes (N, K), beta per row (N,)) for each projection of a layer, unfused."""
    block: Any = model.model.layers[layer]
    c = model.config
    parts = {
        "attn_q": (block.self_attn.qkv_proj, 0, c.q_size), "attn_k": (block.self_attn.qkv_proj, c.q_size, c.kv_size),
        "attn_v": (block.self_attn.qkv_proj, c.q_size + c.kv_size, c.kv_size),
        "attn_output": (block.self_attn.o_proj, 0, c.hidden_size),
        "ffn_gate": (block.mlp.gate_up_proj, 0, c.intermediate_size),
        "ffn_up": (block.mlp.gate_up_proj, c.intermediate_size, c.intermediate_size),
        "ffn_down": (block.mlp.down_proj, 0, c.hidden_size),
    }
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, (linear, start, rows) in parts.items():
        key = id(linear)
        if key not in cache:
            codes, scale = linear.ternary()  # (N, K) int8, () or (N,) fp32
            cache = {key: (codes, scale.expand(codes.shape[0]) if scale.dim() == 0 else scale)}
        codes, beta = cache[key]
        yield name, codes[start : start + rows], beta[start : start + rows]


def _vocabulary(size: int, bos: int | None, eos: int | None) -> tuple[list[str], list[float], list[int]]:
    """A valid SentencePiece-style vocabulary of ``size`` tokens: unk, byte tokens, then placeholders."""
    gguf = _gguf()
    types = gguf.TokenType
    tokens, scores, kinds = [], [], []
    for i in range(size):
        if i == 0:
            text, kind = "<unk>", types.UNKNOWN
        elif i == bos:
            text, kind = "<s>", types.CONTROL
        elif i == eos:
            text, kind = "</s>", types.CONTROL
        elif 1 <= i <= 256 and i not in (bos, eos):
            text, kind = f"<0x{i - 1:02X}>", types.BYTE
        else:
            text, kind = f"<t{i}>", types.NORMAL
        tokens.append(text)
        scores.append(-float(i))
        kinds.append(int(kind))
    return tokens, scores, kinds


def write_gguf(model: BitNetForCausalLM, path: str | os.PathLike[str], *, head: str = "f16",
               name: str = "bitnet-orchestrator") -> Path:
    """Write ``model`` (inference mode) to ``path`` as a GGUF llama.cpp loads (see the module docstring)."""
    import numpy as np

    gguf = _gguf()
    if head not in HEAD_TYPES:
        raise ConfigError(f"--gguf-head: expected one of {', '.join(HEAD_TYPES)}, got {head!r}")
    c = model.config
    if model.mode != "inference":
        raise ConfigError("write_gguf: convert the model to inference mode first (packed ternary weights)")
    if not c.tie_word_embeddings:
        raise ConfigError("write_gguf: llama.cpp's bitnet architecture has no separate output head; the model "
                          "must have tied embeddings")
    for k in (c.hidden_size, c.intermediate_size, c.q_size):
        if k % TERNARY_BLOCK:
            raise ConfigError(f"write_gguf: TQ2_0 needs in_features divisible by {TERNARY_BLOCK}, got {k}")
    out = Path(path)
    tmp = out.with_name(out.name + ".partial")
    qtype = gguf.GGMLQuantizationType
    head_q = {"f16": qtype.F16, "q8_0": qtype.Q8_0, "q6_k": qtype.F16}[head]  # q6_k: converted after writing

    writer = gguf.GGUFWriter(str(tmp), ARCH)
    writer.add_name(name)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_rope_freq_base(float(c.rope_theta))
    writer.add_layer_norm_rms_eps(float(c.rms_norm_eps))
    writer.add_vocab_size(c.vocab_size)
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_TQ2_0))
    bos = c.bos_token_id if isinstance(c.bos_token_id, int) else None
    eos = c.eos_token_id if isinstance(c.eos_token_id, int) else None
    tokens, scores, kinds = _vocabulary(c.vocab_size, bos, eos)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(kinds)
    writer.add_unk_token_id(0)
    if bos is not None:
        writer.add_bos_token_id(bos)
    if eos is not None:
        writer.add_eos_token_id(eos)

    # every tensor: (name, producer of its numpy data, logical shape, type); data made when written
    plan: list[tuple[str, Callable[[], Any], tuple[int, ...], Any]] = []

    def float_rows(t: torch.Tensor) -> Any:
        return t.detach().float().contiguous().numpy()

    embed = model.model.embed_tokens.weight
    plan.append(("token_embd.weight", lambda: _quantized(float_rows(embed), head_q, gguf),
                 (c.vocab_size, c.hidden_size), head_q))
    plan.append(("output_norm.weight", lambda: float_rows(model.model.norm.weight), (c.hidden_size,), qtype.F32))
    for i, block in enumerate(model.model.layers):
        b: Any = block
        for label, norm, size in (("attn_norm", b.input_layernorm, c.hidden_size),
                                  ("ffn_norm", b.post_attention_layernorm, c.hidden_size),
                                  ("attn_sub_norm", b.self_attn.attn_sub_norm, c.q_size),
                                  ("ffn_sub_norm", b.mlp.ffn_sub_norm, c.intermediate_size)):
            plan.append((f"blk.{i}.{label}.weight", functools.partial(float_rows, norm.weight), (size,), qtype.F32))
        for label, codes, beta in _projections(model, i):
            rows_cols = (int(codes.shape[0]), int(codes.shape[1]))
            plan.append((f"blk.{i}.{label}.weight", functools.partial(_ternary_rows, codes, beta, gguf), rows_cols,
                         qtype.TQ2_0))
    for tensor_name, _make, shape, dtype in plan:
        if dtype in (qtype.F32,):
            writer.add_tensor_info(tensor_name, shape, np.dtype(np.float32), 4 * int(np.prod(shape)))
        elif dtype == qtype.F16:
            writer.add_tensor_info(tensor_name, shape, np.dtype(np.float16), 2 * int(np.prod(shape)))
        else:
            byte_shape = gguf.quant_shape_to_byte_shape(shape, dtype)
            writer.add_tensor_info(tensor_name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=dtype)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for _tensor_name, make, _shape, _dtype in plan:
            writer.write_tensor_data(make())
        writer.close()
        if head == "q6_k":
            _requantize_head_q6k(tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _ternary_rows(codes: torch.Tensor, beta: torch.Tensor, gguf: Any) -> Any:
    """TQ2_0 blocks of ``codes * beta`` (N, K): the block scales come out as beta, the codes as ours."""
    return _quantized((codes.float() * beta[:, None]).numpy(), gguf.GGMLQuantizationType.TQ2_0, gguf)


def _quantized(array: Any, dtype: Any, gguf: Any) -> Any:
    import numpy as np

    if dtype == gguf.GGMLQuantizationType.F32:
        return array.astype(np.float32)
    if dtype == gguf.GGMLQuantizationType.F16:
        return array.astype(np.float16)
    return gguf.quants.quantize(array, dtype)


def _requantize_head_q6k(path: Path) -> None:
    """Convert the embedding/head of a written GGUF to Q6_K with llama.cpp's own quantizer (in place);
    the TQ2_0 tensors are copied unchanged."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError("--gguf-head q6_k uses llama.cpp's quantizer: pip install 'bitnet-orchestrator[bench]'") from exc
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_TQ2_0
    params.token_embedding_type = llama_cpp.GGML_TYPE_Q6_K
    params.output_tensor_type = llama_cpp.GGML_TYPE_Q6_K
    params.nthread = max(1, os.cpu_count() or 1)
    staged = path.with_name(path.name + ".q6k")
    quiet_llama_cpp()
    try:
        status = llama_cpp.llama_model_quantize(str(path).encode(), str(staged).encode(), params)
        if status != 0:
            raise ConfigError(f"llama.cpp's quantizer failed on {path} (status {status})")
        os.replace(staged, path)
    finally:
        if staged.exists():
            staged.unlink()


_silenced: list[Any] = []


def quiet_llama_cpp() -> None:
    """Route llama.cpp's log lines to nowhere (it prints every tensor while loading and quantizing)."""
    import llama_cpp

    if _silenced:
        return

    @llama_cpp.llama_log_callback
    def _drop(_level: int, _text: bytes, _user: Any) -> None:
        return None

    _silenced.append(_drop)  # the C side keeps the pointer: keep the callback alive
    llama_cpp.llama_log_set(_drop, None)
