"""charts/: golden SVGs from a bundled profile, the expected series, byte-identical in a fresh process.

Regenerate the goldens with `UPDATE_GOLDEN=1 pytest tests/test_charts.py`, then look at them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_compile import api
from vllm_compile.charts import chart_files, render_charts
from vllm_compile.profile.loader import load_profile

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "charts"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
PROFILES = ["llama31-70b-h100-tp4", "llama31-405b-2x8xh100", "llama31-8b-h100-fleet"]


def _plan(name: str):
    loaded = load_profile(ROOT / "profiles" / f"{name}.yaml", f"profiles/{name}.yaml")
    return api.plan_profile(loaded.profile, name=loaded.name)


@pytest.fixture(scope="module")
def charts() -> dict[str, dict[str, str]]:
    return {name: render_charts(_plan(name)) for name in PROFILES}


@pytest.mark.parametrize("name", PROFILES)
def test_golden_svgs(name: str, charts) -> None:
    files = charts[name]
    folder = GOLDEN / name
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in files.items():
            (folder / file).write_text(text, encoding="utf-8", newline="\n")
    expected = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.svg")}
    assert sorted(files) == sorted(expected) == ["layouts.svg", "memory.svg", "performance.svg"]
    for file, text in files.items():
        assert text == expected[file], f"{name}/{file} differs from its golden (UPDATE_GOLDEN=1 to refresh)"


def test_no_date_random_ids_or_machine_paths(charts) -> None:
    for files in charts.values():
        for text in files.values():
            assert "<dc:date>" not in text and "Matplotlib v" not in text
            assert "vllm-compile" in text  # the fixed Creator
            assert str(Path.home()) not in text and "site-packages" not in text
            assert "font-family: 'DejaVu Sans'" in text or "font: " in text


def test_memory_chart_has_every_term_per_stage(charts) -> None:
    text = charts["llama31-405b-2x8xh100"]["memory.svg"]
    for series in ("weights", "activation", "non_torch", "cuda_graphs", "kv", "baseline", "free"):
        for stage in (0, 1):  # PP 2: one bar per stage
            assert f'id="series-{series}-{stage}"' in text
    assert 'id="utilization"' in text and "gpu_memory_utilization 0.92" in text


def test_performance_chart_series_slo_and_points(charts) -> None:
    text = charts["llama31-8b-h100-fleet"]["performance.svg"]
    for gid in ("series-ttft", "series-itl", "series-throughput", "range-ttft", "range-itl", "kv-queue"):
        assert f'id="{gid}"' in text
    assert 'id="operating-point-itl_ms"' in text
    # The fleet profile's chatbot preset declares SLOs: ITL and TTFT p99 lines are drawn.
    assert 'id="slo-itl"' in text and 'id="slo-ttft-p99"' in text


def test_pareto_shows_tp_2_4_8_and_fp8_with_the_chosen_marked(charts) -> None:
    plan = _plan("llama31-70b-h100-tp4")
    labels = {p.label for p in plan.layouts if p.starts}
    assert {"TP4", "TP8", "TP4 fp8", "TP2 DP2 fp8"} <= labels
    assert any(p.tensor_parallel_size == 2 for p in plan.layouts)
    chosen = [p for p in plan.layouts if p.role == "chosen"]
    assert len(chosen) == 1 and chosen[0].tensor_parallel_size == plan.engine.tensor_parallel_size == 4
    assert [p.role for p in plan.layouts].count("runner-up") == 1
    text = charts["llama31-70b-h100-tp4"]["layouts.svg"]
    for gid in ("chosen", "runner-up", "frontier", "series-within", "series-whatif"):
        assert f'id="{gid}"' in text
    for label in ("TP2 DP2 fp8 (4 GPUs)", "TP4 (4 GPUs)", "TP8 (8 GPUs)", "TP4 fp8 (4 GPUs)"):
        assert label in text


def test_frontier_is_the_undominated_set() -> None:
    plan = _plan("llama31-70b-h100-tp4")
    live = [p for p in plan.layouts if p.starts]
    for p in live:
        beaten = any(
            q.output_tok_s_per_gpu >= p.output_tok_s_per_gpu
            and q.itl_ms <= p.itl_ms
            and (q.output_tok_s_per_gpu > p.output_tok_s_per_gpu or q.itl_ms < p.itl_ms)
            for q in live
        )
        assert p.frontier == (not beaten), p.label
    assert all(not p.frontier for p in plan.layouts if not p.starts)


def test_chart_files_need_no_matplotlib() -> None:
    """REPORT.md names the charts without drawing: the lock-current path never imports matplotlib."""
    code = (
        "import sys; from vllm_compile.charts import chart_files; "
        "import vllm_compile.artifacts.report; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert chart_files(_plan("llama31-70b-h100-tp4")) == ["memory.svg", "performance.svg", "layouts.svg"]


def test_byte_identical_in_a_fresh_process(tmp_path: Path, charts) -> None:
    """Another process, another working directory, a hostile matplotlibrc: the same bytes."""
    (tmp_path / "matplotlibrc").write_text("font.family: serif\nlines.linewidth: 7\nsvg.hashsalt: other\n")
    code = (
        "import sys, json; from pathlib import Path; from vllm_compile import api; "
        "from vllm_compile.profile.loader import load_profile; from vllm_compile.charts import render_charts; "
        f"l = load_profile(Path({str(ROOT / 'profiles' / 'llama31-70b-h100-tp4.yaml')!r}), 'x'); "
        "print(json.dumps(render_charts(api.plan_profile(l.profile, name=l.name))))"
    )
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path), "MPLBACKEND": "agg", "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, env=env
    )
    import json

    assert json.loads(out.stdout) == charts["llama31-70b-h100-tp4"]


def test_report_embeds_the_charts_with_relative_links(tmp_path: Path) -> None:
    from vllm_compile.render import render_artifacts

    files = render_artifacts(_plan("llama31-70b-h100-tp4"), ["report", "charts"])
    report = files["REPORT.md"]
    for name in ("memory.svg", "performance.svg", "layouts.svg"):
        assert name in files and re.search(rf"!\[[^\]]+\]\({name}\)", report)
    assert "## Layouts weighed" in report and "| TP4 | 4 |" in report and "chosen" in report
    without = render_artifacts(_plan("llama31-70b-h100-tp4"), ["report"])
    assert ".svg" not in without["REPORT.md"] and "## Layouts weighed" in without["REPORT.md"]


def test_another_matplotlib_is_a_diagnostic_not_other_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import matplotlib

    from vllm_compile.render import RenderError, render_artifacts

    monkeypatch.setattr(matplotlib, "__version__", "3.99.0")
    with pytest.raises(RenderError, match=r"matplotlib 3\.10\.x .* 3\.99\.0") as err:
        render_artifacts(_plan("llama31-8b-l4"), ["charts"])
    assert err.value.path == ("deploy", "targets")
    profile = tmp_path / "p.yaml"
    profile.write_text(
        (ROOT / "profiles" / "llama31-8b-l4.yaml").read_text().replace("../schemas", "schemas")
    )
    result = api.compile_paths([profile], out_dir=tmp_path / "out")
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    [diag] = result.results[0].diagnostics
    assert diag.code == "render" and "matplotlib 3.10.x" in diag.message
