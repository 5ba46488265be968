import os
import sys

from export.cli import main

code = main()
if code == 130:
    # Interrupted, cleanup done. After a Ctrl-C during the torch/ONNX export, CPython sometimes (about 1 run in 10 here)
    # killed itself with SIGINT at exit although the CLI had handled the KeyboardInterrupt: leave with status 130.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
