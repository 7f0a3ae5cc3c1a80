"""Saving figures the one way: PNG (for the report and README) and SVG (for papers), named after what they show."""

from __future__ import annotations

import os
from pathlib import Path

from bayes_router.data.io import atomic_path


def save_figure(fig, figures_dir: str | os.PathLike, name: str, dpi: int = 150) -> list[Path]:
    """Write ``fig`` to ``figures_dir/name.png`` and ``.svg`` atomically; returns both paths.

    ``name`` says what the figure shows (e.g. ``accuracy_by_model_and_subject``).
    """
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "svg"):
        target = figures_dir / f"{name}.{ext}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
        out.append(target)
    return out
