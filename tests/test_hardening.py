"""Bad input is a diagnostic (exit 2), a bug is exit 3, out/ survives interruption, layouts real boxes have."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from vllm_compile import api
from vllm_compile.cli import main
from vllm_compile.diagnostics import ExitCode
from vllm_compile.write import STAGING_DIR

BASE = "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 8192}\n"
H100 = BASE + "hardware: {gpu_name: H100, gpus: 1}\n"


def _laughs() -> str:
    lines = [H100.rstrip("\n"), 'a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\nz: *a9\n"


# (profile text, diagnostic code expected on the first error)
BAD = {
    "t4-bf16": (
        "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct, dtype: bfloat16, "
        "max_model_len: 4096}\nhardware: {gpu_name: T4}\n",
        "setting",
    ),
    "custom": (H100 + "workload: {preset: custom}\n", "workload"),
    "dist": (H100 + "workload: {prompt_tokens: {mean: 100, p99: 50}, gen_tokens: 10}\n", "workload"),
    "control-char": (H100 + "# a bell \x07 in a comment\n", "yaml"),
    "vram-inf": (BASE + "hardware: {gpu_name: H100, vram_gib: .inf}\n", "range"),
    "rate-inf": (H100 + "workload: {request_rate: .inf}\n", "range"),
    "rate-nan": (H100 + "workload: {request_rate: .nan}\n", None),
    "vram-tiny": (BASE + "hardware: {gpu_name: H100, vram_gb: 1e-320}\n", "range"),
    "params-huge": (
        "profile_version: 1\nmodel: {id: org/x, params_b: 1e308}\nhardware: {gpu_name: H100}\n",
        "range",
    ),
    "gpus-1024": (BASE + "hardware: {gpu_name: H100, gpus: 1024}\n", "setting"),
    "long-id": (
        "profile_version: 1\nmodel: {id: a/" + "b" * 1100 + "}\nhardware: {gpu_name: H100}\n",
        "limit",
    ),
    "prompt-1e10": (H100 + "workload: {prompt_tokens: 10000000000, gen_tokens: 10}\n", "range"),
    "alias-bomb": (_laughs(), "limit"),
    "deep": (H100 + "x: " + "[" * 5000 + "]" * 5000 + "\n", "limit"),
    "big-file": (H100 + "x:\n" + "".join(f"  k{i}: {i}\n" for i in range(40000)), "limit"),
    "env-newline": (H100 + 'deploy:\n  env: {"A\\nB": "1"}\n', "value"),
    "secret-newline": (H100 + 'deploy:\n  hf_token_secret: "tok\\n"\n', "value"),
    "dash-id": (
        'profile_version: 1\nmodel: {id: "--trust-remote-code"}\nhardware: {gpu_name: H100}\n',
        "value",
    ),
    "pp-over-layers": (H100 + "parallelism: {pipeline_parallel_size: 64}\n", "setting"),
    "no-version": (
        "model: {id: meta-llama/Llama-3.1-8B-Instruct}\nhardware: {gpu_name: H100}\n",
        "missing-key",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_a_diagnostic(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, code = BAD[name]
    (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    start = time.perf_counter()
    rc = main([str(tmp_path / f"{name}.yaml"), "--out", str(tmp_path / "out")])
    elapsed = time.perf_counter() - start
    out = capsys.readouterr()
    assert rc == ExitCode.INVALID, out.out + out.err
    assert "Traceback" not in out.out + out.err and "internal-error" not in out.out + out.err
    assert elapsed < 2.0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.yaml"))  # out/ as it was
    if code:
        assert f": {code}: " in out.out + out.err, out.out + out.err


def test_missing_profile_version_hints_the_wizard_format(tmp_path: Path) -> None:
    path = tmp_path / "wizard.yaml"
    path.write_text(BAD["no-version"][0])
    result = api.compile_paths([path], out_dir=tmp_path / "out")
    assert any("add `profile_version: 1`" in d.message for r in result.results for d in r.diagnostics)


def test_merge_keys_and_anchors_are_read(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "profile_version: 1\nmodel: &m {id: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 8192}\n"
        "hardware:\n  <<: {gpu_name: H100, gpus: 2}\n  gpus: 1\n"
    )
    loaded = api.load_profile(path)
    assert loaded.profile.hardware.gpu_name == "H100" and loaded.profile.hardware.gpus == 1  # explicit wins


def test_an_internal_error_is_exit_3_and_debug_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(H100)

    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(api, "plan_resolved", broken)
    assert main([str(path), "--out", str(tmp_path / "out")]) == ExitCode.INTERNAL
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "internal-error" in shown and "TypeError" in shown and "--debug" in shown
    monkeypatch.delenv("VLLM_COMPILE_DEBUG", raising=False)
    with pytest.raises(TypeError):
        main([str(path), "--out", str(tmp_path / "out"), "--debug"])
    monkeypatch.delenv("VLLM_COMPILE_DEBUG", raising=False)


def test_num_gpu_blocks_override_past_the_gpu_does_not_start(tmp_path: Path) -> None:
    path = tmp_path / "blocks.yaml"
    path.write_text(H100 + "vllm: {num_gpu_blocks_override: 100000}\n")  # ~195 GiB of KV on an 80 GB GPU
    result = api.compile_paths([path], out_dir=tmp_path / "out")
    (item,) = result.results
    assert item.summary["starts"] is False and item.summary["oom_risk"] == "HIGH"
    assert "num_gpu_blocks_override 100,000" in item.summary["reasons"][0]
    path.write_text(H100 + "vllm: {num_gpu_blocks_override: 1000}\n")
    (item,) = api.compile_paths([path], out_dir=tmp_path / "out").results
    assert item.summary["starts"] is True


@pytest.mark.parametrize(
    ("model", "gpu", "gpus"),
    [("Qwen/Qwen2.5-7B-Instruct", "RTX 4090", 2), ("meta-llama/Llama-3.1-8B-Instruct", "RTX 3090", 4)],
)
def test_a_box_of_consumer_gpus_is_one_node(model: str, gpu: str, gpus: int, tmp_path: Path) -> None:
    path = tmp_path / "box.yaml"
    path.write_text(
        f"profile_version: 1\nmodel: {{id: {model}, max_model_len: 8192}}\n"
        f"hardware: {{gpu_name: {gpu}, gpus: {gpus}}}\nworkload: {{preset: chatbot}}\n"
        "deploy: {targets: [command, compose]}\n"
    )
    result = api.compile_paths([path], out_dir=tmp_path / "out")
    assert result.exit_code == ExitCode.OK, [d.format() for r in result.results for d in r.diagnostics]
    out = tmp_path / "out" / "box"
    lock = yaml.safe_load((out / "vllm.lock.yaml").read_text())
    engine = lock["engine"]
    assert (
        engine["tensor_parallel_size"] * engine["pipeline_parallel_size"] * engine["data_parallel_size"]
        == gpus
    )
    assert engine["tensor_parallel_size"] > 1  # the heads divide: tensor parallel, not pipeline
    compose = yaml.safe_load((out / "docker-compose.yaml").read_text())
    assert "ray" not in (out / "serve.sh").read_text()
    assert compose["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]["count"] == gpus


def test_pipeline_parallel_inside_a_node_where_heads_do_not_divide(tmp_path: Path) -> None:
    path = tmp_path / "three.yaml"
    path.write_text(  # 32 heads, 8 KV heads: TP 3 cannot shard them; 3 stages can
        "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 8192}\n"
        "hardware: {gpu_name: RTX 4090, gpus: 3}\nparallelism: {data_parallel_size: 1}\n"
    )
    (item,) = api.compile_paths([path], out_dir=tmp_path / "out").results
    lock = yaml.safe_load((tmp_path / "out" / "three" / "vllm.lock.yaml").read_text())
    assert (lock["engine"]["tensor_parallel_size"], lock["engine"]["pipeline_parallel_size"]) == (1, 3)


def test_seven_gpus_use_all_seven(tmp_path: Path) -> None:
    path = tmp_path / "seven.yaml"
    path.write_text(
        "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-70B-Instruct, max_model_len: 8192}\n"
        "hardware: {gpu_name: H100, gpus: 7, gpus_per_node: 8}\n"
    )
    (item,) = api.compile_paths([path], out_dir=tmp_path / "out").results
    assert item.summary["starts"] and item.summary["gpus"] == 7


def test_explicit_tp_gets_no_unrequested_data_parallelism(tmp_path: Path) -> None:
    path = tmp_path / "tp2.yaml"
    path.write_text(BASE + "hardware: {gpu_name: H100, gpus: 4}\nparallelism: {tensor_parallel_size: 2}\n")
    api.compile_paths([path], out_dir=tmp_path / "out")
    engine = yaml.safe_load((tmp_path / "out" / "tp2" / "vllm.lock.yaml").read_text())["engine"]
    assert (engine["tensor_parallel_size"], engine["data_parallel_size"]) == (2, 1)


def test_leftover_temporary_files_are_reported_and_removed(tmp_path: Path) -> None:
    src = tmp_path / "p.yaml"
    src.write_text(H100)
    out = tmp_path / "out"
    assert api.compile_paths([src], out_dir=out).exit_code == ExitCode.OK
    assert not (out / STAGING_DIR).exists()
    (out / STAGING_DIR).mkdir()
    (out / STAGING_DIR / "123-0.tmp").write_text("half a fi")  # what a kill -9 leaves
    (out / "p" / ".serve.sh.99.tmp").write_text("old style")
    checked = api.compile_paths([src], out_dir=out, check=True)
    assert checked.exit_code == ExitCode.POLICY and len(checked.leftovers) == 2
    assert any(d.code == "leftover" for d in checked.diagnostics)
    assert api.compile_paths([src], out_dir=out).exit_code == ExitCode.OK
    assert not (out / STAGING_DIR).exists() and not list(out.rglob("*.tmp"))
    assert api.compile_paths([src], out_dir=out, check=True).exit_code == ExitCode.OK


def test_emit_is_part_of_the_inputs(tmp_path: Path) -> None:
    src = tmp_path / "p.yaml"
    src.write_text(H100)
    out = tmp_path / "out"
    api.compile_paths([src], out_dir=out)
    (item,) = api.compile_paths([src], out_dir=out, emit=["command"]).results
    assert not item.reused and sorted(p.name for p in (out / "p").iterdir()) == ["serve.sh", "vllm.lock.yaml"]
    # The plain run and --check agree: both see the lock written under --emit as out of date.
    assert api.compile_paths([src], out_dir=out, check=True).exit_code == ExitCode.POLICY
    (item,) = api.compile_paths([src], out_dir=out).results
    assert not item.reused and item.changes
    assert api.compile_paths([src], out_dir=out, check=True).exit_code == ExitCode.OK


def test_compiles_into_one_out_are_serialised(tmp_path: Path) -> None:
    import fcntl
    import os
    import threading

    from vllm_compile.write import out_lock

    out = tmp_path / "out"
    held = threading.Event()
    order: list[str] = []

    def first() -> None:
        with out_lock(out, shared=False):
            held.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    fd = os.open(tmp_path, os.O_RDONLY)  # the lock is on the folder holding out/
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    with out_lock(out, shared=False):
        order.append("second")
    thread.join()
    assert order == ["first done", "second"]


def test_catalog_model_with_a_revision_compiles_offline(tmp_path: Path) -> None:
    path = tmp_path / "rev.yaml"
    path.write_text(
        "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct, revision: main, max_model_len: 8192}\n"
        "hardware: {gpu_name: H100}\n"
    )
    result = api.compile_paths([path], out_dir=tmp_path / "out")
    assert result.exit_code == ExitCode.OK
    lock = (tmp_path / "out" / "rev" / "vllm.lock.yaml").read_text()
    assert "is not pinned (HF_HUB_OFFLINE=1)" in lock


def test_a_local_model_path_is_relative_to_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "models" / "tiny-llama-awq"
    shutil.copytree(fixture, tmp_path / "models" / "tiny")
    (tmp_path / "profiles").mkdir()
    path = tmp_path / "profiles" / "local.yaml"
    path.write_text(
        "profile_version: 1\nmodel: {id: ../models/tiny, max_model_len: 4096}\nhardware: {gpu_name: H100}\n"
    )
    monkeypatch.chdir(tmp_path / "models")  # not where the path points from
    result = api.compile_paths([path], out_dir=tmp_path / "out")
    assert result.exit_code == ExitCode.OK, [d.format() for r in result.results for d in r.diagnostics]


def test_vram_gb_override_is_said(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(
        "profile_version: 1\nmodel: {id: Qwen/Qwen2.5-7B-Instruct, max_model_len: 8192}\n"
        "hardware: {gpu_name: RTX 4090, vram_gb: 24}\n"
    )
    (item,) = api.compile_paths([path], out_dir=tmp_path / "out").results
    (note,) = [w for w in item.summary["warnings"] if "overrides the catalog" in w]
    assert "22.35 GiB" in note and "23.99 GiB" in note


def test_a_prompt_past_max_model_len_plans_fast_and_says_vllm_rejects_it(tmp_path: Path) -> None:
    # Found by the schema-edge fuzz: p50 2**24 tokens on 8 x RTX 4090 took 3.7 s.
    path = tmp_path / "long.yaml"
    path.write_text(
        "profile_version: 1\nmodel: {id: Qwen/Qwen3-8B, max_model_len: 8192}\n"
        "hardware: {gpu_name: RTX 4090, gpus: 8}\nworkload: {prompt_tokens: {p50: 16777216}}\n"
    )
    start = time.perf_counter()
    result = api.compile_paths([path], out_dir=tmp_path / "out")
    assert time.perf_counter() - start < 2.0
    assert result.exit_code == ExitCode.OK
    (item,) = result.results
    assert any("exceeds max_model_len 8,192: vLLM rejects" in d.message for d in item.diagnostics)
