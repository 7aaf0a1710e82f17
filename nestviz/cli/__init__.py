"""The ``nestviz`` command line, one module per command group, a thin layer over the Python API.

- ``app``: the entry point (``main``), the typer app, signals and exit codes.
- ``common``: what every command shares: exit codes, one-line failures, loading the model.
- ``folder`` etc.: see each module. Heavy modules (torch, matplotlib, rich) load inside the commands,
  never at import time, so ``nestviz --help`` stays fast.
"""
