"""bench/perf_fit.py: the fit moves a named constant toward what the rows want, within its prior, and the
split check predicts each group with constants fitted without it (synthetic rows, no calibration file)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest

from vllm_compile.passes import perf_model as pm

_SPEC = importlib.util.spec_from_file_location(
    "perf_fit", Path(__file__).resolve().parents[1] / "bench" / "perf_fit.py"
)
assert _SPEC is not None and _SPEC.loader is not None
perf_fit = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(perf_fit)


def _collect_wanting(targets: dict[str, float]):
    """Rows whose throughput error is set by pm.MOE_EFF against each entry's target value."""

    def collect(
        entries: list[dict[str, Any]], include_all: bool = False
    ) -> tuple[list[dict[str, Any]], list[str]]:
        rows = []
        for o in entries:
            rows.append(
                {
                    "id": o["id"],
                    "concurrency": 1,
                    "ttft_caveat": False,
                    "tpot_err": None,
                    "ttft_err": None,
                    "thr_err": pm.MOE_EFF / targets[o["id"]] - 1,
                }
            )
        return rows, []

    return collect


def test_fit_moves_a_constant_toward_the_data_and_restores_the_module() -> None:
    before = pm.MOE_EFF
    entries = [{"id": f"e{i}", "group": "a"} for i in range(6)]
    values = perf_fit.fit(_collect_wanting({o["id"]: 0.8 for o in entries}), entries)
    assert before == pm.MOE_EFF  # the module's constants are put back
    assert values["MOE_EFF"] > perf_fit.PRIOR["MOE_EFF"][0]  # moved toward 0.8 ...
    assert values["MOE_EFF"] <= perf_fit.PRIOR["MOE_EFF"][2]  # ... within its physical bound
    # Constants no row is sensitive to keep their priors.
    assert values["ROCM_ATTN_EFF"] == perf_fit.PRIOR["ROCM_ATTN_EFF"][0]


def test_loss_is_l1_on_log_error_plus_the_prior_penalty() -> None:
    rows = [
        {"concurrency": 1, "ttft_caveat": False, "tpot_err": 0.1, "thr_err": -0.2, "ttft_err": None},
        # TTFT counts only at concurrency <= 4 and without a cache caveat.
        {"concurrency": 64, "ttft_caveat": False, "tpot_err": None, "thr_err": None, "ttft_err": 0.5},
    ]
    values = {"MOE_EFF": 1.0}  # 2x its prior of 0.5
    expected = abs(math.log(1.1)) + abs(math.log(0.8)) + (math.log(2.0) / perf_fit.PRIOR_SPREAD) ** 2
    assert perf_fit.loss(rows, values) == pytest.approx(expected)


def test_split_check_predicts_each_group_without_it() -> None:
    entries = [{"id": f"a{i}", "group": "a"} for i in range(3)] + [
        {"id": f"b{i}", "group": "b"} for i in range(3)
    ]
    targets = {o["id"]: (0.7 if o["group"] == "a" else 0.4) for o in entries}
    held = perf_fit.split_check(_collect_wanting(targets), entries, lambda o: o["group"])
    by = {r["fold"]: r for r in held}
    # Group a is predicted with the constant fitted on b (which wants 0.4), and vice versa.
    assert by["a"]["fold_values"]["MOE_EFF"] < 0.5 < by["b"]["fold_values"]["MOE_EFF"]
    assert len(held) == len(entries)
