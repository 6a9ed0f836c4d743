"""Ships the top-level ``agents/`` and ``workflows/`` folders inside the wheel as ``bno_orchestrator/data/``.

Everything else is declared in pyproject.toml. In a source checkout (editable install) the orchestrator
reads the folders in place: see ``bno_orchestrator.paths.data_root``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_FOLDERS = ("agents", "workflows")


class BuildPyWithData(build_py):
    """Copies the data folders into ``<build>/bno_orchestrator/data`` when a wheel is built."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "bno_orchestrator" / "data"
        for name in DATA_FOLDERS:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithData})
