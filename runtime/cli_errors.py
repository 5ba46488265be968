"""What every CLI prints after ``error:``: the exception's whole message (a rebuild command on its second line stays
visible), and for a missing optional module, which extra installs it."""
from __future__ import annotations

import sys
from typing import Callable

# top-level module -> the pyproject extra that installs it
EXTRAS = {"torch": "export", "onnx": "export", "onnxscript": "export"}

INSTALL = {
    "export": 'pip install -e ".[export]" in a checkout, or pip install "deeplab-deploy[export]" '
              "(on a CPU machine first pip install torch==2.13.0, so pip does not pull a CUDA build)",
}


def missing_extra(error: BaseException) -> str | None:
    """For an import of a module that an extra provides: the error with what to install; else None."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    module = error.name.split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    return f"No module named '{module}': it comes with the {extra!r} extra: {INSTALL[extra]}"


def error_text(error: BaseException) -> str:
    """The text to print after ``error: ``: every line of the message (the exception's type when it has none)."""
    hint = missing_extra(error)
    if hint is not None:
        return hint
    text = str(error).strip()
    return text or type(error).__name__


def run_command(command: Callable[[], int | None], verbose: bool = False) -> int:
    """Run a CLI's command with the CLI contract: ``error: interrupted`` and 130 after Ctrl-C, the whole error message
    and 1 on failure (the traceback instead with ``verbose``), else the command's status (None counts as 0)."""
    try:
        return int(command() or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the contract: one error message, every line of it, no traceback
        if verbose:
            raise
        print(f"error: {error_text(e)}", file=sys.stderr)
        return 1
