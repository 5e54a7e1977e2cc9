"""REPORT.md shows the cluster plan the lock holds (replicas, GPUs, nodes for the request rate)."""

from __future__ import annotations

from pathlib import Path

from vllm_compile.api import compile_paths, read_lock

from .conftest import REPO


def test_report_shows_the_locks_cluster_plan(tmp_path: Path) -> None:
    compile_paths(
        [REPO / "profiles" / "llama31-8b-h100-fleet.yaml", REPO / "profiles" / "llama31-8b-l4.yaml"],
        out_dir=tmp_path,
    )
    cluster = read_lock(tmp_path / "llama31-8b-h100-fleet" / "vllm.lock.yaml")["cluster"]
    report = (tmp_path / "llama31-8b-h100-fleet" / "REPORT.md").read_text(encoding="utf-8")
    section = report.split("## Cluster plan")[1].split("## Engine settings")[0]
    assert f"| Replicas | {cluster['replicas']} |" in section
    assert f"| GPUs in all | {cluster['total_gpus']} |" in section
    assert f"| Nodes in all | {cluster['total_nodes']} |" in section
    assert f"{cluster['cluster_rps']:.2f}" in section
    assert all(reason in section for reason in cluster["reasons"])
    assert "## Cluster plan" not in (tmp_path / "llama31-8b-l4" / "REPORT.md").read_text(encoding="utf-8")
