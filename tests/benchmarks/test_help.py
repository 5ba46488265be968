"""Every benchmark script explains each of its options in --help (what it does, its default)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py"))


def undocumented(help_text: str) -> list[str]:
    """Option lines of an argparse help with no text beside or below them."""
    lines = help_text.splitlines()
    missing = []
    for k, line in enumerate(lines):
        if not re.match(r"^  -", line) or line.strip() in ("-h, --help",):
            continue
        beside = re.search(r"\S\s{2,}\S", line.strip()) is not None
        below = k + 1 < len(lines) and re.match(r"^ {6,}\S", lines[k + 1]) is not None
        if not beside and not below:
            missing.append(line.strip())
    return missing


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_help_explains_every_option(script):
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert undocumented(proc.stdout) == []
