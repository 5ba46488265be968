"""export/ builds on the runtime's core (metadata, preprocessing, image decoding, palettes, backends), never on its
applications (sources, sinks, pipelines, CLIs)."""
from __future__ import annotations

import ast
from pathlib import Path

APP_MODULES = {"runtime.sources", "runtime.sinks", "runtime.infer", "runtime.multi_cli", "runtime.pipeline",
               "runtime.multistream", "runtime.streams", "runtime.live_view"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_export_imports_no_runtime_application_module():
    export = Path(__file__).resolve().parents[2] / "export"
    found = {f"{p.relative_to(export.parent)}: {m}" for p in export.rglob("*.py") for m in _imports(p) & APP_MODULES}
    assert not found, sorted(found)
