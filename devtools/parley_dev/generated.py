"""Files written from a description (dashboards, alert rules, manifests)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write(files: dict[Path, str]) -> None:
    """Write each file (a test checks the committed ones equal what the generator renders)."""
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
