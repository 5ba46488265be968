"""Fixtures shared by every test package."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

# Imported at interpreter start-up through PYTHONPATH: the modules listed in DEEPLAB_TEST_BLOCK look uninstalled.
_BLOCKER = """
import os
import sys


class _Blocker:
    blocked = set(os.environ["DEEPLAB_TEST_BLOCK"].split(","))

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
"""


@pytest.fixture
def run_without(tmp_path_factory) -> Callable[..., subprocess.CompletedProcess]:
    """``run_without("torch,onnx", ["-m", "export", ...], cwd)``: run Python in a subprocess in which the named
    top-level modules cannot be imported, as on a machine without them."""
    site = tmp_path_factory.mktemp("blocker")
    (site / "sitecustomize.py").write_text(_BLOCKER)

    def run(modules: str, args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(site), "DEEPLAB_TEST_BLOCK": modules}
        return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    return run
