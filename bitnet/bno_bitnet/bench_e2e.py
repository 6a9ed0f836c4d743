"""End-to-end generation benchmark: our packed model vs a dense fp32 twin vs transformers' BitNet.

One process run measures, for each model, on the same weights and the same prompt: prefill tokens/s,
decode tokens/s, time to first token and peak resident memory, then prints ratios (ours vs each
baseline at equal depth). A dense fp32 2B4T model needs about 10 GB, so the baselines may run at a
reduced depth (``compare_layers``); ours is then measured at that depth too and the ratios use it. The
output says so.

Models run one after another, each built, measured and freed before the next, so each phase's peak
RSS is its own (the kernel's high-water mark is reset through ``/proc/self/clear_refs`` where allowed).
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bno_bitnet.errors import CheckpointError, ConfigError

MIB = 1024 * 1024
TARGETS_2B4T = {"decode_tokens_per_s": 24.0, "prefill_tokens_per_s": 55.0, "model_rss_bytes": 1.5e9}
COMPARES: tuple[str, ...] = ("dense", "transformers", "llama.cpp")


# ==================================================================== memory
def _status_kb(field_name: str) -> int:
    """A ``VmXXX`` field of /proc/self/status in kB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    """Current resident set size of this process."""
    return _status_kb("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size (high-water mark) of this process since start or the last reset."""
    return _status_kb("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux ``clear_refs`` 5). False where refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return peak_rss_bytes() <= rss_bytes() + 16 * MIB


def available_memory_bytes() -> int:
    """MemAvailable of /proc/meminfo (0 where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of the model's tensors (parameters, buffers, packed ternary weights), each storage once."""
    from bno_bitnet.layers import BitLinear

    seen: set[int] = set()
    total = 0

    def add(t: torch.Tensor | None) -> None:
        nonlocal total
        if t is None or t.device.type == "meta":
            return
        storage = t.untyped_storage()
        if storage.data_ptr() in seen:
            return
        seen.add(storage.data_ptr())
        total += storage.nbytes()

    for t in [*model.parameters(), *model.buffers()]:
        add(t)
    for module in model.modules():
        if isinstance(module, BitLinear):
            add(module.packed.data if module.packed is not None else None)
            add(module.weight_scale)
    return total


# ==================================================================== results
@dataclass
class Measurement:
    """One model's figures (medians over ``repeats`` runs after one warm-up)."""

    name: str
    layers: int
    prompt_len: int
    new_tokens: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    time_to_first_token_s: float
    prefill_s: float
    decode_s: float
    prefill_cpu_s: float  # process CPU time (all threads) of the prefill
    decode_cpu_ms_per_token: float  # process CPU time (all threads) per decode step
    peak_rss_bytes: int  # process high-water mark during this phase (build + runs)
    model_rss_bytes: int  # resident memory added by building the model
    tensor_bytes: int  # bytes of the model's tensors
    build_s: float
    repeats: int
    notes: list[str] = field(default_factory=list)
    head: str = "float"  # the head precision: float (the embedding's dtype), int8 or q4
    bytes_per_token: int = 0  # weight bytes one decode step reads: packed ternary + scales + the head
    decode_bytes_per_s: float = 0.0  # bytes_per_token x decode tokens/s
    read_bytes_per_s: float = 0.0  # the machine's read bandwidth, measured by the kernels' threads in this phase
    logits_rel_rms_error: float | None = None  # vs the float head on the prompt: rms(err) / rms(float logits)
    logits_max_abs_error: float | None = None  # vs the float head, over every prompt position and token
    top1_agreement: float | None = None  # share of prompt positions whose argmax token equals the float head's
    decode_runs: list[float] = field(default_factory=list)  # decode tokens/s of each timed run, in order
    prefill_runs: list[float] = field(default_factory=list)  # prefill tokens/s of each timed run
    busy_core: int | None = None  # the core a busy process was pinned to for the busy runs
    busy_decode_runs: list[float] = field(default_factory=list)  # decode tokens/s with that process running
    busy_prefill_runs: list[float] = field(default_factory=list)


@dataclass
class E2EReport:
    """Every measurement of one run, the ratios and the notes that qualify them."""

    source: str  # "shape 2b4t" or a model directory
    threads: int
    prompt_len: int
    new_tokens: int
    layers: int
    compare_layers: int | None
    measurements: list[Measurement]
    ratios: dict[str, float]
    targets: dict[str, dict[str, float | bool]]
    notes: list[str]
    peak_rss_per_phase: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


# ==================================================================== runners
class _IdTokenizer:
    """A tokenizer over the whole model vocabulary that decodes to nothing (prompts are token ids)."""

    def __init__(self, vocab_size: int) -> None:
        self._vocab = vocab_size

    @property
    def vocab_size(self) -> int:
        return self._vocab

    @property
    def bos_token_id(self) -> int | None:
        return None

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return ()

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        raise ConfigError("the benchmark tokenizer takes token-id prompts only")

    def decode(self, ids: Sequence[int], *, skip_special: bool = True) -> str:
        return ""

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        raise ConfigError("the benchmark tokenizer has no chat template")


@dataclass
class _Run:
    prefill_s: float
    decode_s: float
    ttft_s: float
    decode_steps: int
    prefill_cpu_s: float
    decode_cpu_s: float


def _engine_runner(model: nn.Module) -> Callable[[list[int], int], _Run]:
    from bno_bitnet.engine import Engine
    from bno_bitnet.sampling import GenerationConfig

    config: Any = getattr(model, "config")  # noqa: B009 (nn.Module's __getattr__ is typed loosely)
    engine = Engine(model, _IdTokenizer(int(config.vocab_size)))

    def run(prompt: list[int], new_tokens: int) -> _Run:
        engine.generate([prompt], GenerationConfig(max_new_tokens=new_tokens, stop_at_eos=False))
        s = engine.last_stats
        return _Run(s.prefill_s, s.decode_s, s.time_to_first_token_s, s.decode_steps, s.prefill_cpu_s,
                    s.decode_cpu_s)

    return run


def _hf_runner(model: nn.Module) -> Callable[[list[int], int], _Run]:
    """Greedy decoding with transformers' own cache, timed like the engine.

    transformers 5 names the cache argument ``cache`` (older releases: ``past_key_values``).
    """
    import inspect

    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def run(prompt: list[int], new_tokens: int) -> _Run:
        ids = torch.tensor([prompt], dtype=torch.long)  # (1, T)
        with torch.inference_mode():
            c0, t0 = time.process_time(), time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
            c1, t1 = time.process_time(), time.perf_counter()
            past = getattr(out, key)
            for _ in range(new_tokens - 1):
                out = model(input_ids=token, use_cache=True, **{key: past})
                past = getattr(out, key)
                token = out.logits[:, -1].argmax(-1, keepdim=True)
            c2, t2 = time.process_time(), time.perf_counter()
        return _Run(t1 - t0, t2 - t1, t1 - t0, new_tokens - 1, c1 - c0, c2 - c1)

    return run


@dataclass
class _Phase:
    """Everything one measurement needs, picklable so it can run in a fresh process."""

    name: str
    kind: str  # "ours" | "dense" | "transformers" | "save"
    layers: int
    prompt: list[int]
    new_tokens: int
    repeats: int
    threads: int
    seed: int
    shape_config: dict[str, Any] | None  # BitNetConfig fields (shape mode)
    model_dir: str | None
    int8_head: bool = False
    int8_embedding: bool = False  # with int8_head: the tied embedding looked up in the int8 table
    head: str = "float"  # head precision of ours: float, int8 or q4 (int8_head means int8)
    hf_dtype: str = "bfloat16"
    save_to: str | None = None
    busy_core: int | None = None  # also time the runs with a busy process pinned to this core
    gguf_head: str = "f16"  # llama.cpp phases: the embedding/head type of the GGUF
    gguf_path: str | None = None  # llama.cpp phases: the GGUF file (written by the "gguf" phase)


def _phase_config(phase: _Phase) -> Any:
    from bno_bitnet.model import BitNetConfig

    assert phase.shape_config is not None, "a shape phase needs its config"
    return BitNetConfig(**{**phase.shape_config, "num_hidden_layers": phase.layers})


def _llamacpp_runner(llm: Any) -> Callable[[list[int], int], _Run]:
    """llama.cpp's greedy generation (bno_bitnet.bench_llamacpp), timed as the engine's runs are."""
    from bno_bitnet import bench_llamacpp

    def run(prompt: list[int], new_tokens: int) -> _Run:
        r = bench_llamacpp.generate(llm, prompt, new_tokens)
        return _Run(r.prefill_s, r.decode_s, r.prefill_s, r.decode_steps, r.prefill_cpu_s, r.decode_cpu_s)

    return run


def _build(phase: _Phase) -> tuple[Any, Callable[[Any], Callable[[list[int], int], _Run]]]:
    from bno_bitnet import shapes
    from bno_bitnet.hf import from_pretrained

    if phase.kind == "llamacpp":
        from bno_bitnet import bench_llamacpp

        assert phase.gguf_path is not None, "the llama.cpp phase needs its GGUF"
        context = len(phase.prompt) + phase.new_tokens + 8
        llm = bench_llamacpp.load(Path(phase.gguf_path), threads=phase.threads, context=context,
                                  batch=max(len(phase.prompt), 16))
        return llm, _llamacpp_runner
    if phase.kind == "ours":
        if phase.model_dir is None:
            model: nn.Module = shapes.build_random_model(_phase_config(phase), seed=phase.seed)
        else:
            model = from_pretrained(Path(phase.model_dir), mode="inference", dtype=torch.float32,
                                    embed_dtype=torch.bfloat16)  # fp32 activations, half-size embedding table
        return model, _engine_runner
    if phase.kind == "dense":
        if phase.model_dir is None:
            return shapes.build_dense_model(_phase_config(phase), seed=phase.seed), _engine_runner
        return shapes.dense_twin(from_pretrained(Path(phase.model_dir), mode="inference")), _engine_runner
    if phase.kind == "transformers":
        assert phase.model_dir is not None, "the transformers phase loads a directory"
        return _load_transformers(Path(phase.model_dir), getattr(torch, phase.hf_dtype)), _hf_runner
    raise AssertionError(f"unknown phase kind {phase.kind!r}")


def _run_phase(phase: _Phase) -> Measurement | None:
    """Build, warm up, time ``repeats`` runs (in this process). The "save" phase writes a checkpoint."""
    torch.set_num_threads(phase.threads)
    if phase.kind == "gguf":
        _write_gguf_phase(phase)
        return None
    if phase.kind == "save":
        from bno_bitnet import shapes
        from bno_bitnet.hf import save_pretrained

        assert phase.save_to is not None, "the save phase needs a target"
        # one dtype throughout (same values: norms are ones, the embedding is bf16 either way), so that
        # transformers' loader sees a uniform bf16 checkpoint
        packed = shapes.build_random_model(_phase_config(phase), seed=phase.seed, dtype=torch.bfloat16,
                                           embed_dtype=torch.bfloat16)
        save_pretrained(packed, phase.save_to, form="packed", linear_class="autobitlinear")
        return None
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    t0 = time.perf_counter()
    model, make_runner = _build(phase)
    head_error: dict[str, float] = {}
    if phase.kind == "ours":
        head_error = _quantize_head(model, phase)
    build_s = time.perf_counter() - t0
    gc.collect()
    model_rss = rss_bytes() - base
    nbytes, step_bytes = _weight_bytes(phase, model)
    runner = make_runner(model)
    prompt, new_tokens = phase.prompt, phase.new_tokens
    runner(prompt[: min(len(prompt), 16)], 4)  # warm-up: first-call allocations and lazy setup
    runs = [runner(prompt, new_tokens) for _ in range(phase.repeats)]
    busy_runs: list[_Run] = []
    if phase.busy_core is not None:
        with busy_process(phase.busy_core):
            busy_runs = [runner(prompt, new_tokens) for _ in range(phase.repeats)]
    peak = peak_rss_bytes()
    del runner, model
    gc.collect()
    read_bw = measure_read_bandwidth()
    prefill = statistics.median(r.prefill_s for r in runs)
    decode = statistics.median(r.decode_s for r in runs)
    steps = runs[0].decode_steps
    return Measurement(
        name=phase.name, layers=phase.layers, prompt_len=len(prompt), new_tokens=new_tokens,
        prefill_tokens_per_s=len(prompt) / prefill if prefill > 0 else 0.0,
        decode_tokens_per_s=steps / decode if decode > 0 else 0.0,
        time_to_first_token_s=statistics.median(r.ttft_s for r in runs),
        prefill_s=prefill, decode_s=decode,
        prefill_cpu_s=statistics.median(r.prefill_cpu_s for r in runs),
        decode_cpu_ms_per_token=1000 * statistics.median(r.decode_cpu_s for r in runs) / max(steps, 1),
        peak_rss_bytes=peak, model_rss_bytes=model_rss, tensor_bytes=nbytes, build_s=build_s,
        repeats=phase.repeats, head={"ours": phase.head, "llamacpp": phase.gguf_head}.get(phase.kind, ""),
        bytes_per_token=step_bytes, decode_bytes_per_s=step_bytes * (steps / decode if decode > 0 else 0.0),
        read_bytes_per_s=read_bw,
        logits_rel_rms_error=head_error.get("rel_rms"), logits_max_abs_error=head_error.get("max_abs"),
        top1_agreement=head_error.get("top1"),
        decode_runs=[r.decode_steps / r.decode_s if r.decode_s > 0 else 0.0 for r in runs],
        prefill_runs=[len(prompt) / r.prefill_s if r.prefill_s > 0 else 0.0 for r in runs],
        busy_core=phase.busy_core,
        busy_decode_runs=[r.decode_steps / r.decode_s if r.decode_s > 0 else 0.0 for r in busy_runs],
        busy_prefill_runs=[len(prompt) / r.prefill_s if r.prefill_s > 0 else 0.0 for r in busy_runs],
    )


def _weight_bytes(phase: _Phase, model: Any) -> tuple[int, int]:
    """(bytes of the weights held, weight bytes one decode step reads) of a phase's model."""
    if phase.kind == "llamacpp":
        assert phase.gguf_path is not None
        size = Path(phase.gguf_path).stat().st_size  # the GGUF holds what a step reads (the embedding is the head)
        return size, size
    step = decode_bytes_per_token(model) if phase.kind == "ours" else dense_bytes_per_token(model)
    return tensor_bytes(model), step


@contextlib.contextmanager
def busy_process(core: int) -> Iterator[int]:
    """A child process spinning on one core (``sched_setaffinity``) for the block: the load of another
    program on a shared machine. Yields its pid; it is killed and reaped on exit."""
    if core < 0 or core >= (os.cpu_count() or 1):
        raise ConfigError(f"--busy-core: this machine has cores 0..{(os.cpu_count() or 1) - 1}, got {core}")
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
    try:
        os.sched_setaffinity(child.pid, {core})
        time.sleep(0.2)  # let it reach its core and spin
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=30)


def spread(values: Sequence[float]) -> float:
    """(max - min) / median of a series (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid > 0 else 0.0


def _write_gguf_phase(phase: _Phase) -> None:
    """Write the phase's weights (the shape's seed or the model directory) as llama.cpp's TQ2_0 GGUF."""
    from bno_bitnet import shapes
    from bno_bitnet.gguf_export import write_gguf
    from bno_bitnet.hf import from_pretrained

    assert phase.gguf_path is not None, "the gguf phase needs a target"
    if phase.model_dir is None:
        model = shapes.build_random_model(_phase_config(phase), seed=phase.seed)
    else:
        model = from_pretrained(Path(phase.model_dir), mode="inference", embed_dtype=torch.bfloat16)
    write_gguf(model, phase.gguf_path, head=phase.gguf_head)


def _quantize_head(model: nn.Module, phase: _Phase) -> dict[str, float]:
    """Switch ours to the phase's head precision; with a quantized head, its logits error against the float
    head on the phase's prompt (one forward pass each)."""
    from bno_bitnet.model import BitNetForCausalLM

    assert isinstance(model, BitNetForCausalLM)
    if phase.head == "float":
        return {}
    ids = torch.tensor([phase.prompt], dtype=torch.long)  # (1, P)
    with torch.inference_mode():
        ref = model(ids)[0]  # (P, V) float head
        model.quantize_head(phase.head, int8_embedding=phase.int8_embedding)
        got = model(ids)[0]  # (P, V)
    err = got - ref
    return {
        "rel_rms": float(err.square().mean().sqrt() / ref.square().mean().sqrt().clamp(min=1e-30)),
        "max_abs": float(err.abs().max()),
        "top1": float((got.argmax(-1) == ref.argmax(-1)).float().mean()),
    }


def decode_bytes_per_token(model: nn.Module) -> int:
    """Weight bytes one batch-1 decode step of ours reads: packed ternary weights and their scales, the head
    (float, int8 or q4 table) and one embedding row."""
    report = model.memory_report()  # type: ignore[operator]
    config: Any = getattr(model, "config")  # noqa: B009
    embedding = report["embedding"] // max(int(config.vocab_size), 1)  # one row (0 with the int8 embedding)
    head = report["lm_head"] + report["lm_head_int8"] + report["lm_head_q4"]
    if head == 0:  # tied float head: the embedding table itself
        head = report["embedding"]
    return int(report["ternary_packed"] + report["ternary_scales"] + head + embedding)


def dense_bytes_per_token(model: nn.Module) -> int:
    """Weight bytes one decode step of a dense model reads, taken as all its parameters (a tied table counts
    once, as the head; an untied embedding table is over-counted: a step reads one row of it)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    return int(total)


def measure_read_bandwidth(nbytes: int = 512 * MIB) -> float:
    """The read bandwidth of the native kernels' threads over ``nbytes`` (0.0 without the native kernel)."""
    from bno_kernels.cpu import ops

    if not ops.available():
        return 0.0
    return ops.read_bandwidth(nbytes, repeats=3)


def _execute(phase: _Phase, isolate: bool) -> Measurement | None:
    """Run a phase here, or in a fresh spawned process (clean RSS and allocator state per model)."""
    if not isolate:
        return _run_phase(phase)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_phase, phase).result()


def _dense_param_bytes(config: Any, layers: int, bytes_per: int) -> int:
    per_layer = sum(n * k for n, k in config.linear_shapes().values())
    heads = 1 if config.tie_word_embeddings else 2
    return layers * per_layer * bytes_per + heads * config.vocab_size * config.hidden_size * bytes_per


def choose_compare_layers(config: Any, requested: int | None, compare: Sequence[str],
                          available: int) -> tuple[int, str | None]:
    """Depth of the baselines: ``requested``, or the full depth when the dense fp32 twin fits in half the
    available memory, else the largest depth that does (with a note saying so)."""
    full = int(config.num_hidden_layers)
    if requested is not None:
        if requested < 1 or requested > full:
            raise ConfigError(f"--compare-layers: must be in 1..{full}, got {requested}")
        return requested, None
    if not compare or available <= 0:
        return full, None
    bytes_per = 4 if "dense" in compare else 2
    budget = available // 2
    layers = full
    while layers > 1 and _dense_param_bytes(config, layers, bytes_per) > budget:
        layers -= 1
    if layers == full:
        return full, None
    return layers, (f"baselines cut to {layers} of {full} layers: a dense twin at full depth needs "
                    f"{_dense_param_bytes(config, full, bytes_per) / 1e9:.1f} GB and "
                    f"{available / 1e9:.1f} GB is available (set --compare-layers to choose)")


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def run_e2e(*, shape: str | None = None, model_dir: str | Path | None = None, threads: int | None = None,
            prompt_len: int = 128, new_tokens: int = 32, layers: int | None = None,
            compare: Sequence[str] = COMPARES, compare_layers: int | None = None, int8_head: bool = False,
            int8_embedding: bool = False, repeats: int = 1, seed: int = 0, hf_dtype: str = "bfloat16", isolate: bool = True,
            log: Callable[[str], None] | None = None, heads: Sequence[str] = (),
            busy_core: int | None = None, gguf_heads: Sequence[str] = ("f16",)) -> E2EReport:
    """Measure ours (and ``compare`` baselines) on a shape's random weights or a model directory.

    ``isolate`` runs each model in a fresh process (spawn), so each peak RSS and model RSS is its own.
    """
    from dataclasses import fields as dc_fields

    say = log if log is not None else (lambda _msg: None)
    unknown = sorted(set(compare) - set(COMPARES))
    if unknown:
        raise ConfigError(f"--compare: unknown baseline(s) {', '.join(unknown)}; known: {', '.join(COMPARES)}")
    if (shape is None) == (model_dir is None):
        raise ConfigError("give either a MODEL directory or --shape NAME")
    for name, value, low in (("--prompt-len", prompt_len, 1), ("--new-tokens", new_tokens, 2),
                             ("--repeats", repeats, 1)):
        if value < low:
            raise ConfigError(f"{name}: must be >= {low}, got {value}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads: must be >= 1, got {threads}")
    if hf_dtype not in ("bfloat16", "float32"):
        raise ConfigError(f"--hf-dtype: expected bfloat16 or float32, got {hf_dtype!r}")
    from bno_bitnet.model import HEAD_PRECISIONS

    extra_heads = [h for h in dict.fromkeys(heads) if h != "float"]
    for h in extra_heads:
        if h not in HEAD_PRECISIONS:
            raise ConfigError(f"--head: unknown precision {h!r}; expected {', '.join(HEAD_PRECISIONS)}")
    if int8_head and "int8" not in extra_heads:
        extra_heads.insert(0, "int8")
    n_threads = threads if threads is not None else torch.get_num_threads()
    notes: list[str] = []
    compare = list(dict.fromkeys(compare))
    if "llama.cpp" in compare:
        from bno_bitnet.bench_llamacpp import require_llama_cpp
        from bno_bitnet.gguf_export import HEAD_TYPES

        require_llama_cpp()
        for h in gguf_heads:
            if h not in HEAD_TYPES:
                raise ConfigError(f"--gguf-head: unknown type {h!r}; expected {', '.join(HEAD_TYPES)}")
    if "transformers" in compare:
        try:
            import transformers  # noqa: F401
        except ImportError:
            compare.remove("transformers")
            notes.append("transformers is not installed: its baseline was skipped")

    from bno_bitnet import shapes

    shape_dict: dict[str, Any] | None = None
    if shape is not None:
        config = shapes.shape_config(shape, layers)
        shape_dict = {f.name: getattr(config, f.name) for f in dc_fields(config)}
        source = f"shape {shape.lower()} (random weights, seed {seed})"
    else:
        if layers is not None:
            raise ConfigError("--layers only applies with --shape")
        from bno_bitnet.hf import inspect_checkpoint

        directory = Path(str(model_dir))
        if not directory.is_dir():
            raise CheckpointError(f"{directory}: model directory not found")
        config = inspect_checkpoint(directory).config
        source = str(directory)
    full_layers = config.num_hidden_layers
    if prompt_len + new_tokens > config.max_position_embeddings:
        raise ConfigError(f"--prompt-len + --new-tokens ({prompt_len + new_tokens}) exceed the context "
                          f"({config.max_position_embeddings})")
    compare_depth: int | None = None
    if compare:
        if shape is None:
            if compare_layers is not None:
                raise ConfigError("--compare-layers only applies with --shape")
            compare_depth = full_layers
        else:
            compare_depth, note = choose_compare_layers(config, compare_layers, compare, available_memory_bytes())
            if note:
                notes.append(note)
    gen = torch.Generator().manual_seed(seed + 12345)
    prompt = torch.randint(0, config.vocab_size, (prompt_len,), generator=gen).tolist()
    load_before = os.getloadavg()

    def phase(name: str, kind: str, depth: int, **extra: Any) -> _Phase:
        if kind in ("ours", "llamacpp") and "busy_core" not in extra:
            extra["busy_core"] = busy_core
        return _Phase(name=name, kind=kind, layers=depth, prompt=prompt, new_tokens=new_tokens, repeats=repeats,
                      threads=n_threads, seed=seed, shape_config=shape_dict,
                      model_dir=None if model_dir is None else str(model_dir), **extra)

    def measure(p: _Phase) -> Measurement:
        say(f"{p.name}: {p.layers} layers")
        m = _execute(p, isolate)
        assert m is not None, f"phase {p.name} returned no measurement"
        return m

    measurements: list[Measurement] = []
    ours_full = measure(phase("bitnet (packed)", "ours", full_layers))
    measurements.append(ours_full)
    ours_int8: Measurement | None = None
    for head in extra_heads:
        m = measure(phase(f"bitnet (packed, {head} head)", "ours", full_layers, int8_head=head == "int8", head=head))
        measurements.append(m)
        if head == "int8":
            ours_int8 = m
    if int8_embedding:
        measurements.append(measure(phase("bitnet (packed, int8 head+embedding)", "ours",
                                          full_layers, int8_head=True, int8_embedding=True, head="int8")))
    ratios: dict[str, float] = {}
    if compare_depth is not None:
        ours_cmp = ours_full
        if compare_depth != full_layers:
            ours_cmp = measure(phase(f"bitnet (packed) @{compare_depth}L", "ours", compare_depth))
            measurements.append(ours_cmp)
        if "dense" in compare:
            dense = measure(phase(f"dense fp32 torch @{compare_depth}L", "dense", compare_depth))
            measurements.append(dense)
            ratios.update(_ratios("dense", ours_cmp, dense))
            if ours_int8 is not None and compare_depth == full_layers:
                ratios.update(_ratios("dense", ours_int8, dense, prefix="int8_head_"))
        if "transformers" in compare:
            with tempfile.TemporaryDirectory(prefix="bitnet-bench-e2e-") as tmp:
                hf_dir = str(model_dir) if model_dir is not None else str(Path(tmp) / "model")
                if model_dir is None:
                    say(f"writing a {compare_depth}-layer checkpoint for transformers")
                    _execute(phase("save", "save", compare_depth, save_to=hf_dir), isolate)
                hf_phase = phase(f"transformers BitNet ({hf_dtype}) @{compare_depth}L", "transformers",
                                 compare_depth, hf_dtype=hf_dtype)
                hf_phase.model_dir = hf_dir
                hf = measure(hf_phase)
            measurements.append(hf)
            ratios.update(_ratios("transformers", ours_cmp, hf))
            if ours_int8 is not None and compare_depth == full_layers:
                ratios.update(_ratios("transformers", ours_int8, hf, prefix="int8_head_"))
        if compare_depth != full_layers:
            notes.append(f"ratios compare per-token times at equal depth ({compare_depth} layers); "
                         f"absolute figures of ours at full depth are in the first row")
    if "llama.cpp" in compare:
        ours_rows = [m for m in measurements if m.name.startswith("bitnet") and m.layers == full_layers]
        with tempfile.TemporaryDirectory(prefix="bitnet-bench-gguf-") as tmp:
            for gguf_head in gguf_heads:
                path = str(Path(tmp) / f"model-{gguf_head}.gguf")
                say(f"writing the same weights as a TQ2_0 GGUF ({gguf_head} embedding/head)")
                _execute(phase("gguf", "gguf", full_layers, gguf_head=gguf_head, gguf_path=path), isolate)
                ref = measure(phase(f"llama.cpp TQ2_0, {gguf_head} head", "llamacpp", full_layers,
                                    gguf_head=gguf_head, gguf_path=path))
                measurements.append(ref)
                Path(path).unlink(missing_ok=True)
                for m in ours_rows:
                    label = m.name.removeprefix("bitnet (packed").removeprefix(", ").removesuffix(")") or "float head"
                    ratios.update(_ratios(f"llama.cpp_{gguf_head}", m, ref, prefix=f"[{label}] "))
        notes.append("llama.cpp runs the same ternary weights (TQ2_0, the per-projection scale folded into its "
                     "block scales) through llama-cpp-python; its bitnet graph uses silu(gate)*up where 2B4T has "
                     "relu(gate)^2*up, one vector op per layer: the bytes and matmuls are the same")
    targets: dict[str, dict[str, float | bool]] = {}
    if shape is not None and shape.lower() == "2b4t" and layers is None:
        for m in (m for m in measurements if m.layers == full_layers and m.name.startswith("bitnet")):
            for key, goal in TARGETS_2B4T.items():
                got = float(getattr(m, key))
                met = got <= goal if key == "model_rss_bytes" else got >= goal
                targets[f"{m.name}: {key}"] = {"value": got, "target": goal, "met": met}
    load_after = os.getloadavg()
    notes.append(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
                 f"{os.cpu_count()} CPUs: models run one after another, not interleaved; other work on the "
                 "machine lowers and scatters the wall-clock figures (CPU ms/token counts this process only)")
    if isolate:
        notes.append("each model ran in a fresh process: peak and model RSS are its own (RSS includes "
                     "the Python/torch runtime, about 0.3-0.5 GB)")
    return E2EReport(source=source, threads=n_threads, prompt_len=prompt_len,
                     new_tokens=new_tokens, layers=full_layers, compare_layers=compare_depth,
                     measurements=measurements, ratios=ratios, targets=targets, notes=notes,
                     peak_rss_per_phase=isolate or reset_peak_rss())


def _ratios(name: str, ours: Measurement, base: Measurement, prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}decode_speedup_vs_{name}": _ratio(ours.decode_tokens_per_s, base.decode_tokens_per_s),
        f"{prefix}prefill_speedup_vs_{name}": _ratio(ours.prefill_tokens_per_s, base.prefill_tokens_per_s),
        f"{prefix}ttft_speedup_vs_{name}": _ratio(base.time_to_first_token_s, ours.time_to_first_token_s),
        f"{prefix}decode_cpu_time_ratio_vs_{name}": _ratio(base.decode_cpu_ms_per_token,
                                                            ours.decode_cpu_ms_per_token),
        f"{prefix}memory_saving_vs_{name}": _ratio(float(base.model_rss_bytes), float(ours.model_rss_bytes)),
    }


def _load_transformers(path: Path, dtype: torch.dtype) -> nn.Module:
    import logging

    from transformers import BitNetForCausalLM as HFBitNet
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    model = HFBitNet.from_pretrained(str(path), dtype=dtype)
    model.eval()
    result: nn.Module = model
    return result


# ==================================================================== output
def format_report(report: E2EReport) -> str:
    """The human-readable table, ratios, targets and notes."""
    lines = [
        f"bitnet bench e2e: {report.source}; {report.threads} threads; prompt {report.prompt_len} tokens, "
        f"{report.new_tokens} new tokens (greedy)",
        "",
        f"{'model':<40} {'layers':>6} {'prefill tok/s':>14} {'decode tok/s':>13} {'TTFT ms':>9} "
        f"{'CPU ms/tok':>10} {'peak RSS MB':>12} {'model RSS MB':>13} {'tensors MB':>11}",
    ]
    for m in report.measurements:
        lines.append(
            f"{m.name:<40} {m.layers:>6} {m.prefill_tokens_per_s:>14.2f} {m.decode_tokens_per_s:>13.2f} "
            f"{m.time_to_first_token_s * 1000:>9.1f} {m.decode_cpu_ms_per_token:>10.1f} {m.peak_rss_bytes / MIB:>12.0f} "
            f"{m.model_rss_bytes / MIB:>13.0f} {m.tensor_bytes / MIB:>11.0f}"
        )
    bandwidth = [m for m in report.measurements if m.bytes_per_token and m.read_bytes_per_s]
    if bandwidth:
        lines.append("")
        lines.append("decode bandwidth (weight bytes read per token x tokens/s, against the read bandwidth the kernels' "
                     "threads measured in the same phase):")
        for m in bandwidth:
            lines.append(f"  {m.name:<40} {m.bytes_per_token / 1e6:8.0f} MB/token  {m.decode_bytes_per_s / 1e9:6.1f} GB/s "
                         f"of {m.read_bytes_per_s / 1e9:5.1f} GB/s read ({100 * m.decode_bytes_per_s / m.read_bytes_per_s:3.0f}%)")
    if any(len(m.decode_runs) > 1 for m in report.measurements):
        lines.append("")
        lines.append("steadiness ((max - min) / median over the timed runs; with a busy process pinned to one core: "
                     "median busy / median quiet):")
        for m in report.measurements:
            if len(m.decode_runs) < 2:
                continue
            line = (f"  {m.name:<40} decode spread {100 * spread(m.decode_runs):4.1f}% "
                    f"[{', '.join(f'{v:.1f}' for v in m.decode_runs)}], prefill spread {100 * spread(m.prefill_runs):4.1f}%")
            if m.busy_decode_runs:
                line += (f"; core {m.busy_core} busy: decode {statistics.median(m.busy_decode_runs) / statistics.median(m.decode_runs):.2f}, "
                         f"prefill {statistics.median(m.busy_prefill_runs) / statistics.median(m.prefill_runs):.2f} of quiet")
            lines.append(line)
    errors = [m for m in report.measurements if m.logits_rel_rms_error is not None]
    if errors:
        lines.append("")
        lines.append("head precision vs the float head (logits of every prompt position):")
        for m in errors:
            lines.append(f"  {m.name:<40} relative rms error {m.logits_rel_rms_error:.2e}, max abs error "
                         f"{m.logits_max_abs_error:.3g}, top-1 agreement {100 * (m.top1_agreement or 0.0):.1f}%")
    if report.ratios:
        lines.append("")
        lines.append(f"ratios (ours / baseline, equal depth {report.compare_layers} layers; > 1 means ours is better):")
        for key, value in report.ratios.items():
            lines.append(f"  {key:<50} {value:8.2f}x")
    if report.targets:
        lines.append("")
        lines.append("targets (2B4T shape; docs/architecture.md, 'Performance targets'):")
        for key, t in report.targets.items():
            scale = 1e9 if key.endswith("rss_bytes") else 1.0
            unit = " GB" if scale != 1.0 else ""
            lines.append(f"  {key:<58} {float(t['value']) / scale:8.2f}{unit} "
                         f"(target {float(t['target']) / scale:g}{unit}): {'met' if t['met'] else 'NOT met'}")
    if report.notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)


def parse_compare(text: str) -> list[str]:
    """``"dense,transformers"`` -> ["dense", "transformers"]; ``"none"`` or ``""`` -> []."""
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if items in ([], ["none"]):
        return []
    unknown = sorted(set(items) - set(COMPARES))
    if unknown:
        raise ConfigError(f"--compare: unknown baseline(s) {', '.join(unknown)}; known: {', '.join(COMPARES)}, none")
    return items



def parse_heads(text: str) -> list[str]:
    """``"float,int8,q4"`` -> ["float", "int8", "q4"] (checked against the model's head precisions)."""
    from bno_bitnet.model import HEAD_PRECISIONS

    items = [t.strip().lower() for t in text.split(",") if t.strip()] or ["float"]
    unknown = sorted(set(items) - set(HEAD_PRECISIONS))
    if unknown:
        raise ConfigError(f"--head: unknown precision(s) {', '.join(unknown)}; known: {', '.join(HEAD_PRECISIONS)}")
    return items
