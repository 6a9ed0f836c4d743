"""The training loop: :func:`train` (one process, or one rank of a data-parallel group) and :func:`launch`.

:func:`train` is a chain of named steps: check the request (:func:`_check_request`), build the run
(:func:`_build_run`: data, model, optimizer, the resumed state), prepare the output directory
(:func:`_prepare_out_dir`), take the optimizer steps (:func:`_take_steps`: AdamW on the
:mod:`~bno_bitnet.training.schedule`, gradient clipping, the loss log, evaluations and checkpoints), check
that the data-parallel replicas agree (:func:`_compare_replicas`), and export the model
(:func:`_finish`, with :func:`bno_bitnet.hf.save_pretrained`, so ``bitnet generate OUT/model`` samples
from it). Data parallelism goes through ``torch.distributed`` when a process group is up; :func:`launch`
starts ``nproc`` such processes on this machine (gloo, CPU), or runs one inline.

Only rank 0 writes: checkpoints, the JSON-lines loss log, the run summary and the exported model.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from bno_bitnet.data import ByteWindowDataset, ShardedBatchSampler, load_corpus
from bno_bitnet.errors import CheckpointError, ConfigError
from bno_bitnet.model import BitNetForCausalLM
from bno_bitnet.training.checkpoint import (
    CHECKPOINTS_SUBDIR,
    STATE_FILE,
    LoadedCheckpoint,
    check_world_size,
    list_checkpoints,
    prepare_resume,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from bno_bitnet.training.config import TrainConfig, config_hash, model_config_for
from bno_foundation.atomic import atomic_write, atomic_write_bytes

LOG_FILE = "train_log.jsonl"
SUMMARY_FILE = "train_summary.json"
MODEL_SUBDIR = "model"


# --------------------------------------------------------------------------------------------------
# What a run reports: the loss log and the result
# --------------------------------------------------------------------------------------------------


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines loss log (a torn last line from a killed run is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def truncate_log(path: Path, step: int) -> None:
    """Drop records after ``step`` (a resume replays those steps), atomically."""
    if not path.is_file():
        return
    kept = [r for r in read_log(path) if int(r.get("step", 0)) <= step]
    atomic_write(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


@dataclass
class TrainResult:
    """What a run did (rank 0's view; losses are averaged over ranks)."""

    out_dir: str
    start_step: int
    end_step: int
    total_steps: int
    losses: list[float] = field(default_factory=list)  # one per step taken in this run
    val_losses: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0
    world_size: int = 1
    checkpoint: str | None = None
    model_dir: str | None = None
    replicas_identical: bool | None = None  # data-parallel runs: every rank ended with the same weights

    @property
    def first_loss(self) -> float | None:
        """Loss of the first step this run took."""
        return self.losses[0] if self.losses else None

    @property
    def last_loss(self) -> float | None:
        """Loss of the last step this run took."""
        return self.losses[-1] if self.losses else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (``val_losses`` keys become strings)."""
        return {"out_dir": self.out_dir, "start_step": self.start_step, "end_step": self.end_step,
                "total_steps": self.total_steps, "losses": self.losses,
                "val_losses": {str(k): v for k, v in self.val_losses.items()}, "seconds": self.seconds,
                "tokens": self.tokens, "world_size": self.world_size, "checkpoint": self.checkpoint,
                "model_dir": self.model_dir, "first_loss": self.first_loss, "last_loss": self.last_loss,
                "replicas_identical": self.replicas_identical}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_json`."""
        return cls(out_dir=str(data["out_dir"]), start_step=int(data["start_step"]),
                   end_step=int(data["end_step"]), total_steps=int(data["total_steps"]),
                   losses=[float(x) for x in data["losses"]],
                   val_losses={int(k): float(v) for k, v in data["val_losses"].items()},
                   seconds=float(data["seconds"]), tokens=int(data["tokens"]),
                   world_size=int(data["world_size"]), checkpoint=data.get("checkpoint"),
                   model_dir=data.get("model_dir"), replicas_identical=data.get("replicas_identical"))


# --------------------------------------------------------------------------------------------------
# Pieces of the loop
# --------------------------------------------------------------------------------------------------


def _dist_info() -> tuple[int, int]:
    """(rank, world size): (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Matrices (linear and embedding weights) get weight decay; vectors (norm gains) do not."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 else no_decay).append(param)
    return [{"params": decay, "decay": True}, {"params": no_decay, "decay": False, "weight_decay": 0.0}]


def weights_digest(model: nn.Module) -> str:
    """sha256 over every parameter and buffer of ``model`` (state-dict order): equal digests, equal weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode("utf-8"))
        raw = tensor.detach().cpu().reshape(-1).clone().view(torch.uint8)  # (nbytes,), its own storage
        digest.update(bytes(raw.untyped_storage()))
    return digest.hexdigest()


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss: logits (B, T, V), targets (B, T) -> 0-d."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def evaluate(model: nn.Module, dataset: ByteWindowDataset, *, batches: int, batch_size: int) -> float:
    """Mean cross-entropy over ``batches`` fixed, evenly spaced batches of ``dataset`` (deterministic)."""
    n = len(dataset)
    count = min(n, batches * batch_size)
    assert count > 0, "evaluate needs at least one window"
    indices = [int(i * n / count) for i in range(count)]
    was_training = model.training
    model.eval()
    total, weight = 0.0, 0
    with torch.no_grad():
        for start in range(0, count, batch_size):
            chunk = indices[start:start + batch_size]
            x, y = dataset.batch(chunk)  # (B, T), (B, T)
            loss = _cross_entropy(model(x), y)  # logits (B, T, V)
            total += float(loss) * len(chunk)
            weight += len(chunk)
    model.train(was_training)
    return total / weight


class _Reporter:
    """Rank 0's progress display: a rich progress bar on a terminal, a line per log step elsewhere."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self._console: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._console = Console(stderr=True)
        if self._console.is_terminal:
            self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                      TimeRemainingColumn(), console=self._console, transient=False)
            self._task = self._progress.add_task("train", total=total, completed=start, info="")
            self._progress.start()

    def update(self, step: int, info: str, *, logged: bool) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=step, info=info)
        elif logged:
            self._console.print(f"step {step}: {info}", highlight=False)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)
        else:
            self._console.print(text, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _initial_model(config: TrainConfig, init_from: Path | None) -> BitNetForCausalLM:
    """A fresh model (seeded with ``config.seed``) or the latent weights of a Hugging Face directory."""
    if init_from is None:
        torch.manual_seed(config.seed)
        return BitNetForCausalLM(model_config_for(config), mode="train")
    from bno_bitnet.hf import from_pretrained

    if not init_from.is_dir():
        raise CheckpointError(f"{init_from}: model directory does not exist")
    model = from_pretrained(init_from, mode="train", dtype=torch.float32)
    want = model_config_for(config).to_hf_dict()
    have = model.config.to_hf_dict()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "tie_word_embeddings"):
        if want.get(key) != have.get(key):
            raise CheckpointError(f"{init_from / 'config.json'}: {key}: the model has {have.get(key)!r}, "
                                  f"the training config asks for {want.get(key)!r}")
    return model


@dataclass
class _Run:
    """Everything one call of :func:`train` works on."""

    config: TrainConfig
    out: Path
    rank: int
    world: int
    stop: int  # the run stops after this step
    train_set: ByteWindowDataset
    val_set: ByteWindowDataset | None
    sampler: ShardedBatchSampler
    model: BitNetForCausalLM
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.AdamW
    params: list[nn.Parameter]
    step: int
    result: TrainResult

    @property
    def checkpoints(self) -> Path:
        return self.out / CHECKPOINTS_SUBDIR

    @property
    def log_path(self) -> Path:
        return self.out / LOG_FILE

    @property
    def tokens_per_step(self) -> int:
        return self.config.batch_size * self.config.seq_len * self.world


# --------------------------------------------------------------------------------------------------
# The steps of train()
# --------------------------------------------------------------------------------------------------


def _check_request(config: TrainConfig, out: Path, resume: str | Path | LoadedCheckpoint | None,
                   init_from: str | Path | None, until_step: int | None, overwrite: bool,
                   world: int) -> tuple[LoadedCheckpoint | None, int]:
    """Refuse a bad request before anything is read or written.

    Returns the checkpoint to resume from (or None) and the step to stop after.
    """
    if resume is not None and init_from is not None:
        raise ConfigError("resume and init_from: give one or the other")
    loaded = None if resume is None else prepare_resume(resume, config)
    if loaded is not None:
        check_world_size(loaded, world, "this run has")
    existing = list_checkpoints(out / CHECKPOINTS_SUBDIR)
    if loaded is None and existing and not overwrite:
        raise ConfigError(f"{out}: already holds checkpoints ({existing[-1].name}); "
                          f"resume that run (--resume) or start over (--overwrite deletes them)")
    stop = config.steps if until_step is None else until_step
    if not 0 < stop <= config.steps:
        raise ConfigError(f"until_step: must be in 1..{config.steps}, got {until_step}")
    return loaded, stop


def _build_run(config: TrainConfig, out: Path, rank: int, world: int, stop: int, loaded: LoadedCheckpoint | None,
               init_from: str | Path | None, corpus_paths: list[Path] | None) -> _Run:
    """The data, the model and its optimizer, at step 0 or restored from ``loaded``."""
    corpus = load_corpus(corpus_paths, val_fraction=config.val_fraction)
    train_set = ByteWindowDataset(corpus.train, config.seq_len, config.stride)
    val_set = ByteWindowDataset(corpus.val, config.seq_len) if corpus.val.numel() > config.seq_len else None
    sampler = ShardedBatchSampler(train_set, config.batch_size, rank=rank, world_size=world, seed=config.seed)
    model = _initial_model(config, None if init_from is None else Path(init_from))
    model.train()
    groups = _param_groups(model)
    optimizer = torch.optim.AdamW(groups, lr=config.peak_lr, betas=(config.beta1, config.beta2),
                                  eps=config.adam_eps, weight_decay=config.weight_decay)
    step = 0
    if loaded is not None:
        try:
            model.load_state_dict(loaded.state["model"])
            optimizer.load_state_dict(loaded.state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{loaded.path / STATE_FILE}: does not fit this model ({exc})") from exc
        sampler.load_state_dict(loaded.state["sampler"])
        set_rng_state(loaded.state["rng"])
        step = loaded.step
        if step >= stop:
            raise ConfigError(f"until_step: the checkpoint {loaded.path} is already at step {step}, "
                              f"nothing to do before step {stop}")
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)
    result = TrainResult(out_dir=str(out), start_step=step, end_step=step, total_steps=config.steps,
                         world_size=world)
    return _Run(config=config, out=out, rank=rank, world=world, stop=stop, train_set=train_set, val_set=val_set,
                sampler=sampler, model=model, net=net, optimizer=optimizer,
                params=[p for g in groups for p in g["params"]], step=step, result=result)


def _prepare_out_dir(run: _Run, resumed: bool, overwrite: bool) -> None:
    """Rank 0 creates the output directory, deletes old checkpoints (``overwrite``) and trims or resets
    the loss log; the other ranks wait until every rank has checked the directory."""
    if run.world > 1:
        dist.barrier()  # every rank has checked the directory before rank 0 changes it
    if run.rank != 0:
        return
    run.out.mkdir(parents=True, exist_ok=True)
    if not resumed and overwrite:
        shutil.rmtree(run.checkpoints, ignore_errors=True)
    if resumed:
        truncate_log(run.log_path, run.step)
    elif run.log_path.exists():
        atomic_write_bytes(run.log_path, b"")  # a fresh run in an old directory starts a fresh log


def _save(run: _Run) -> None:
    """Rank 0 writes a checkpoint of the current step and records it in the result."""
    if run.rank != 0:
        return
    config, step = run.config, run.step
    state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "sampler": run.sampler.state_dict(), "rng": rng_state(), "step": step,
             "schedule": {"lr_next": config.schedule().lr(step) if step < config.steps else None}}
    meta = {"config": config.model_dump(mode="json"), "config_hash": config_hash(config),
            "world_size": run.world, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__}
    run.result.checkpoint = str(save_checkpoint(run.checkpoints, step, state, meta,
                                                keep=config.keep_checkpoints))


def _optimizer_step(run: _Run, lr: float, weight_decay: float) -> tuple[float, float]:
    """One step on the next batch at ``lr`` and ``weight_decay``: (loss averaged over ranks, grad norm)."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
        group["weight_decay"] = weight_decay if group["decay"] else 0.0
    x, y = run.train_set.batch(run.sampler.next_batch())  # (B, T), (B, T)
    loss = _cross_entropy(run.net(x), y)  # logits (B, T, V)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # DDP averages the gradients over ranks here
    if run.config.grad_clip > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(run.params, run.config.grad_clip))
    else:
        grad_norm = float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in run.params if p.grad is not None])))
    run.optimizer.step()
    run.step += 1
    loss_value = loss.detach().clone()
    if run.world > 1:
        dist.all_reduce(loss_value, op=dist.ReduceOp.SUM)
        loss_value /= run.world
    value = float(loss_value)
    if not math.isfinite(value):
        raise ConfigError(f"peak_lr: the loss became {value} at step {run.step}; lower the learning rate")
    return value, grad_norm


def _evaluation_due(run: _Run) -> bool:
    """Rank 0 evaluates every ``eval_every`` steps and at the planned last step (given validation data)."""
    config, step = run.config, run.step
    periodic = config.eval_every > 0 and step % config.eval_every == 0
    return run.rank == 0 and run.val_set is not None and config.eval_batches > 0 and (
        periodic or step == config.steps)


def _take_steps(run: _Run, reporter: _Reporter, resumed: bool, start_time: float,
                on_step: Callable[[int, float], None] | None) -> None:
    """Optimizer steps up to ``run.stop``, logging, evaluating and checkpointing on the way, then the final
    checkpoint. Log records continue a resumed run's token and time counters."""
    config, schedule = run.config, run.config.schedule()
    prev = read_log(run.log_path) if (resumed and run.rank == 0) else []
    prev_train = [r for r in prev if r.get("kind") == "train"]
    time_offset = float(prev_train[-1]["elapsed_s"]) if prev_train else 0.0
    log_fh = run.log_path.open("a", encoding="utf-8") if run.rank == 0 else None

    def write_log(record: dict[str, Any]) -> None:
        if log_fh is not None:
            log_fh.write(json.dumps(record, sort_keys=True) + "\n")
            log_fh.flush()

    try:
        while run.step < run.stop:
            lr, wd = schedule.lr(run.step), schedule.weight_decay_at(run.step)
            value, grad_norm = _optimizer_step(run, lr, wd)
            step = run.step
            run.result.losses.append(value)
            if on_step is not None:
                on_step(step, value)
            logged = step % config.log_every == 0 or step == run.stop
            elapsed = time_offset + time.perf_counter() - start_time
            if logged:
                write_log({"kind": "train", "step": step, "loss": value, "lr": lr, "weight_decay": wd,
                           "grad_norm": grad_norm, "tokens": step * run.tokens_per_step,
                           "elapsed_s": round(elapsed, 3)})
            reporter.update(step, f"loss {value:.4f}  lr {lr:.2e}", logged=logged)
            if _evaluation_due(run):
                assert run.val_set is not None
                val = evaluate(run.model, run.val_set, batches=config.eval_batches, batch_size=config.batch_size)
                run.result.val_losses[step] = val
                write_log({"kind": "val", "step": step, "val_loss": val})
                reporter.message(f"step {step}: validation loss {val:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step != run.stop:
                _save(run)
        _save(run)
    finally:
        reporter.close()
        if log_fh is not None:
            log_fh.close()


def _compare_replicas(run: _Run, reporter: _Reporter) -> None:
    """Data-parallel runs: record whether every rank ended with the same weights (warn when not)."""
    if run.world == 1:
        return
    digests: list[Any] = [None] * run.world
    dist.all_gather_object(digests, weights_digest(run.model))
    run.result.replicas_identical = len(set(digests)) == 1
    if not run.result.replicas_identical:
        reporter.message(f"warning: the ranks' weights differ after step {run.step}: {digests}")


def _finish(run: _Run, reporter: _Reporter, start_time: float) -> None:
    """Close the result; rank 0 exports the model when the planned steps are done and writes the summary."""
    result = run.result
    result.end_step = run.step
    result.seconds = time.perf_counter() - start_time
    result.tokens = (run.step - result.start_step) * run.tokens_per_step
    if run.rank == 0 and run.step == run.config.steps:
        from bno_bitnet.hf import save_pretrained

        model_dir = run.out / MODEL_SUBDIR
        save_pretrained(run.model, model_dir, form=run.config.export_form, overwrite=True)
        result.model_dir = str(model_dir)
        reporter.message(f"model written to {model_dir}")
    if run.rank == 0:
        write_json(run.out / SUMMARY_FILE, result.to_json())
    if run.world > 1:
        dist.barrier()  # leave together: a rank tearing down gloo while another still works can abort it


def train(config: TrainConfig, out_dir: str | Path, *, resume: str | Path | LoadedCheckpoint | None = None,
          init_from: str | Path | None = None, until_step: int | None = None, progress: bool = False,
          corpus_paths: list[Path] | None = None, overwrite: bool = False,
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train (or continue training) a BitNet b1.58 model on the byte corpus.

    ``resume``: a checkpoint directory or a run's output directory, whose config must agree with
    ``config`` (:func:`~bno_bitnet.training.config.check_resume_compatible`). ``init_from``: a Hugging Face
    model directory whose (latent) weights start a fresh run. ``until_step``: stop (with a checkpoint) after
    this many steps of the planned ``config.steps`` (the schedule is unchanged, so a later ``resume``
    continues exactly). A fresh run refuses an output directory that already holds checkpoints unless
    ``overwrite`` (which deletes them first), so a later resume can never pick up another run's checkpoint.

    When a ``torch.distributed`` process group is initialized, the model is wrapped in
    DistributedDataParallel and each rank reads its shard of every batch; only rank 0 writes.
    """
    rank, world = _dist_info()
    out = Path(out_dir)
    loaded, stop = _check_request(config, out, resume, init_from, until_step, overwrite, world)
    run = _build_run(config, out, rank, world, stop, loaded, init_from, corpus_paths)
    _prepare_out_dir(run, loaded is not None, overwrite)
    reporter = _Reporter(progress and rank == 0, config.steps, run.step)
    start_time = time.perf_counter()
    _take_steps(run, reporter, loaded is not None, start_time, on_step)
    _compare_replicas(run, reporter)
    _finish(run, reporter, start_time)
    return run.result


# --------------------------------------------------------------------------------------------------
# Data-parallel processes
# --------------------------------------------------------------------------------------------------


def _worker(rank: int, world: int, init_method: str, config_data: dict[str, Any], out_dir: str,
            kwargs: dict[str, Any], threads: int) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        train(TrainConfig.model_validate(config_data), out_dir, **kwargs)
    finally:
        dist.destroy_process_group()


def launch(config: TrainConfig, out_dir: str | Path, *, nproc: int = 1,
           resume: str | Path | LoadedCheckpoint | None = None, threads_per_process: int | None = None,
           **kwargs: Any) -> TrainResult:
    """Run :func:`train` in ``nproc`` data-parallel processes on this machine (gloo, CPU), or inline for 1.

    The checkpoint to resume from and the config are checked here first, so bad input fails with a clear
    error before any process starts. Returns rank 0's result.
    """
    if nproc < 1:
        raise ConfigError(f"nproc: must be >= 1, got {nproc}")
    loaded = None if resume is None else prepare_resume(resume, config)
    if loaded is not None:
        check_world_size(loaded, nproc, "this run asks for")
    if nproc == 1:
        return train(config, out_dir, resume=loaded, **kwargs)
    existing = list_checkpoints(Path(out_dir) / CHECKPOINTS_SUBDIR)
    if loaded is None and existing and not kwargs.get("overwrite", False):
        raise ConfigError(f"{out_dir}: already holds checkpoints ({existing[-1].name}); "
                          f"resume that run (--resume) or start over (--overwrite deletes them)")
    import torch.multiprocessing as mp

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / SUMMARY_FILE
    if summary.exists():
        summary.unlink()
    threads = threads_per_process or max(1, (os.cpu_count() or 1) // nproc)
    child_kwargs = {**kwargs, "resume": None if loaded is None else str(loaded.path)}
    with tempfile.TemporaryDirectory(prefix="bitnet-ddp-") as tmp:
        init_method = Path(tmp, "store").as_uri()
        try:
            mp.spawn(_worker, args=(nproc, init_method, config.model_dump(mode="json"), str(out),
                                    child_kwargs, threads), nprocs=nproc, join=True)
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            raise RuntimeError(f"a training process failed: {last}") from exc
    if not summary.is_file():
        raise RuntimeError(f"{summary}: rank 0 finished without writing its summary")
    return TrainResult.from_json(json.loads(summary.read_text(encoding="utf-8")))
