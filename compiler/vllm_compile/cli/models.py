"""`vllm-compile models [--json]`: the built-in model catalog."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _rows() -> list[dict[str, Any]]:
    from vllm_compile.facts.model_catalog import all_catalog_facts
    from vllm_compile.facts.weights import weight_bytes_total

    rows = []
    for f in all_catalog_facts():
        rows.append(
            {
                "id": f.id,
                "architecture": f.architecture,
                "params_total": f.params_total,
                "params_active": f.params_active,
                "dtype": f.dtype,
                "quantization": f.quantization.method if f.quantization else None,
                "max_model_len": f.max_model_len,
                "weight_bytes_total": weight_bytes_total(f),
                "multimodal": f.multimodal,
                "gated": f.gated,
                "source_note": f.source_note,
            }
        )
    return sorted(rows, key=lambda r: r["id"].lower())


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f}B"


def run(args: argparse.Namespace) -> int:
    rows = _rows()
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2, sort_keys=True) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Built-in model catalog ({len(rows)} models; usable offline)")
    for col, justify in (
        ("id", "left"), ("architecture", "left"), ("params", "right"), ("active", "right"),
        ("weights GiB", "right"), ("dtype", "left"), ("quant", "left"), ("max len", "right"), ("gated", "left"),
    ):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            r["id"],
            r["architecture"],
            _billions(r["params_total"]),
            _billions(r["params_active"]),
            f"{r['weight_bytes_total'] / (1 << 30):.2f}",
            r["dtype"],
            r["quantization"] or "-",
            str(r["max_model_len"]),
            "yes" if r["gated"] else "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="List the built-in model catalog (compiles offline).")
    parser.add_argument("--json", action="store_true", help="Machine-readable output, sorted by id.")
    parser.set_defaults(func=run)
