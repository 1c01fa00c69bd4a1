"""Make the repository root importable: the project is not installed into the venv and
pyproject's pytest options set no `pythonpath`, so `.venv/bin/pytest` alone cannot find
`workflows`, `activities` and friends."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
