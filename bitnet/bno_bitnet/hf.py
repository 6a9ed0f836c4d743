"""Load and save Hugging Face BitNet checkpoints (``config.json`` + safetensors, sharded or not).

Three forms, decided by ``config.json``'s ``quantization_config`` (transformers' rules):

* ``latent``: float (bf16/fp32) weights, ``linear_class: autobitlinear`` + ``quantization_mode: online``
  (also: no ``quantization_config`` at all); quantized here at load time.
* ``packed-autobitlinear``: ``linear_class: autobitlinear`` + ``quantization_mode: offline`` (the released
  2B4T checkpoint): ``weight`` uint8 in the HF packed layout, ``weight_scale`` = beta (multiplies).
* ``packed-bitlinear``: ``linear_class: bitlinear`` (any mode): packed weights, ``weight_scale`` = 1/beta
  (transformers divides by it).

Loading is lazy per tensor (``safe_open``), and builds packed layers one projection at a time: no dense
copy of all weights is ever materialized. The checkpoints hold transformers' separate projections (q, k,
v, gate, up); the model's layout fuses them (:data:`bno_bitnet.model.FUSED_PROJECTIONS`), so loading
fuses them and saving splits them again. Every error is a :class:`CheckpointError` (or
:class:`ConfigError`) naming the file and the tensor or field. Saving writes a temporary directory beside
the target and swaps it in at the end, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bno_bitnet.errors import BitNetError, CheckpointError, ConfigError
from bno_bitnet.layers import BitLinear, Ternary, check_mode, fuse_ternary
from bno_bitnet.model import FUSED_PROJECTIONS, BitNetConfig, BitNetForCausalLM, DecoderLayer
from bno_bitnet.packing import pack_hf, packed_rows, unpack_hf
from bno_bitnet.quant import absmean_quantize, latent_from_ternary
from bno_bitnet.shapes import release_freed_memory
from bno_foundation.atomic import staged_directory, swap_directory
from bno_foundation.jsonfile import read_json_object

FORMS: tuple[str, ...] = ("latent", "packed-autobitlinear", "packed-bitlinear")
LINEAR_CLASSES: tuple[str, ...] = ("autobitlinear", "bitlinear")
CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
OUT_FEATURES_KEY = "bitnet.packed_out_features"  # safetensors metadata: {tensor: N} for N % 4 != 0
_FLOAT_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


# ==================================================================== reading
@dataclass
class CheckpointInfo:
    """What a model directory holds, read from ``config.json`` and the safetensors headers only."""

    path: Path
    config: BitNetConfig
    form: str
    raw_config: dict[str, Any]
    files: list[Path]
    tensor_files: dict[str, Path] = field(default_factory=dict)  # tensor name -> file
    declared_dtype: torch.dtype | None = None


def checkpoint_form(raw: dict[str, Any], config_path: str = CONFIG_FILE) -> str:
    """The checkpoint form from ``quantization_config`` (see the module docstring); errors name the field."""
    qc = raw.get("quantization_config")
    if qc is None:
        return "latent"
    if not isinstance(qc, dict):
        raise CheckpointError(f"{config_path}: field 'quantization_config' must be an object, got {qc!r}")
    method = qc.get("quant_method", "bitnet")
    if method != "bitnet":
        raise CheckpointError(
            f"{config_path}: field 'quantization_config.quant_method' is {method!r}; only 'bitnet' is supported"
        )
    linear_class = qc.get("linear_class", "bitlinear")
    if linear_class not in LINEAR_CLASSES:
        raise CheckpointError(
            f"{config_path}: field 'quantization_config.linear_class' has unknown value {linear_class!r}; "
            f"expected one of {LINEAR_CLASSES}"
        )
    mode = qc.get("quantization_mode", "offline")
    if mode not in ("online", "offline"):
        raise CheckpointError(
            f"{config_path}: field 'quantization_config.quantization_mode' has unknown value {mode!r}; "
            "expected 'online' or 'offline'"
        )
    if qc.get("use_rms_norm", False):
        raise CheckpointError(
            f"{config_path}: field 'quantization_config.use_rms_norm' is true; BitLinear-internal RMSNorm "
            "is not supported"
        )
    skip = qc.get("modules_to_not_convert") or []
    if not isinstance(skip, list) or any(name != "lm_head" for name in skip):
        raise CheckpointError(
            f"{config_path}: field 'quantization_config.modules_to_not_convert' = {skip!r} is unsupported "
            "(only 'lm_head' may stay unquantized)"
        )
    if linear_class == "autobitlinear":
        return "latent" if mode == "online" else "packed-autobitlinear"
    return "packed-bitlinear"


def _declared_dtype(raw: dict[str, Any]) -> torch.dtype | None:
    name = raw.get("dtype") or raw.get("torch_dtype")
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(str(name))


def inspect_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Read ``config.json`` and the safetensors index/headers (no tensor data)."""
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a directory (expected a model directory with {CONFIG_FILE})")
    config_path = root / CONFIG_FILE
    raw = read_json_object(config_path, error=CheckpointError)
    config = BitNetConfig.from_hf_dict(raw, str(config_path))
    form = checkpoint_form(raw, str(config_path))
    index_path = root / INDEX_FILE
    tensor_files: dict[str, Path] = {}
    if index_path.exists():
        weight_map = read_json_object(index_path, error=CheckpointError).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index_path}: field 'weight_map' is missing or empty")
        for name, file in weight_map.items():
            if not isinstance(file, str) or "/" in file or "\\" in file or file.startswith("."):
                raise CheckpointError(f"{index_path}: field 'weight_map.{name}' names a bad file {file!r}")
            tensor_files[name] = root / file
        files = sorted(set(tensor_files.values()))
        for f in files:
            if not f.is_file():
                raise CheckpointError(f"{f}: file not found (listed in {index_path})")
    elif (root / SINGLE_FILE).is_file():
        files = [root / SINGLE_FILE]
    else:
        raise CheckpointError(f"{root}: no {SINGLE_FILE} or {INDEX_FILE} found")
    return CheckpointInfo(root, config, form, raw, files, tensor_files, _declared_dtype(raw))


class _Reader:
    """Lazy tensor access across one or more safetensors files, with checked shapes and dtypes.

    Lean: the files are validated and listed by the safetensors library, and each tensor's bytes are then
    read with plain file reads straight into the tensor that holds them (the offsets come from the file's
    header). No page of the file is mapped into the process, so a load's resident memory is the tensors
    the model keeps plus one projection's temporaries, never a mapped file beside its copy.
    """

    def __init__(self, info: CheckpointInfo) -> None:
        from safetensors import safe_open

        self.info = info
        self.where: dict[str, Path] = {}
        self.out_features: dict[str, int] = {}
        self.entries: dict[Path, tuple[int, dict[str, Any]]] = {}  # file -> (data start, header)
        for f in info.files:
            try:
                with safe_open(str(f), framework="pt", device="cpu") as handle:
                    names = list(handle.keys())
                    meta = handle.metadata() or {}
            except Exception as exc:  # safetensors raises its own error types for corrupt files
                raise CheckpointError(f"{f}: not a readable safetensors file ({exc})") from None
            self.entries[f] = _read_header(f)
            for name in names:
                if info.tensor_files.get(name, f) == f:  # the index, when there is one, decides
                    self.where.setdefault(name, f)
            if OUT_FEATURES_KEY in meta:
                try:
                    recorded = json.loads(meta[OUT_FEATURES_KEY])
                    self.out_features.update({str(k): int(v) for k, v in recorded.items()})
                except (ValueError, AttributeError, TypeError):
                    raise CheckpointError(f"{f}: metadata {OUT_FEATURES_KEY!r} is not a JSON object of ints") from None

    def has(self, name: str) -> bool:
        return name in self.where

    def file_of(self, name: str) -> Path:
        if name not in self.where:
            listed = self.info.tensor_files.get(name)
            if listed is not None:
                raise CheckpointError(f"{listed}: tensor {name!r} is listed in {INDEX_FILE} but missing from the file")
            files = ", ".join(f.name for f in self.info.files)
            raise CheckpointError(f"{self.info.path}: tensor {name!r} is missing (looked in {files})")
        return self.where[name]

    def get(self, name: str, shape: tuple[int, ...] | None, dtypes: tuple[str, ...],
            rows: tuple[int, int] | None = None) -> torch.Tensor:
        """The tensor ``name``; its dtype must be one of ``dtypes`` (safetensors codes) and its shape ``shape``.
        ``rows`` (first, count): only those rows of a 2-D tensor."""
        f = self.file_of(name)
        start, header = self.entries[f]
        entry = header.get(name)
        if not isinstance(entry, dict):
            raise CheckpointError(f"{f}: tensor {name!r} is missing from the file's header")
        got_dtype, got_shape = entry.get("dtype"), tuple(entry.get("shape") or ())
        if got_dtype not in dtypes:
            raise CheckpointError(f"{f}: tensor {name!r} has dtype {got_dtype}, expected one of {list(dtypes)}")
        if shape is not None and got_shape != shape:
            raise CheckpointError(f"{f}: tensor {name!r} has shape {list(got_shape)}, expected {list(shape)}")
        dtype = _READ_DTYPES[str(got_dtype)]
        begin, end = entry.get("data_offsets") or (0, -1)
        full = int(torch.Size(got_shape).numel()) * dtype.itemsize
        if end - begin != full:
            raise CheckpointError(f"{f}: tensor {name!r} has {end - begin} bytes, its shape and dtype need {full}")
        if rows is not None:
            assert len(got_shape) == 2 and rows[0] >= 0 and rows[0] + rows[1] <= got_shape[0], (name, rows)
            row_bytes = got_shape[1] * dtype.itemsize
            begin += rows[0] * row_bytes
            got_shape = (rows[1], got_shape[1])
        tensor = torch.empty(got_shape, dtype=dtype)  # the tensor the bytes land in, and nothing else
        if tensor.numel():
            target = memoryview(tensor.view(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]
            try:
                with open(f, "rb", buffering=0) as fh:
                    fh.seek(start + begin)
                    got = 0
                    while got < len(target):
                        n = fh.readinto(target[got:])
                        if not n:
                            raise CheckpointError(f"{f}: tensor {name!r} is cut short (the file ends early)")
                        got += n
            except OSError as exc:
                raise CheckpointError(f"{f}: tensor {name!r} cannot be read ({exc.strerror or exc})") from None
        return tensor

    def get_float(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A float tensor in ``dtype``; stored in another dtype, it is converted a row chunk at a time (an fp32
        embedding kept in bf16 never exists twice in full)."""
        f = self.file_of(name)
        stored = self.entries[f][1].get(name, {}).get("dtype")
        if stored not in _FLOAT_DTYPES or _FLOAT_DTYPES[stored] == dtype or len(shape) != 2:
            return self.get(name, shape, tuple(_FLOAT_DTYPES)).to(dtype)
        out = torch.empty(shape, dtype=dtype)
        rows_per_chunk = max(1, (16 * 1024 * 1024) // max(1, shape[1] * _FLOAT_DTYPES[stored].itemsize))
        for r in range(0, shape[0], rows_per_chunk):
            n = min(rows_per_chunk, shape[0] - r)
            out[r : r + n] = self.get(name, shape, tuple(_FLOAT_DTYPES), rows=(r, n))
        return out

    def get_ternary(self, prefix: str, out_features: int, in_features: int, form: str) -> Ternary:
        """A projection as (wq int8 (N, K), beta 0-d fp32), from any of the three forms."""
        name = f"{prefix}.weight"
        if form == "latent":
            w = self.get(name, (out_features, in_features), tuple(_FLOAT_DTYPES))
            return absmean_quantize(w)
        recorded = self.out_features.get(name)
        if recorded is not None and recorded != out_features:
            raise CheckpointError(
                f"{self.file_of(name)}: tensor {name!r} records out_features={recorded}, the config implies "
                f"{out_features}"
            )
        packed = self.get(name, (packed_rows(out_features), in_features), ("U8",))
        try:
            wq = unpack_hf(packed, out_features)
        except ValueError as exc:
            raise CheckpointError(f"{self.file_of(name)}: tensor {name!r}: {exc}") from None
        scale_name = f"{prefix}.weight_scale"
        ws = self.get(scale_name, None, tuple(_FLOAT_DTYPES)).float()
        if ws.numel() != 1:
            raise CheckpointError(
                f"{self.file_of(scale_name)}: tensor {scale_name!r} has shape {list(ws.shape)}, expected one value"
            )
        value = ws.reshape(())
        if not bool(torch.isfinite(value)) or float(value) <= 0.0:
            raise CheckpointError(
                f"{self.file_of(scale_name)}: tensor {scale_name!r} must be a positive finite scale, got {float(value)}"
            )
        beta = value if form == "packed-autobitlinear" else 1.0 / value  # bitlinear stores 1/beta
        return wq, beta


_READ_DTYPES: dict[str, torch.dtype] = {**_FLOAT_DTYPES, "U8": torch.uint8, "I8": torch.int8, "I32": torch.int32,
                                        "I64": torch.int64}


def _read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(offset of the data, header) of a safetensors file: an 8-byte little-endian length, then JSON."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            size = int.from_bytes(raw, "little") if len(raw) == 8 else -1
            if not 0 < size <= 100 * 1024 * 1024:
                raise CheckpointError(f"{path}: not a safetensors file (header length {size})")
            header = json.loads(fh.read(size))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: the safetensors header cannot be read ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    return 8 + size, header


def from_pretrained(
    path: str | os.PathLike[str],
    *,
    mode: str = "inference",
    dtype: torch.dtype = torch.float32,
    lm_head_int8: bool = False,
    device: torch.device | str | None = None,
    embed_dtype: torch.dtype | None = None,
    head: str | None = None,
    int8_embedding: bool = False,
) -> BitNetForCausalLM:
    """Load a local Hugging Face BitNet directory in any of the three forms (sharded or not).

    ``mode`` "inference": packed weights + kernels (no dense copy); "train": latent weights (from a packed
    checkpoint: a latent that quantizes back exactly). ``dtype``: norms and activations; ``embed_dtype``
    (default ``dtype``): storage of the embeddings and the float head (bf16 halves their memory while the
    activations stay fp32). ``head``: "float", "int8" or "q4" (``lm_head_int8`` is ``head="int8"``);
    ``int8_embedding`` (int8 head, tied models): the embeddings are looked up in the head's int8 table and the
    float table is dropped.

    Resident memory after loading: the packed tensors, the float tensors kept and the runtime (each tensor
    is read with plain file reads into the tensor that keeps it; a float tensor stored in another dtype is
    converted in row chunks; per-projection temporaries are returned to the OS).
    """
    check_mode(mode)
    info = inspect_checkpoint(path)
    config = info.config
    model = BitNetForCausalLM(config, mode, dtype=dtype, init=False, embed_dtype=embed_dtype)
    _load_into(model, _Reader(info), info.form, mode, dtype)
    precision = head or ("int8" if lm_head_int8 else "float")
    if precision != "float":
        model.quantize_head(precision, int8_embedding=int8_embedding)
    elif int8_embedding:
        raise ConfigError("int8_embedding needs head='int8'")
    if device is not None:
        model.to(device)
    release_freed_memory()  # the per-projection temporaries go back to the OS, not into the model's RSS
    return model


def _load_into(model: BitNetForCausalLM, reader: _Reader, form: str, mode: str, dtype: torch.dtype) -> None:
    """Fill ``model`` (built with ``init=False``) from the checkpoint, fusing q|k|v and gate|up."""
    c = model.config
    h = c.hidden_size
    model.model.embed_tokens.weight = torch.nn.Parameter(
        reader.get_float("model.embed_tokens.weight", (c.vocab_size, h), model.embed_dtype)
    )
    model.model.norm.weight = torch.nn.Parameter(reader.get_float("model.norm.weight", (h,), dtype))
    if model.lm_head is not None:
        model.lm_head.weight = torch.nn.Parameter(reader.get_float("lm_head.weight", (c.vocab_size, h), model.embed_dtype))
    shapes = c.linear_shapes()
    for idx, layer in enumerate(model.model.layers):
        assert isinstance(layer, DecoderLayer)
        prefix = f"model.layers.{idx}"
        for norm_name, norm, size in (
            ("input_layernorm", layer.input_layernorm, h),
            ("post_attention_layernorm", layer.post_attention_layernorm, h),
            ("self_attn.attn_sub_norm", layer.self_attn.attn_sub_norm, c.q_size),
            ("mlp.ffn_sub_norm", layer.mlp.ffn_sub_norm, c.intermediate_size),
        ):
            norm.weight = torch.nn.Parameter(reader.get_float(f"{prefix}.{norm_name}.weight", (size,), dtype))
        for fused, parts in FUSED_PROJECTIONS.items():
            module = layer.get_submodule(fused)
            assert isinstance(module, BitLinear)
            if form == "latent" and mode == "train":  # the float latents themselves, rows concatenated
                latents = [reader.get(f"{prefix}.{p}.weight", shapes[p], tuple(_FLOAT_DTYPES)).to(dtype)
                           for p in parts]  # [(N_i, K)]
                module.weight = torch.nn.Parameter(torch.cat(latents))  # (N, K)
            else:
                ternary = [reader.get_ternary(f"{prefix}.{p}", *shapes[p], form) for p in parts]
                module.set_ternary(*fuse_ternary(ternary))
                del ternary
            release_freed_memory()  # this projection's temporaries leave the heap before the next grows it


# ==================================================================== writing
def _quantization_config(form: str) -> dict[str, Any]:
    if form == "latent":
        return {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"}
    linear_class = form.removeprefix("packed-")
    return {"quant_method": "bitnet", "linear_class": linear_class, "quantization_mode": "offline"}


def _normalize_form(form: str, linear_class: str) -> str:
    if form == "packed":
        form = f"packed-{linear_class}"
    if form not in FORMS:
        raise BitNetError(f"unknown checkpoint form {form!r}; expected 'packed', 'latent' or one of {FORMS}")
    return form


def _model_tensors(model: BitNetForCausalLM, form: str) -> Iterator[tuple[str, torch.Tensor, int | None]]:
    """(name, tensor, recorded out_features or None) in checkpoint order, one projection at a time."""
    c = model.config
    yield "model.embed_tokens.weight", model.model.embed_tokens.weight.detach(), None
    for idx, layer in enumerate(model.model.layers):
        assert isinstance(layer, DecoderLayer)
        prefix = f"model.layers.{idx}"
        yield f"{prefix}.input_layernorm.weight", layer.input_layernorm.weight.detach(), None
        yield f"{prefix}.post_attention_layernorm.weight", layer.post_attention_layernorm.weight.detach(), None
        yield f"{prefix}.self_attn.attn_sub_norm.weight", layer.self_attn.attn_sub_norm.weight.detach(), None
        yield f"{prefix}.mlp.ffn_sub_norm.weight", layer.mlp.ffn_sub_norm.weight.detach(), None
        for fused, parts in FUSED_PROJECTIONS.items():
            module = layer.get_submodule(fused)
            assert isinstance(module, BitLinear)
            names = [f"{prefix}.{p}" for p in parts]
            if form == "latent" and module.weight is not None:  # train mode: the latents themselves
                for name, latent in zip(names, module.weight.detach().split(module.segments), strict=True):
                    yield f"{name}.weight", latent, None  # (N_i, K)
                continue
            for name, (wq, beta) in zip(names, module.ternary_parts(), strict=True):
                if form == "latent":
                    yield f"{name}.weight", latent_from_ternary(wq, beta, model.dtype), None
                    continue
                n = wq.shape[0]
                yield f"{name}.weight", pack_hf(wq), (n if n % 4 else None)
                scale = beta.float() if form == "packed-autobitlinear" else 1.0 / beta.float()
                yield f"{name}.weight_scale", scale.reshape(1), None
    yield "model.norm.weight", model.model.norm.weight.detach(), None
    if not c.tie_word_embeddings:
        if model.lm_head is None:
            raise BitNetError("cannot save: the untied float lm_head was replaced by the int8 head")
        yield "lm_head.weight", model.lm_head.weight.detach(), None


def save_pretrained(
    model: BitNetForCausalLM,
    path: str | os.PathLike[str],
    *,
    form: str = "packed",
    linear_class: str = "autobitlinear",
    max_shard_bytes: int | None = None,
    overwrite: bool = False,
    extra_files: list[Path] | None = None,
) -> Path:
    """Write ``model`` as a Hugging Face directory, atomically (temp dir beside ``path``, then rename).

    ``form``: "packed" (offline, ``linear_class`` "autobitlinear" stores beta, "bitlinear" stores 1/beta;
    transformers loads it back when every ``out_features`` is a multiple of 4), "latent" (online, float
    weights), or an explicit form name. ``max_shard_bytes`` splits the tensors over several files with an
    index. ``extra_files`` (tokenizer files...) are copied along. Returns the written directory.
    """
    if linear_class not in LINEAR_CLASSES:
        raise BitNetError(f"unknown linear_class {linear_class!r}; expected one of {LINEAR_CLASSES}")
    form = _normalize_form(form, linear_class)
    target = Path(path)
    exists = f"{target}: already exists (pass overwrite=True / --force to replace it)"
    if target.exists() and not overwrite:
        raise BitNetError(exists)
    with staged_directory(target) as tmp:
        _write_checkpoint(model, tmp, form, max_shard_bytes)
        for f in extra_files or []:
            shutil.copy2(f, tmp / f.name)
        try:
            swap_directory(tmp, target, overwrite=overwrite)
        except FileExistsError:  # created by someone else while we wrote
            raise BitNetError(exists) from None
    return target


def _write_checkpoint(model: BitNetForCausalLM, out: Path, form: str, max_shard_bytes: int | None) -> None:
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    recorded: list[dict[str, int]] = [{}]
    sizes = [0]
    total = 0
    for name, tensor, out_features in _model_tensors(model, form):
        t = tensor.to("cpu").contiguous().clone()
        nbytes = t.numel() * t.element_size()
        if max_shard_bytes is not None and shards[-1] and sizes[-1] + nbytes > max_shard_bytes:
            shards.append({})
            recorded.append({})
            sizes.append(0)
        shards[-1][name] = t
        sizes[-1] += nbytes
        total += nbytes
        if out_features is not None:
            recorded[-1][name] = out_features
    n = len(shards)
    names = [SINGLE_FILE] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    weight_map: dict[str, str] = {}
    for file, tensors, rec in zip(names, shards, recorded, strict=True):
        meta = {"format": "pt"}
        if rec:
            meta[OUT_FEATURES_KEY] = json.dumps(rec, sort_keys=True)
        save_file(tensors, str(out / file), metadata=meta)
        weight_map.update({name: file for name in tensors})
    if n > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    config = model.config.to_hf_dict()
    config["quantization_config"] = _quantization_config(form)
    config["dtype"] = _DTYPE_NAMES.get(model.dtype, "float32")
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = [
    "FORMS", "CheckpointError", "CheckpointInfo", "ConfigError", "checkpoint_form", "from_pretrained",
    "inspect_checkpoint", "save_pretrained",
]
