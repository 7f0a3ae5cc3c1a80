"""The price table and the one cost function every part of the project uses."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.io import read_csv_input
from bayes_router.errors import InputError

PRICE_COLUMNS = ("model", "usd_per_m_input", "usd_per_m_output")


#: The calibration study's own table (a 2025 price basis, kept apart from the 2024 MMLU-Pro one).
CALIBRATION_STUDY_PRICES = "prices_calibration_study.csv"


def default_prices_path(name: str = "prices.csv") -> Path:
    """A price table of the project's ``data/`` folder: ``prices.csv`` (a copy of the shared MMLU-Pro
    table) by default, or :data:`CALIBRATION_STUDY_PRICES`."""
    here = Path(__file__).resolve().parents[2] / "data" / name
    if here.exists():
        return here
    return Path(str(resources.files("bayes_router") / name))


def load_prices(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a price table: USD per million input and output tokens, indexed by model."""
    path = Path(path) if path is not None else default_prices_path()
    table = read_csv_input(path, "price table")
    missing = [c for c in PRICE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: price table lacks column(s) {missing}")
    for col in ("usd_per_m_input", "usd_per_m_output"):
        vals = pd.to_numeric(table[col], errors="coerce")
        bad = table.loc[vals.isna() | (vals < 0), "model"].tolist()
        if bad:
            raise InputError(f"{path}: column '{col}': missing or negative price for {bad[:5]}")
        table[col] = vals.astype(float)
    if table["model"].duplicated().any():
        dup = table.loc[table["model"].duplicated(), "model"].tolist()
        raise InputError(f"{path}: models listed twice: {dup[:5]}")
    return table.set_index("model")


def price_of(prices: pd.DataFrame, model: str, where: str = "price table") -> tuple[float, float]:
    """(USD per million input tokens, USD per million output tokens) for ``model``."""
    if model not in prices.index:
        raise InputError(
            f"{where}: model '{model}' is not in the price table; add a row for it "
            "(model,usd_per_m_input,usd_per_m_output,...) or pass --prices"
        )
    row = prices.loc[model]
    return float(row["usd_per_m_input"]), float(row["usd_per_m_output"])


def call_cost_usd(prompt_tokens, completion_tokens, usd_per_m_input, usd_per_m_output):
    """Cost of call(s) in USD: tokens times the per-million-token prices. Broadcasts."""
    return (
        np.asarray(prompt_tokens, dtype=float) * usd_per_m_input
        + np.asarray(completion_tokens, dtype=float) * usd_per_m_output
    ) / 1e6
