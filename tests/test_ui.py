"""ui/ routes without a browser (starlette's TestClient): the fleet order, the pages, what-if, compare.
The browser tests (test_ui_browser.py) drive the same app in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the [web] extra is not installed")
from starlette.testclient import TestClient  # noqa: E402

from tests.conftest import REPO, write  # noqa: E402
from vllm_compile import api, cli  # noqa: E402
from vllm_compile.ui.app import create_app  # noqa: E402

OK = "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 8192}\nhardware: {gpu_name: H100}\n"
PCIE = (
    "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 8192}\n"
    "hardware: {gpu_name: L40S, gpus: 2, interconnect: pcie}\nparallelism: {tensor_parallel_size: 2}\n"
)
HIGH = "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-70B-Instruct}\nhardware: {gpu_name: L4}\n"


@pytest.fixture(scope="module")
def bundled() -> TestClient:
    return TestClient(create_app([REPO / "profiles"], out_dir=REPO / "out"))


def _names(html: str) -> list[str]:
    return re.findall(r'<tr class="[^"]*" data-name="([^"]+)">', html)


def test_fleet_lists_every_bundled_profile(bundled: TestClient) -> None:
    html = bundled.get("/").text
    expected = {r.name for r in api.plan_fleet([REPO / "profiles"], out_dir=REPO / "out").results}
    assert len(expected) >= 9 and set(_names(html)) == expected
    assert "meta-llama/Llama-3.1-70B-Instruct" in html and "448,368" in html  # the 70B's KV tokens


def test_failing_profiles_come_first(tmp_path: Path) -> None:
    write(tmp_path / "a-ok.yaml", OK)
    write(tmp_path / "b-high.yaml", HIGH)
    write(tmp_path / "c-broken.yaml", "profile_version: 1\nmodel: {id: x}\nhardware: {gpus: 0}\n")
    html = TestClient(create_app([tmp_path], out_dir=tmp_path / "out")).get("/").text
    assert _names(html) == ["c-broken", "b-high", "a-ok"]
    assert "fails policy" in html and "risk-high" in html
    assert "hardware.gpu_name" in html or "gpu_name" in html  # the broken profile says why


def test_deployment_page_has_report_charts_decisions_and_warnings(bundled: TestClient) -> None:
    html = bundled.get("/d/llama31-8b-l4/").text
    assert html.count("<svg") == 3 and 'id="series-itl"' in html and 'id="chosen"' in html
    assert "Engine settings" in html and "recommended" in html  # decisions with reasons
    assert "Layouts weighed" in html and "<table>" in html
    svg = bundled.get("/d/llama31-8b-l4/memory.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and svg.text.startswith("<?xml")
    assert bundled.get("/d/no-such/").status_code == 404
    assert 'id="warnings"' not in html  # nothing to warn about: no empty box
    assert bundled.get("/d/llama31-8b-l4/REPORT.md").status_code == 404  # only charts are served


def test_deployment_page_puts_warnings_first(tmp_path: Path) -> None:
    write(tmp_path / "pcie.yaml", PCIE)
    client = TestClient(create_app([tmp_path], out_dir=tmp_path / "out"))
    html = client.get("/d/pcie/").text
    assert html.index('id="warnings"') < html.index('class="report"')
    assert "tensor parallel 2 over PCIe" in html


def test_what_if_replans_and_shows_the_diff(bundled: TestClient) -> None:
    html = bundled.get("/d/llama31-70b-h100-tp4/whatif", params={"max_model_len": "8192"}).text
    plan = api.what_if(REPO / "profiles" / "llama31-70b-h100-tp4.yaml", {"max_model_len": "8192"}).plan
    assert plan is not None and plan.engine.max_model_len == 8192
    assert f"{plan.memory.kv.max_concurrency:.2f}x" in html
    assert "-  max_model_len: 32768" in html and "+  max_model_len: 8192" in html
    bad = bundled.get("/d/llama31-70b-h100-tp4/whatif", params={"tensor_parallel_size": "3"}).text
    assert "does not compile" in bad and "valid sizes" in bad


def test_what_if_edits_keep_comments_and_switch_the_load_driver() -> None:
    w = api.what_if(REPO / "profiles" / "llama31-8b-l4.yaml", {"request_rate": "2.5", "gpu_name": "L40S"})
    assert w.plan is not None and w.plan.resolved.gpu.name == "NVIDIA L40S"
    assert "+  request_rate: 2.5" in w.diff and "-  concurrency: 8" in w.diff and "-  gpu_name: L4" in w.diff
    assert not any(line.startswith("-#") for line in w.diff.splitlines())  # comments stay


def test_compare_two_profiles_and_two_refs(bundled: TestClient) -> None:
    html = bundled.get("/compare", params={"a": "chat-prod", "b": "chat-staging"}).text
    assert "<th>chat-prod</th><th>chat-staging</th>" in html and "Lock diff" in html
    assert "-  max_num_seqs: 1024" in html and "+  max_num_seqs: 256" in html  # H100 vs L40S defaults
    same = bundled.get("/compare", params={"name": "chat-prod", "ref_a": "HEAD"}).text
    assert ("Lock diff" in same) or ("identical" in same) or ("no out/chat-prod" in same)
    bad = bundled.get("/compare", params={"name": "chat-prod", "ref_a": "--output=/tmp/x"}).text
    assert "no out/chat-prod/vllm.lock.yaml at --output=/tmp/x" in bad


def test_cli_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_run(app, host, port, log_level):
        seen.update(host=host, port=port)

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert cli.main(["ui", str(REPO / "profiles"), "--port", "9123"]) == 0
    assert seen == {"host": "127.0.0.1", "port": 9123}
    assert cli.main(["ui", str(REPO / "no-such-dir")]) == 2
