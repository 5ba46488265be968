import os
import sys

from export.cli import main

code = main()
if code == 130:
    # Interrupted, cleanup done. After a Ctrl-C during the torch/ONNX export, CPython can still die of SIGINT at exit
    # although the CLI handled the KeyboardInterrupt: leave at once, with status 130.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
