"""The installed version of the distribution (read from its metadata, not imported from another package)."""

from __future__ import annotations

import importlib.metadata

try:
    VERSION = importlib.metadata.version("bitnet-orchestrator")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"
