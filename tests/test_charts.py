"""charts/: golden SVGs from a bundled profile, the expected series, byte-identical in a fresh process.

Regenerate the goldens with `UPDATE_GOLDEN=1 pytest tests/test_charts.py`, then look at them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

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


def _tree(text: str) -> tuple[dict[str, ET.Element], dict[ET.Element, ET.Element]]:
    """Elements by SVG id, and each element's parent (namespaces dropped from the tags)."""
    root = ET.fromstring(text.encode())
    for node in root.iter():
        node.tag = node.tag.rsplit("}", 1)[-1]
    parents = {child: parent for parent in root.iter() for child in parent}
    return {n.get("id"): n for n in root.iter() if n.get("id")}, parents


def _desc(node: ET.Element, parents: dict[ET.Element, ET.Element]) -> str:
    """The value pygal writes beside a bar or a dot (`<desc class="value">`)."""
    found = parents[node].find("desc[@class='value']")
    assert found is not None and found.text is not None
    return found.text


def _points(path: ET.Element) -> list[tuple[float, float]]:
    """The vertices of a line: a <path> (`M x y L x y ...`), or the one in a series group."""
    if path.tag != "path":
        path = next(path.iter("path"))
    out: list[tuple[float, float]] = []
    command, pending = "M", []
    for token in re.findall(r"[MLVHZ]|-?\d+(?:\.\d+)?", path.get("d", "")):
        if token.isalpha():
            command = token
            continue
        pending.append(float(token))
        if command == "V":
            out.append((out[-1][0], pending.pop()))
        elif command == "H":
            out.append((pending.pop(), out[-1][1]))
        elif len(pending) == 2:
            out.append((pending[0], pending[1]))
            pending = []
    return out


def test_no_date_random_ids_js_or_machine_paths(charts) -> None:
    for files in charts.values():
        for text in files.values():
            assert "<!--" not in text and "<script" not in text  # pygal's dated comment, its config dump
            assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
            assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}", text)  # no uuid4 chart id
            assert re.search(r'<svg [^>]*id="chart-(memory|stack|layouts)"', text)
            assert str(Path.home()) not in text and "site-packages" not in text
            assert text.startswith("<?xml") and text.endswith("</svg>\n") and "\r" not in text
            root = ET.fromstring(text.encode())  # coordinates rounded to 0.01 px
            assert not [v for n in root.iter() for v in n.attrib.values() if re.search(r"\d\.\d{3,}", v)]


def test_memory_chart_has_every_term_per_stage(charts) -> None:
    from vllm_compile.charts.svg import gib, number

    plan = _plan("llama31-405b-2x8xh100")
    ids, parents = _tree(charts["llama31-405b-2x8xh100"]["memory.svg"])
    ranks = sorted(plan.memory.ranks, key=lambda r: r.pp_rank)
    assert len(ranks) == 2  # PP 2: one bar per stage
    fields = {
        "weights": "weights_bytes",
        "activation": "activation_peak_bytes",
        "non_torch": "non_torch_bytes",
        "cuda_graphs": "cuda_graph_bytes",
        "kv": "kv_cache_bytes",
        "baseline": "baseline_bytes",
    }
    for stage, rank in enumerate(ranks):
        bars = [ids[f"series-{k}-{stage}"] for k in [*fields, "free"]]
        for key, bar in zip(fields, bars, strict=False):  # each segment carries its GiB
            assert _desc(bar, parents) == number(gib(getattr(rank, fields[key])))
        # Stacked end to end, widths in proportion to the bytes.
        for a, b in zip(bars, bars[1:], strict=False):
            assert float(b.get("x")) == pytest.approx(float(a.get("x")) + float(a.get("width")), abs=0.02)
        per_gib = float(bars[0].get("width")) / gib(rank.weights_bytes)
        assert float(bars[4].get("width")) == pytest.approx(per_gib * gib(rank.kv_cache_bytes), abs=0.05)
        # The budget line is where the KV cache ends: vLLM gives the KV cache what the budget leaves.
        [(line_x, _y0), *_rest] = _points(ids["utilization"])
        kv_end = float(bars[4].get("x")) + float(bars[4].get("width"))
        assert line_x == pytest.approx(kv_end, abs=0.05)
    text = charts["llama31-405b-2x8xh100"]["memory.svg"]
    assert "PP stage 0" in text and "PP stage 1" in text
    assert "gpu_memory_utilization 0.92 (" in text and "does-not-start" not in text


def test_memory_chart_says_does_not_start(tmp_path: Path) -> None:
    """A budget too small for the weights: vLLM's start-up fails, and the chart says by how much."""
    from vllm_compile.charts.svg import gib

    profile = tmp_path / "p.yaml"
    profile.write_text(
        (ROOT / "profiles" / "llama31-8b-l4.yaml")
        .read_text()
        .replace("../schemas", "schemas")
        .replace("vllm:\n", "vllm:\n  gpu_memory_utilization: 0.5\n")
    )
    loaded = load_profile(profile, "p.yaml")
    plan = api.plan_profile(loaded.profile, name=loaded.name)
    [rank] = plan.memory.ranks
    assert rank.kv_cache_bytes < 0
    files = render_charts(plan)
    assert sorted(files) == ["layouts.svg", "memory.svg"]  # no curve: nothing runs
    ids, parents = _tree(files["memory.svg"])
    assert ids["does-not-start-0"].text == f"short by {gib(-rank.kv_cache_bytes):.2f} GiB: does not start"
    assert _desc(ids["series-kv-0"], parents) == "0"  # a negative KV cache is drawn as none
    assert "gpu_memory_utilization 0.50 (" in files["memory.svg"]


def test_performance_chart_series_slo_and_points(charts) -> None:
    from vllm_compile.charts.svg import number
    from vllm_compile.passes.workload import resolve_workload

    plan = _plan("llama31-8b-h100-fleet")
    perf = plan.performance
    assert perf is not None
    text = charts["llama31-8b-h100-fleet"]["performance.svg"]
    ids, parents = _tree(text)
    assert text.count("<svg") == 1  # three panels, one <svg> (the web page inlines one per chart)
    slo = resolve_workload(plan.resolved.profile.workload).slo
    for color, key, slos in (
        ("ttft", "ttft_ms", {"p99": slo.ttft_ms_p99}),
        ("itl", "itl_ms", {"": slo.itl_ms}),
        ("throughput", "output_tok_s", {}),
    ):
        line = _points(ids[f"series-{color}"])
        assert len(line) == len(perf.curve)
        values = [_desc(c, parents).split(": ")[-1] for c in ids[f"series-{color}-dots"].iter("circle")]
        assert values == [number(row[key]) for row in perf.curve]  # the estimate at each concurrency
        # y is linear in the value: map with the curve's ends, then check the lines drawn against it.
        (_x0, y0), (_x1, y1) = line[0], line[-1]
        v0, v1 = perf.curve[0][key], perf.curve[-1][key]

        def y_of(v: float, y0=y0, y1=y1, v0=v0, v1=v1) -> float:
            return y0 + (y1 - y0) * (v - v0) / (v1 - v0)

        for name, value in slos.items():
            assert value is not None
            gid = f"slo-{color}{'-' + name if name else ''}"
            (ax, ay), (bx, by) = _points(ids[gid])
            assert ay == by == pytest.approx(y_of(value), abs=0.3) and bx > ax
            assert f"SLO {name} {value:g}".replace("  ", " ") in text
        # The workload's operating point: on its vertical line, at the plan's value.
        star = ids[f"operating-point-{key}"].find(".//circle")
        assert star is not None and float(star.get("r")) > 3
        assert _desc(star, parents).split(": ")[-1] == number(getattr(perf, key).value)
        [(op_x, _a), (op_x2, _b)] = _points(ids[f"operating-point-line-{color}"])
        assert float(star.get("cx")) == pytest.approx(op_x, abs=0.02) == op_x2
        # The KV cache queues beyond its capacity: drawn to the right of the operating point.
        [(kv_x, _c), *_more] = _points(ids[f"kv-queue-{color}"])
        assert kv_x > op_x
        assert ids[f"range-{color}"].get("fill-opacity") == "0.18"  # the estimate's range
    assert "slo-ttft-p50" not in ids  # the preset declares no p50 TTFT target: no line
    # The layouts chart draws the ITL SLO as a vertical line, right of every layout faster than it.
    assert slo.itl_ms is not None
    layouts, _parents = _tree(charts["llama31-8b-h100-fleet"]["layouts.svg"])
    (ax, ay), (bx, by) = _points(layouts["slo-itl"])
    faster = [p for p in plan.layouts if p.starts and p.itl_ms is not None and p.itl_ms < slo.itl_ms]
    dots = [float(c.get("cx")) for g in ("series-within", "series-whatif") for c in layouts[g].iter("circle")]
    assert faster and ax == bx and ay != by and ax > max(dots)
    assert f"ITL SLO {slo.itl_ms:g} ms" in charts["llama31-8b-h100-fleet"]["layouts.svg"]
    assert f"workload: {perf.concurrency} in flight" in text and "KV cache full: queues beyond" in text


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
    from vllm_compile.charts.layouts import costed, y_value
    from vllm_compile.charts.svg import number

    by_cost = costed(plan.layouts)
    ids, parents = _tree(text)
    drawn = [p for p in plan.layouts if p.starts and p.itl_ms is not None]
    dots = {
        _desc(c, parents): (float(c.get("cx")), float(c.get("cy")))
        for gid in ("series-within", "series-whatif")
        for c in ids[gid].iter("circle")
    }
    assert len(list(ids["series-within"].iter("circle"))) == sum(p.within_profile for p in drawn)
    assert set(dots) == {f"{number(p.itl_ms)}: {number(y_value(p, by_cost))}" for p in drawn}
    # The chosen star and the runner-up sit on their layout's dot, the runner-up an open marker.
    for role, p in (("chosen", chosen[0]), ("runner-up", next(q for q in drawn if q.role == "runner-up"))):
        [mark] = ids[role].iter("circle")
        assert _desc(mark, parents) == f"{number(p.itl_ms)}: {number(y_value(p, by_cost))}"
        assert (float(mark.get("cx")), float(mark.get("cy"))) == dots[_desc(mark, parents)]
    assert "fill:none" in next(ids["runner-up"].iter("circle")).get("style", "")
    # The frontier passes through each frontier layout's dot, in ITL order (steps between when costed).
    vertices = _points(ids["frontier"])
    front = sorted((p for p in drawn if p.frontier), key=lambda p: p.itl_ms)
    corners = vertices[:: 2 if by_cost else 1]
    assert len(corners) == len(front) >= 2
    for (vx, vy), p in zip(corners, front, strict=True):
        cx, cy = dots[f"{number(p.itl_ms)}: {number(y_value(p, by_cost))}"]
        assert vx == pytest.approx(cx, abs=0.02) and vy == pytest.approx(cy, abs=0.02)


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


def test_chart_files_need_no_pygal() -> None:
    """REPORT.md names the charts without drawing: importing the compiler never imports pygal."""
    code = (
        "import sys; from vllm_compile.charts import chart_files; import vllm_compile.api, "
        "vllm_compile.render, vllm_compile.artifacts.report; "
        "print('pygal' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    assert chart_files(_plan("llama31-70b-h100-tp4")) == ["memory.svg", "performance.svg", "layouts.svg"]


def test_byte_identical_in_a_fresh_process(tmp_path: Path, charts) -> None:
    """Another process, another working directory, another hash seed, lxml refused: the same bytes."""
    code = (
        "import sys, json; from pathlib import Path; from vllm_compile import api; "
        "from vllm_compile.profile.loader import load_profile; from vllm_compile.charts import render_charts; "
        f"l = load_profile(Path({str(ROOT / 'profiles' / 'llama31-70b-h100-tp4.yaml')!r}), 'x'); "
        "print(json.dumps(render_charts(api.plan_profile(l.profile, name=l.name))))"
    )
    env = {**os.environ, "NO_LXML": "1", "PYTHONHASHSEED": "123", "PYGAL_KEEP_STATE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, env=env
    )
    import json

    assert json.loads(out.stdout) == charts["llama31-70b-h100-tp4"]


def test_xml_etree_even_where_pygal_would_pick_lxml(monkeypatch: pytest.MonkeyPatch, charts) -> None:
    """pygal serializes with lxml when it is installed; the charts force the standard library's."""
    from pygal.etree import etree

    class Fake:  # what pygal's wrapper would hold had it found lxml: never used by the charts
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"lxml-like etree used: {name}")

    monkeypatch.setattr(etree, "_etree", Fake())
    monkeypatch.setattr(etree, "lxml", True)
    assert render_charts(_plan("llama31-70b-h100-tp4")) == charts["llama31-70b-h100-tp4"]
    assert etree.lxml is False


def test_report_embeds_the_charts_with_relative_links(tmp_path: Path) -> None:
    from vllm_compile.render import render_artifacts

    files = render_artifacts(_plan("llama31-70b-h100-tp4"), ["report", "charts"])
    report = files["REPORT.md"]
    for name in ("memory.svg", "performance.svg", "layouts.svg"):
        assert name in files and re.search(rf"!\[[^\]]+\]\({name}\)", report)
    assert "## Layouts weighed" in report and "| TP4 | 4 |" in report and "chosen" in report
    without = render_artifacts(_plan("llama31-70b-h100-tp4"), ["report"])
    assert ".svg" not in without["REPORT.md"] and "## Layouts weighed" in without["REPORT.md"]


def test_another_pygal_is_a_diagnostic_not_other_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pygal

    from vllm_compile.render import RenderError, render_artifacts

    monkeypatch.setattr(pygal, "__version__", "3.2.0")
    with pytest.raises(RenderError, match=r"pygal 3\.1\.x .* 3\.2\.0") as err:
        render_artifacts(_plan("llama31-8b-l4"), ["charts"])
    assert err.value.path == ("deploy", "targets")
    profile = tmp_path / "p.yaml"
    profile.write_text(
        (ROOT / "profiles" / "llama31-8b-l4.yaml").read_text().replace("../schemas", "schemas")
    )
    result = api.compile_paths([profile], out_dir=tmp_path / "out")
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    [diag] = result.results[0].diagnostics
    assert diag.code == "render" and "pygal 3.1.x" in diag.message
