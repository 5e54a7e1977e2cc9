"""GPU prices: on-demand USD per GPU-hour, from the built-in table or a repository's override.

The table (`data/gpu_prices.json`) has one row per catalog GPU key, each with its provider, offer,
the date it was read, its public source and whether it is an estimate (a secondary source, or a
GPU priced by the row of the part a provider rents under the same tier). Prices move and differ by
provider, region and commitment: a profile's `cost.usd_per_gpu_hour` (this deployment) or
`cost.prices` (by GPU name, in a base profile for a whole repository) replaces them.

Public API (also used by charts and the recommender): `price_table()`, `gpu_price(gpu, cost)`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, ConfigDict

from ..profile.v1 import CostSpec
from .gpu_spec import GpuSpec


class GpuPrice(BaseModel):
    """One GPU's hourly price and where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: str  # catalog key
    usd_per_gpu_hour: float
    provider: str
    offer: str = ""
    date: str = ""  # when the figure was read (YYYY-MM-DD)
    source: str = ""
    estimate: bool = False
    override: bool = False  # from the profile, not the built-in table

    @property
    def label(self) -> str:
        kind = "override" if self.override else ("estimate" if self.estimate else "list price")
        when = f", {self.date}" if self.date else ""
        return f"${self.usd_per_gpu_hour:.3f}/GPU-hour ({self.provider}, {kind}{when})"


@lru_cache(maxsize=1)
def _raw() -> dict:
    text = resources.files("vllm_compile.facts").joinpath("data/gpu_prices.json").read_text(encoding="utf-8")
    return json.loads(text)


def price_table_version() -> str:
    """The table's version: part of every lock's inputs hash, so new prices re-plan."""
    return str(_raw()["version"])


@lru_cache(maxsize=1)
def price_table() -> tuple[GpuPrice, ...]:
    """Every built-in price row, in table order."""
    return tuple(GpuPrice(**row) for row in _raw()["prices"])


def _by_key() -> dict[str, GpuPrice]:
    return {p.gpu: p for p in price_table()}


def gpu_price(gpu: GpuSpec, cost: CostSpec | None = None) -> GpuPrice | None:
    """The price of one `gpu`: the profile's override first, then the table; None when unknown."""
    if cost is not None:
        if cost.usd_per_gpu_hour is not None:
            return _override(gpu, cost.usd_per_gpu_hour, cost.source)
        if cost.prices:
            from .gpus import lookup_gpu

            for name, usd in sorted(cost.prices.items()):
                spec = lookup_gpu(name)
                if (spec is not None and spec.key == gpu.key) or name == gpu.key:
                    return _override(gpu, usd, cost.source)
    return _by_key().get(gpu.key)


def _override(gpu: GpuSpec, usd: float, source: str | None) -> GpuPrice:
    return GpuPrice(
        gpu=gpu.key,
        usd_per_gpu_hour=float(usd),
        provider="profile",
        offer="cost override in the profile",
        source=source or "profile cost section",
        override=True,
    )
