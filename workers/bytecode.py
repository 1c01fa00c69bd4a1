"""Compiled workflow code kept for the worker's life.

The workflow sandbox imports a workflow's modules afresh for every workflow it starts or
replays (so no run sees another's module state). Python finds the compiled modules in
`__pycache__`; where bytecode is not written (PYTHONDONTWRITEBYTECODE, as in our image
and many others) each of those imports compiled the order workflow's source again: a
fifth of the worker's busy time under load. The worker writes bytecode into a private
directory of its own instead (not beside the sources, which may be read-only), removed
when the process exits.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile


def keep_compiled_modules() -> str | None:
    """The directory compiled modules go to now, or None when Python writes them as
    usual (or this was done before)."""
    if not sys.dont_write_bytecode:
        return None
    # private (0700) and new: nobody else can place bytecode the worker would load
    directory = tempfile.mkdtemp(prefix="oms-worker-bytecode-")
    sys.pycache_prefix = directory
    sys.dont_write_bytecode = False
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def remove_compiled_modules() -> None:
    """Remove the directory now (a process leaving by os._exit runs no exit handlers)."""
    directory = sys.pycache_prefix
    if directory and "oms-worker-bytecode-" in directory:
        shutil.rmtree(directory, ignore_errors=True)
