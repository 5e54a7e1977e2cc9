"""Speculative decoding, LoRA, multimodal limits and prefix reuse: every memory term against figures
computed here by hand from vLLM's formulas (shapes of the tensors vLLM allocates), and the extra_args
classification end to end.

Llama-3.1-8B-Instruct (config.json): 32 layers, hidden 4096, intermediate 14336, 32 heads, 8 KV heads,
head_dim 128, vocab 128256, bf16. EAGLE-3 head yuhuili/EAGLE3-LLaMA3.1-Instruct-8B: 1 layer of the same
shape, draft vocab 32000.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import write
from vllm_compile import api
from vllm_compile.diagnostics import ExitCode
from vllm_compile.resolve import ResolveError, resolve

EAGLE3 = '{"model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "num_speculative_tokens": 3, "method": "eagle3"}'
LORA_ARGS = ["--enable-lora", "--max-loras", "4", "--max-lora-rank", "64"]
H, INTER, L, V, HD, KVH, QH = 4096, 14336, 32, 128256, 128, 8, 32
T = 8192  # max_num_batched_tokens vLLM 0.33.0 picks on an H100 for `vllm serve`
BF16 = 2


def profile(extra: list[str] | None = None, *, version: str = "0.33.0", **sections) -> dict:
    data = {
        "profile_version": 1,
        "model": {"id": "meta-llama/Llama-3.1-8B-Instruct", "max_model_len": 8192},
        "hardware": {"gpu_name": "H100", "gpus": 1},
        "vllm": {"version": version, "extra_args": extra or [], **sections.pop("vllm", {})},
    }
    data.update(sections)
    return data


def plan(data: dict):
    return api.plan_profile(api.load_profile_dict(data))


def feature(p, name: str) -> int:
    return next(f.bytes_per_gpu for f in p.memory.features if f.name == name)


@pytest.fixture(scope="module")
def base():
    return plan(profile())


@pytest.fixture(scope="module")
def must():
    """The issue's profile: EAGLE-3 draft via --speculative-config and LoRA via extra_args."""
    return plan(profile(["--speculative-config", EAGLE3, *LORA_ARGS]))


def test_draft_weights_are_the_eagle3_head_as_vllm_builds_it(must, base) -> None:
    # llama_eagle3.py: qkv_proj reads [embeds, hidden] (2H) -> q + 2 kv; o_proj; gate_up + down; three
    # norms; fc 3H -> H; final norm; lm_head over the 32000-token draft vocabulary; d2t int64 map.
    layer = 2 * H * (QH * HD + 2 * KVH * HD) + QH * HD * H + 3 * H * INTER + 3 * H
    params = layer + 3 * H * H + H + 32000 * H
    expected = params * BF16 + 8 * 32000
    assert feature(must, "draft weights") == expected == 849_635_328  # 810 MiB, the ~811 MB checkpoint
    lora = feature(must, "LoRA buffers")
    assert must.memory.binding.weights_bytes - base.memory.binding.weights_bytes == expected + lora


def test_draft_kv_layer_shares_the_block_pool(must, base) -> None:
    # The draft's one attention layer joins the target's full-attention group: 33 layers per block.
    per_token_layer = 2 * KVH * HD * BF16  # K and V, 8 heads x 128, bf16
    assert base.memory.kv.bytes_per_token == 32 * per_token_layer
    assert must.memory.kv.bytes_per_token == 33 * per_token_layer == 135_168
    assert must.memory.kv.num_groups == 1
    assert must.memory.kv.bytes_per_block == 16 * 33 * per_token_layer
    assert must.memory.kv.num_blocks == must.memory.binding.kv_cache_bytes // (16 * 33 * per_token_layer)
    assert must.memory.kv.tokens < base.memory.kv.tokens


def test_lora_slots_by_hand(must) -> None:
    r, slots = 64, 4
    # base_linear.py create_lora_weights: A (slots, 1, r, in), B (slots, 1, out, r) per packed slice.
    qkv = 3 * r * H + r * (QH * HD + 2 * KVH * HD)  # column-parallel, 3 slices
    o = r * (QH * HD) + H * r  # row-parallel
    gate_up = 2 * r * H + 2 * INTER * r
    down = r * INTER + H * r
    expected = slots * L * (qkv + o + gate_up + down) * BF16
    assert feature(must, "LoRA buffers") == expected == 1_342_177_280  # 1.25 GiB


def test_lora_slots_shard_over_tp_and_cover_the_vocabulary_on_older_releases() -> None:
    r, slots = 64, 4
    tp2 = plan(profile(LORA_ARGS, hardware={"gpu_name": "H100", "gpus": 2}))
    qkv = 3 * r * H + r * (QH * HD + 2 * KVH * HD) // 2
    o = r * (QH * HD) // 2 + H * r
    gate_up = 2 * r * H + 2 * (INTER // 2) * r
    down = r * (INTER // 2) + H * r
    assert feature(tp2, "LoRA buffers") == slots * L * (qkv + o + gate_up + down) * BF16
    # 0.10.2 still has --lora-extra-vocab-size: embed_tokens and lm_head get LoRA slots too.
    old = plan(profile(LORA_ARGS, version="0.10.2"))
    linear = (
        slots * L * (3 * r * H + r * 6144 + r * 4096 + H * r + 2 * r * H + 2 * INTER * r + r * INTER + H * r)
    )
    embed = 256 * H + (V + 256) * r + H * r  # extra-vocab embeddings, A over vocab + extra, B
    head = r * H + V * r  # 128256 is already a multiple of the 256 padding
    assert feature(old, "LoRA buffers") == (linear + slots * (embed + head)) * BF16


def test_profile_run_holds_the_draft_buffers_and_lora_shrink_buffer(must, base) -> None:
    eagle3_aux = 3 * T * H * BF16  # three target hidden states kept for the draft
    proposer = T * H * BF16 + T * H * BF16  # EagleProposer hidden_states and inputs_embeds
    punica = 3 * T * 64 * 4  # fp32 [3 slices, tokens, rank]
    delta = must.memory.binding.activation_peak_bytes - base.memory.binding.activation_peak_bytes
    assert delta == eagle3_aux + proposer + punica


def test_cuda_graphs_are_sized_for_k_plus_one_tokens_per_request() -> None:
    spec = {"method": "eagle3", "model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "num_speculative_tokens": 3}
    with_spec = plan(profile(vllm={"max_num_seqs": 32, "speculative": spec}))
    without = plan(profile(vllm={"max_num_seqs": 32}))
    # ceiling min(max_num_seqs x (1 + K) x 2, 512) = 256 (64 without), every size a multiple of 4.
    assert max(without.engine.cudagraph_capture_sizes) == 32 * 2
    sizes = with_spec.engine.cudagraph_capture_sizes
    assert max(sizes) == 32 * 4 * 2 and all(s % 4 == 0 for s in sizes)
    assert sizes[:3] == [4, 8, 16]  # 1, 2, 4 -> 4 (once), 8, 16
    # The drafter's layer is in the CUDA graph estimate too.
    assert with_spec.memory.binding.cuda_graph_bytes > without.memory.binding.cuda_graph_bytes


def test_extra_args_plan_exactly_like_the_fields(must) -> None:
    fields = plan(
        profile(
            vllm={
                "speculative": json.loads(EAGLE3),
                "lora": {"max_loras": 4, "max_lora_rank": 64},
            }
        )
    )
    assert fields.memory.model_dump() == must.memory.model_dump()
    assert fields.performance == must.performance
    assert must.resolved.extra_args.not_modelled == []
    assert must.resolved.extra_args.modelled["--speculative-config"] == "vllm.speculative"


def test_itl_follows_the_acceptance_rate(base, must) -> None:
    itl = {
        a: plan(
            profile(["--speculative-config", EAGLE3], workload={"spec_acceptance_rate": a})
        ).performance.itl_ms
        for a in (0.4, 0.74, 0.95)
    }
    assert itl[0.4].value > itl[0.74].value > itl[0.95].value
    assert itl[0.74].value < base.performance.itl_ms.value
    # The range spans the acceptance assumption: wider than the plain +-20%.
    r = must.performance.itl_ms
    assert r.high / r.value > 1.2 + 1e-6
    assert any("acceptance rate 0.74" in a for a in must.performance.assumptions)


def test_tokens_per_step_formula() -> None:
    from vllm_compile.passes.speculative import tokens_per_step

    assert tokens_per_step(0.5, 3) == pytest.approx(1 + 0.5 + 0.25 + 0.125)
    assert tokens_per_step(0.0, 3) == 1.0
    assert tokens_per_step(0.9, 0) == 1.0


def test_ngram_has_no_draft_weights_but_k_plus_one_graphs() -> None:
    p = plan(profile(["--speculative-config", '{"method": "ngram", "num_speculative_tokens": 4}']))
    assert p.resolved.draft is None
    assert p.memory.kv.bytes_per_token == 32 * 2 * KVH * HD * BF16
    assert all(s % 5 == 0 for s in p.engine.cudagraph_capture_sizes)


def test_setting_a_field_and_its_flag_is_an_error_at_the_field() -> None:
    data = profile(["--max-num-seqs", "32"], vllm={"max_num_seqs": 64})
    with pytest.raises(ResolveError) as err:
        resolve(api.load_profile_dict(data), "x")
    assert err.value.path == ("vllm", "max_num_seqs")
    spec = profile(["--speculative-config", EAGLE3], vllm={"speculative": json.loads(EAGLE3)})
    with pytest.raises(ResolveError) as err:
        resolve(api.load_profile_dict(spec), "x")
    assert err.value.path == ("vllm", "speculative")


def test_modelled_engine_flags_are_read_into_the_plan() -> None:
    p = plan(profile(["--max-num-seqs", "48", "--block-size=32", "--gpu_memory_utilization", "0.8"]))
    assert (p.engine.max_num_seqs, p.engine.block_size, p.engine.gpu_memory_utilization) == (48, 32, 0.8)
    assert p.decisions["max_num_seqs"].reason == "from vllm.extra_args --max-num-seqs"
    assert p.resolved.profile.vllm.extra_args == []  # emitted once, as the field


def test_cuda_graph_sizes_flag_is_read_per_release() -> None:
    old = plan(profile(["--cuda-graph-sizes", "128"], version="0.10.2"))
    assert max(old.engine.cudagraph_capture_sizes) == 128  # one value = the cap before 0.11.1
    new = plan(profile(["--cudagraph-capture-sizes", "1", "2", "4", "64"]))
    assert new.engine.cudagraph_capture_sizes == [1, 2, 4, 64]


def test_unknown_draft_says_what_to_do() -> None:
    data = profile(
        [
            "--speculative-config",
            '{"method": "eagle3", "model": "someone/not-a-draft", "num_speculative_tokens": 2}',
        ]
    )
    with pytest.raises(ResolveError, match="not in the built-in draft catalog"):
        resolve(api.load_profile_dict(data), "x")


def test_text_only_multimodal_skips_the_encoder_profile_run() -> None:
    mm = {"profile_version": 1, "model": {"id": "google/gemma-3-4b-it", "max_model_len": 8192},
          "hardware": {"gpu_name": "H100"}}  # fmt: skip
    with_images = plan(mm)
    text = plan({**mm, "vllm": {"limit_mm_per_prompt": {"image": 0}}})
    facts = with_images.resolved.model
    t = with_images.engine.max_num_batched_tokens
    encoder = max(t, facts.mm_tokens_per_item) * facts.hidden_size * BF16 + t * facts.hidden_size * BF16
    delta = with_images.memory.binding.activation_peak_bytes - text.memory.binding.activation_peak_bytes
    assert delta == encoder
    assert "--limit-mm-per-prompt" in " ".join(text.resolved.profile.vllm.extra_args)


def test_prefix_reuse_cuts_ttft(base) -> None:
    reused = plan(profile(workload={"prefix_reuse": 0.8}))
    assert reused.performance.ttft_ms.value < base.performance.ttft_ms.value
    assert any("prefix cache: 80%" in a for a in reused.performance.assumptions)


def _git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)


def test_not_modelled_flag_warns_and_can_fail_the_compile(tmp_path: Path) -> None:
    _git(tmp_path)
    args = [
        "--speculative-config",
        EAGLE3,
        *LORA_ARGS,
        "--long-prefill-token-threshold",
        "512",
        "--api-key",
        "k",
    ]
    text = "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct, max_model_len: 8192}\n"
    text += "hardware: {gpu_name: H100}\nvllm:\n  extra_args: " + json.dumps(args) + "\n"
    path = write(tmp_path / "p.yaml", text)
    result = api.compile_paths([path], out_dir=tmp_path / "out")
    [item] = result.results
    codes = [(d.code, d.severity, d.line) for d in item.diagnostics]
    assert codes == [("not-modelled", "warning", 5)]
    assert "--long-prefill-token-threshold" in item.diagnostics[0].message
    assert result.exit_code == ExitCode.OK
    lock = (tmp_path / "out" / "p" / "vllm.lock.yaml").read_text()
    report = (tmp_path / "out" / "p" / "REPORT.md").read_text()
    assert "not-modelled: vllm.extra_args --long-prefill-token-threshold" in lock
    assert "--long-prefill-token-threshold" in report and "**not modelled**" in report
    assert "draft weights" in report and "LoRA buffers" in report
    failing = write(tmp_path / "q.yaml", text + "policy: {fail_on_unmodelled: true}\n")
    result = api.compile_paths([failing], out_dir=tmp_path / "out")
    assert result.exit_code == ExitCode.POLICY
    assert [(d.code, d.severity) for d in result.results[0].diagnostics] == [("not-modelled", "error")]


def test_flags_the_release_refuses_stay_errors(tmp_path: Path) -> None:
    _git(tmp_path)
    text = "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct}\nhardware: {gpu_name: H100}\n"
    text += 'vllm:\n  extra_args: ["--long-prefil-token-threshold", "512"]\n'
    result = api.compile_paths([write(tmp_path / "p.yaml", text)], out_dir=tmp_path / "out")
    assert result.exit_code == ExitCode.INVALID
    assert "did you mean --long-prefill-token-threshold?" in result.results[0].diagnostics[0].message
    # A LoRA option the targeted release does not have is refused like any flag.
    text = "profile_version: 1\nmodel: {id: meta-llama/Llama-3.1-8B-Instruct}\nhardware: {gpu_name: H100}\n"
    text += "vllm: {version: 0.8.5, lora: {target_modules: [q_proj]}}\n"
    result = api.compile_paths([write(tmp_path / "q.yaml", text)], out_dir=tmp_path / "out")
    assert result.exit_code == ExitCode.INVALID
    assert "--lora-target-modules" in result.results[0].diagnostics[0].message


def test_feature_flags_reach_every_artifact(must) -> None:
    from vllm_compile.render import render_artifacts

    files = render_artifacts(must, ["command", "vllm-config", "compose", "k8s"])
    serve = files["serve.sh"]
    assert '"method":"eagle3"' in serve and "--enable-lora" in serve and "--max-lora-rank 64" in serve
    assert "speculative-config" in files["vllm-config.yaml"]


def test_recommender_proposes_speculative_decoding_only_where_latency_bound() -> None:
    interactive = plan(profile(workload={"preset": "interactive"}))
    assert interactive.resolved.profile.vllm.speculative is None  # never on by itself
    [proposal] = [n for n in interactive.performance.notes if n.startswith("proposal:")]
    assert "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B" in proposal and "fewer KV tokens" in proposal
    chat = plan(profile(workload={"preset": "chatbot"}))  # balanced objective: no proposal
    assert not any(n.startswith("proposal:") for n in chat.performance.notes)
    allowed = plan(profile(workload={"preset": "interactive"}, policy={"allow_speculative": True}))
    assert allowed.decisions["speculative"].by == "recommended"
    assert allowed.decisions["speculative"].runner_up == "off"
    assert allowed.resolved.draft is not None
    assert allowed.memory.kv.tokens < interactive.memory.kv.tokens
    assert allowed.performance.itl_ms.value < interactive.performance.itl_ms.value
    assert "--speculative-config" in allowed.resolved.profile.vllm.extra_args


def _versions() -> list[str]:
    from vllm_compile.facts.vllm_versions import SUPPORTED_VERSIONS

    return list(SUPPORTED_VERSIONS)


@pytest.mark.parametrize("version", _versions())
def test_feature_artifacts_pass_the_consumer_checks_on_every_release(version: str, tmp_path: Path) -> None:
    """The issue's profile (plus a multimodal limit) through every supported release: flags checked against
    that release's flag set, serve.sh through shellcheck, compose, Kubernetes and the chart values."""
    import yaml

    from tests.fixtures import artifact_checks as checks
    from vllm_compile.facts import vllm_flags
    from vllm_compile.render import render_artifacts

    p = plan(profile(["--speculative-config", EAGLE3, *LORA_ARGS, "--api-key", "k"], version=version))
    files = render_artifacts(p, ["command", "vllm-config", "compose", "helm", "k8s", "report"])
    argv = checks.serve_argv(files["serve.sh"])
    assert vllm_flags.check_args(version, argv[3:]) == []
    assert "--speculative-config" in argv and "--enable-lora" in argv
    fs = vllm_flags.flag_set(version)
    assert all(f"--{k}" in fs.strings for k in yaml.safe_load(files["vllm-config.yaml"]))
    (tmp_path / "serve.sh").write_text(files["serve.sh"])
    assert checks.shellcheck_errors(tmp_path / "serve.sh") == []
    assert checks.compose_errors(files["docker-compose.yaml"]) == []
    assert checks.helm_errors(files["helm-values.yaml"]) == []
    for rel, text in files.items():
        if rel.startswith("k8s/"):
            assert all(checks.k8s_errors(obj) == [] for obj in checks.load_docs(text)), rel


def test_human_readable_lengths_are_read_as_vllm_reads_them() -> None:
    p = plan(profile(["--max-num-batched-tokens", "16K"], model={"id": "meta-llama/Llama-3.1-8B-Instruct"}))
    assert p.engine.max_num_batched_tokens == 16384
    q = plan({**profile(["--max-model-len", "32k"]), "model": {"id": "meta-llama/Llama-3.1-8B-Instruct"}})
    assert q.engine.max_model_len == 32000


def test_mtp_uses_the_models_own_layer_with_mla_pages() -> None:
    ds = {"id": "deepseek-ai/DeepSeek-V3", "max_model_len": 32768}
    hw = {"gpu_name": "H200", "gpus": 8}
    spec = {"method": "deepseek_mtp", "num_speculative_tokens": 1}
    p = plan({"profile_version": 1, "model": ds, "hardware": hw, "vllm": {"speculative": spec}})
    b = plan({"profile_version": 1, "model": ds, "hardware": hw})
    mla_page = (512 + 64) * BF16  # latent + rope key per token, whole on every rank
    assert b.memory.kv.bytes_per_token == 61 * mla_page
    assert p.memory.kv.bytes_per_token == 62 * mla_page  # + the one MTP layer
    assert p.resolved.draft.own_embed_tokens is False and p.resolved.draft.own_lm_head is False
    # num_nextn_predict_layers=1 block + eh_proj, embed and head shared: FP8 weights, 1 byte each, over TP 8.
    assert 0 < feature(p, "draft weights") < 2 * 2**30
    assert p.performance.itl_ms.value < b.performance.itl_ms.value


def test_neutral_flags_pass_through_and_name_and_port_are_read_into_their_fields() -> None:
    p = plan(
        profile(
            [
                "--api-key",
                "secret",
                "--served-model-name",
                "chat",
                "--port",
                "9000",
                "--uvicorn-log-level",
                "warning",
            ]
        )
    )
    assert p.resolved.profile.model.served_model_name == "chat" and p.resolved.profile.deploy.port == 9000
    assert p.resolved.extra_args.neutral == ["--api-key", "--uvicorn-log-level"]
    assert p.resolved.extra_args.not_modelled == []
    assert p.resolved.profile.vllm.extra_args == ["--api-key", "secret", "--uvicorn-log-level", "warning"]


def test_plan_command_takes_the_features_as_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from vllm_compile.cli import main

    # 417,392: 49 capture sizes (multiples of 1+K, passes.speculative) cost less graph memory than 51 (passes.capture_sizes).
    code = main(
        ["plan", "-m", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100", "--max-model-len", "8192",
         "--speculative-method", "eagle3", "--speculative-model", "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B",
         "--num-speculative-tokens", "3", "--max-loras", "4", "--max-lora-rank", "64"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "417,392 tokens" in out and "draft weights 0.79 GiB" in out and "LoRA buffers 1.25 GiB" in out


def test_skip_mm_profiling_reserves_no_encoder_memory() -> None:
    mm = {"profile_version": 1, "model": {"id": "google/gemma-3-4b-it", "max_model_len": 8192},
          "hardware": {"gpu_name": "H100"}}  # fmt: skip
    full = plan(mm)
    skipped = plan({**mm, "vllm": {"extra_args": ["--skip-mm-profiling"]}})
    assert skipped.memory.binding.activation_peak_bytes < full.memory.binding.activation_peak_bytes
    assert skipped.memory.binding.weights_bytes == full.memory.binding.weights_bytes  # the tower is loaded
    assert skipped.resolved.extra_args.not_modelled == []
    assert any("--skip-mm-profiling" in a for a in skipped.memory.assumptions)


def test_the_profile_artifact_round_trips(must) -> None:
    import yaml

    from vllm_compile.render import render_artifacts

    text = render_artifacts(must, ["profile"])["profile.yaml"]
    data = yaml.safe_load(text)
    assert data["vllm"]["speculative"]["method"] == "eagle3" and data["vllm"]["lora"]["max_loras"] == 4
    assert "--speculative-config" not in data["vllm"].get("extra_args", [])
    again = plan(data)
    assert again.memory.model_dump() == must.memory.model_dump()


def test_aliases_negations_and_unmodelled_classes() -> None:
    p = plan(
        profile(
            [
                "-tp",
                "2",
                "--no-enable-prefix-caching",
                "--compilation-config",
                '{"level": 3}',
                "--scheduling-policy",
                "priority",
            ],
            hardware={"gpu_name": "H100", "gpus": 2},
        )
    )
    assert p.engine.tensor_parallel_size == 2 and p.engine.enable_prefix_caching is False
    report = p.resolved.extra_args
    assert report.modelled == {
        "-tp": "parallelism.tensor_parallel_size",
        "--no-enable-prefix-caching": "vllm.enable_prefix_caching",
    }
    flags = {n.flag: n.may_change for n in report.not_modelled}
    assert set(flags) == {"--compilation-config", "--scheduling-policy"}
    assert "CUDA graph" in flags["--compilation-config"] and "TTFT" in flags["--scheduling-policy"]
    assert p.resolved.profile.vllm.extra_args == [
        "--compilation-config",
        '{"level": 3}',
        "--scheduling-policy",
        "priority",
    ]
    assert sum(w.startswith("not-modelled:") for w in p.verdict.warnings) == 2
