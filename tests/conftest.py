"""Suite-wide setup.

Triton fixes interpreter vs compiled mode at its first import, and transformers may import triton as a
side effect, so the mode is settled here, before any test module loads: without a CUDA GPU every Triton
kernel runs in interpreter mode on the CPU (how CI checks their correctness). Set ``TRITON_INTERPRET=0``
on a GPU machine to test the compiled kernels.
"""

from __future__ import annotations

import os

if "TRITON_INTERPRET" not in os.environ:
    import torch

    os.environ["TRITON_INTERPRET"] = "0" if torch.cuda.is_available() else "1"

# The suite may itself run inside a gate (`orchestrator gates run` -> the test gate -> pytest): the outer
# run's GATE_* variables (its base ref, output folder, parameters) must not leak into the gate programs
# that the tests start on their own toy repositories.
for _name in [name for name in os.environ if name.startswith("GATE_")]:
    del os.environ[_name]
