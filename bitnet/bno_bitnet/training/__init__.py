"""Quantization-aware training of BitNet b1.58 models (latent weights + straight-through fake quant).

Modules, each usable on its own (import from them directly; this package re-exports nothing):

* :mod:`~bno_bitnet.training.schedule`: :class:`TwoStageSchedule`, the b1.58 learning-rate and
  weight-decay schedule, a pure function of the step.
* :mod:`~bno_bitnet.training.config`: :class:`TrainConfig` and :data:`PRESETS`, every hyper-parameter of a
  run, validated (pydantic), and the resume compatibility check.
* :mod:`~bno_bitnet.training.checkpoint`: atomic, hash-checked checkpoints that resume exactly.
* :mod:`~bno_bitnet.training.loop`: :func:`train` (AdamW, gradient clipping, rich progress bar, JSON-lines
  loss log, data-parallel through ``torch.distributed``), export with :func:`bno_bitnet.hf.save_pretrained`,
  and :func:`launch` for ``nproc`` data-parallel processes on this machine.

Importing this package, ``config`` or ``schedule`` does not import torch.
"""
