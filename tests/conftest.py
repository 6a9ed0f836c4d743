"""Suite-wide setup.

Triton fixes interpreter vs compiled mode at its first import, and transformers may import triton as a
side effect, so the mode is settled here, before any test module loads: without a CUDA GPU every Triton
kernel runs in interpreter mode on the CPU (how CI checks their correctness). Set ``TRITON_INTERPRET=0``
on a GPU machine to test the compiled kernels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

if "TRITON_INTERPRET" not in os.environ:
    import torch

    os.environ["TRITON_INTERPRET"] = "0" if torch.cuda.is_available() else "1"

# The suite may itself run inside a gate (`orchestrator gates run` -> the test gate -> pytest): the outer
# run's GATE_* variables (its base ref, output folder, parameters) must not leak into the gate programs
# that the tests start on their own toy repositories.
for _name in [name for name in os.environ if name.startswith("GATE_")]:
    del os.environ[_name]



# CI has every tool the suite drives (PostgreSQL, the agent CLIs, pre-commit, lefthook, husky, actionlint):
# there, with BNO_REQUIRE_TOOLS=1 (.ci/run sets it), a test skipped because a tool is missing fails instead,
# so a broken install can never pass as a green run with fewer tests.
MISSING_TOOL_MARKERS = ("not installed", "make dev-tools", "make agent-clis")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turn a missing-tool skip into a failure when ``BNO_REQUIRE_TOOLS=1``."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and os.environ.get("BNO_REQUIRE_TOOLS") == "1"):
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(marker in reason for marker in MISSING_TOOL_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"BNO_REQUIRE_TOOLS=1 and a tool is missing: {reason}"
