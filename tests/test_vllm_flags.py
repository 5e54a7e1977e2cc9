"""The flags vLLM accepts per release, and how decided settings are spelt for each."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fixtures.artifact_plans import LLAMA_70B, make_plan
from vllm_compile.facts import vllm_flags
from vllm_compile.facts.vllm_flags import FlagError, check_args, flag_set, plan_argv, setting
from vllm_compile.facts.vllm_versions import SUPPORTED_VERSIONS

SHARED = Path(__file__).resolve().parents[2] / "shared"


def test_every_supported_release_has_flags_read_from_its_parser() -> None:
    assert vllm_flags.carried_versions() == SUPPORTED_VERSIONS
    for version in SUPPORTED_VERSIONS:
        fs = flag_set(version)
        assert fs.exact and fs.base == version
        raw = vllm_flags._release(version)
        assert raw["source"].startswith(f"vllm=={version} installed from PyPI"), version
        assert len(fs.flags) > 100 and "--max-model-len" in fs.flags


def test_a_patch_release_uses_the_nearest_lower_file() -> None:
    fs = flag_set("0.19.1")
    assert (fs.base, fs.exact) == ("0.19.0", False)
    with pytest.raises(FlagError, match="older than the oldest"):
        flag_set("0.7.3")


@pytest.mark.parametrize("version", ["0.8.5", "0.10.2", "0.33.0"])
def test_the_static_wheel_extraction_agrees_with_the_parser(version: str) -> None:
    """Reads ../shared/reference/vllm-flags directly; skips without it. Same options; every option
    string the static extraction found is one the real parser accepts."""
    path = SHARED / "reference" / "vllm-flags" / f"{version}.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    ref = [e for e in json.loads(path.read_text()) if not e.get("positional")]
    fs = flag_set(version)
    assert set(fs.flags) == {e["name"] for e in ref}
    strings = {
        s for e in ref for s in (e["name"], *e.get("aliases", ()), e.get("negation"), e.get("inverse")) if s
    }
    assert strings <= set(fs.strings)


def test_unknown_flag_gets_a_did_you_mean() -> None:
    assert check_args("0.33.0", ["--gpu-memory-utilisation", "0.9"]) == [
        "unknown flag --gpu-memory-utilisation for vLLM 0.33.0; did you mean --gpu-memory-utilization?"
    ]


def test_removed_renamed_and_later_flags_are_explained() -> None:
    assert check_args("0.33.0", ["--swap-space", "4"]) == [
        "unknown flag --swap-space for vLLM 0.33.0: removed in vLLM 0.18.0 (vLLM 0.17.0 was the last with it)"
    ]
    assert check_args("0.17.0", ["--swap-space", "4"]) == []
    assert check_args("0.8.5", ["--max-cudagraph-capture-size", "64"]) == [
        "unknown flag --max-cudagraph-capture-size for vLLM 0.8.5: first in vLLM 0.11.1"
    ]


@pytest.mark.parametrize(
    ("version", "flag", "accepted"),
    [
        # Refused by the real parsers although the former approximation let them through (issue #10).
        ("0.19.0", "--cuda-graph-sizes", False),
        ("0.19.0", "--guided-decoding-backend", False),
        ("0.19.0", "--rope-theta", False),
        ("0.19.0", "--preemption-mode", False),
        ("0.19.0", "--disable-frontend-multiprocessing", False),
        ("0.13.0", "--num-lookahead-slots", False),
        ("0.10.0", "--device", False),
        # Accepted by the real parsers although the approximation refused them.
        ("0.12.0", "--disable-log-requests", True),
        ("0.13.0", "--disable-log-requests", True),
        ("0.9.2", "--expand-tools-even-if-tool-choice-none", True),
    ],
)
def test_flag_sets_are_the_releases_own(version: str, flag: str, accepted: bool) -> None:
    assert (flag_set(version).lookup(flag) is not None) is accepted


def test_wizard_spellings_vllm_refuses() -> None:
    assert check_args("0.33.0", ["--dtype", "bf16"]) == [
        "--dtype 'bf16' is refused by vLLM; did you mean 'bfloat16'?"
    ]
    assert check_args("0.33.0", ["--kv-cache-dtype", "fp8_e4m3fn"]) == [
        "--kv-cache-dtype 'fp8_e4m3fn' is refused by vLLM; did you mean 'fp8_e4m3'?"
    ]
    assert check_args("0.8.5", ["--kv-cache-dtype", "bfloat16"]) == [
        "--kv-cache-dtype 'bfloat16' is not accepted by vLLM 0.8.5; choose one of: auto, fp8, fp8_e4m3, fp8_e5m2"
    ]


def test_argparse_forms_vllm_accepts() -> None:
    args = [
        "--max_model_len=4096",  # FlexibleArgumentParser: underscores, --x=y
        "--compilation-config.level",  # JSON sub-key of --compilation-config
        "3",
        "-tp",
        "2",
        "--no-enable-prefix-caching",
        "--disable-chunked-prefill",  # the inverse form (0.33.0)
        "--served-model-name",
        "a",
        "b",
    ]
    assert check_args("0.33.0", args) == []


def test_values_and_switches_are_checked() -> None:
    assert check_args("0.33.0", ["--max-num-seqs"]) == ["--max-num-seqs needs a value in vLLM 0.33.0"]
    assert check_args("0.33.0", ["--enforce-eager=true"]) == [
        "--enforce-eager is a switch in vLLM 0.33.0 and takes no value (got 'true')"
    ]
    assert check_args("0.33.0", ["model-name"]) == [
        "unexpected argument 'model-name': extra arguments are flags (--name value)"
    ]


@pytest.mark.parametrize(
    ("version", "value", "words"),
    [
        ("0.8.5", False, []),  # store_true in 0.8.5: off is the default, nothing to say
        ("0.8.5", True, ["--enforce-eager"]),
        ("0.10.2", False, ["--no-enforce-eager"]),
        ("0.33.0", False, ["--no-enforce-eager"]),
    ],
)
def test_enforce_eager_spelling(version: str, value: bool, words: list[str]) -> None:
    s = setting(version, "--enforce-eager", value)
    assert (s.argv() if s else []) == words


@pytest.mark.parametrize(
    ("version", "words"),
    [
        ("0.8.5", ["--no-enable-prefix-caching"]),
        ("0.10.2", ["--no-enable-prefix-caching"]),
        ("0.33.0", ["--disable-prefix-caching"]),  # the visible inverse form in 0.33.0's --help
    ],
)
def test_prefix_caching_off_spelling(version: str, words: list[str]) -> None:
    assert setting(version, "--enable-prefix-caching", False).argv() == words


@pytest.mark.parametrize(
    ("version", "words"),
    [
        ("0.8.5", []),
        ("0.10.2", ["--cuda-graph-sizes", "1", "2", "4"]),
        ("0.11.0", ["--cuda-graph-sizes", "1", "2", "4"]),
        ("0.11.1", ["--cudagraph-capture-sizes", "1", "2", "4"]),
        ("0.33.0", ["--cudagraph-capture-sizes", "1", "2", "4"]),
    ],
)
def test_renamed_flag_is_translated(version: str, words: list[str]) -> None:
    s = setting(version, "--cudagraph-capture-sizes", [1, 2, 4])
    assert (s.argv() if s else []) == words


def test_values_are_spelt_as_vllm_expects() -> None:
    assert setting("0.33.0", "--dtype", "bf16").argv() == ["--dtype", "bfloat16"]
    assert setting("0.33.0", "--kv-cache-dtype", "fp8_e4m3fn").argv() == ["--kv-cache-dtype", "fp8_e4m3"]
    assert setting("0.33.0", "--gpu-memory-utilization", 0.92).argv() == ["--gpu-memory-utilization", "0.92"]
    with pytest.raises(FlagError, match="fp8, fp8_e4m3"):
        setting("0.8.5", "--kv-cache-dtype", "bfloat16")


def test_plan_emits_user_and_recommended_settings_only() -> None:
    plan = make_plan(
        model=LLAMA_70B,
        tp=4,
        decided={
            "gpu_memory_utilization": (0.93, "recommended"),
            "max_num_seqs": (128, "user"),
            "max_num_batched_tokens": (8192, "vllm-default"),
            "block_size": (16, "derived"),
        },
    )
    assert plan_argv(plan) == [
        "--served-model-name",
        "meta-llama/Llama-3.1-70B-Instruct",
        "--port",
        "8000",
        "--max-model-len",
        "8192",
        "--tensor-parallel-size",
        "4",
        "--gpu-memory-utilization",
        "0.93",
        "--max-num-seqs",
        "128",
    ]


def test_parallel_sizes_of_one_are_left_to_vllm() -> None:
    argv = plan_argv(make_plan())
    assert "--tensor-parallel-size" not in argv and "--pipeline-parallel-size" not in argv


def test_multi_node_plan_runs_over_ray() -> None:
    argv = plan_argv(make_plan(model=LLAMA_70B, tp=8, pp=2))
    assert argv[-2:] == ["--distributed-executor-backend", "ray"]
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"


def test_flag_data_loads_fast() -> None:
    vllm_flags._load_file.cache_clear()
    vllm_flags.flag_set.cache_clear()
    start = time.perf_counter()
    flag_set("0.33.0")
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize(
    ("version", "words"),
    [
        ("0.8.5", []),
        ("0.10.2", ["--cuda-graph-sizes", "256"]),  # one value: the cap vLLM fills the sizes up to
        ("0.11.1", ["--max-cudagraph-capture-size", "256"]),
        ("0.33.0", ["--max-cudagraph-capture-size", "256"]),
    ],
)
def test_cudagraph_cap_spelling_per_version(version: str, words: list[str]) -> None:
    plan = make_plan(version=version, decided={"max_cudagraph_capture_size": (256, "recommended")})
    argv = plan_argv(plan)
    found = [w for w in argv if "graph" in w]
    assert (found + argv[argv.index(found[0]) + 1 : argv.index(found[0]) + 2] if found else []) == words


def _observed(version: str, text: str) -> dict:
    """The parse the release's real `--config` loader gave for this YAML (tools/vllm_probe.py)."""
    probes = vllm_flags._release(version)["config_probes"]
    found = [p for p in probes.values() if isinstance(p, dict) and p.get("yaml") == text]
    assert found, f"vLLM {version}: {text!r} was not observed on the release's parser"
    return found[0]


def _yaml_line(key: str, value: object) -> str:
    return f"{key}: {json.dumps(value) if not isinstance(value, str) else value}\n"


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize(
    ("flag", "field"),
    [
        ("--enable-prefix-caching", "enable_prefix_caching"),
        ("--enable-chunked-prefill", "enable_chunked_prefill"),
    ],
)
def test_config_switches_off_are_in_the_form_the_loader_honours(version: str, flag: str, field: str) -> None:
    """`x: false` is silently dropped by vLLM's --config loader; the file says off the way it is read."""
    key, value = setting(version, flag, False).config_item()
    observed = _observed(version, _yaml_line(key, value))
    assert observed["ok"] and observed["changed"][field] is False
    # The command-line form is accepted too.
    assert check_args(version, setting(version, flag, False).argv()) == []


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_config_lists_per_release(version: str) -> None:
    flag = vllm_flags.resolve_flag(flag_set(version), "--cudagraph-capture-sizes")
    if flag is None:
        assert vllm_flags._vkey(version) < (0, 9, 0)
        return
    one = setting(version, "--cudagraph-capture-sizes", [128]).config_item()
    observed = _observed(version, _yaml_line(*one))
    assert observed["ok"] and observed["changed"][flag.dest] == [128]
    two = setting(version, "--cudagraph-capture-sizes", [8, 16])
    if vllm_flags.config_loader(version).lists:
        observed = _observed(version, _yaml_line(*two.config_item()))
        assert observed["ok"] and observed["changed"][flag.dest] == [8, 16]
    else:
        # 0.9.0-0.10.1 write str([8, 16]) as one word: the file cannot say it, and we refuse to try.
        assert not _observed(version, f"{flag.key}: [8, 16]\n")["ok"]
        with pytest.raises(FlagError, match="cannot pass a list"):
            two.config_item()


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_O_level_becomes_what_the_release_reads(version: str) -> None:
    """`extra_args: [-O, 3]`: an object where the loader takes one, a JSON string where it does not,
    --optimization-level where parse_args rewrites -O into it."""
    loader = vllm_flags.config_loader(version)
    config = vllm_flags.args_config(version, ["-O", "3"])
    assert check_args(version, ["-O", "3"]) == [] and check_args(version, ["-O3"]) == []
    if loader.O_flag:
        assert config == {
            loader.O_flag[2:]: 3 if flag_set(version).flags[loader.O_flag].type == "int" else "3"
        }
        return
    assert loader.O_key in ("level", "mode")
    ((key, value),) = config.items()
    if loader.objects:
        assert value == {loader.O_key: 3}
        observed = _observed(version, f"{key}:\n  {loader.O_key}: 3\n")
    else:
        assert json.loads(value) == {loader.O_key: 3}
        observed = _observed(version, f"{key}: '{value}'\n")
    assert observed["ok"] and observed["changed"]["compilation_config"][loader.O_key] == 3


def test_offload_block_override_and_kv_bytes_are_emitted() -> None:
    plan = make_plan(
        profile_extra={"vllm": {"cpu_offload_gb": 2.0, "num_gpu_blocks_override": 4000}},
        decided={"cpu_offload_gb": (2.0, "user"), "num_gpu_blocks_override": (4000, "user")},
    )
    argv = plan_argv(plan)
    assert argv[argv.index("--cpu-offload-gb") + 1] == "2"
    assert argv[argv.index("--num-gpu-blocks-override") + 1] == "4000"
    config = vllm_flags.plan_config(plan)
    assert config["cpu-offload-gb"] == 2.0 and config["num-gpu-blocks-override"] == 4000
    kv = make_plan(version="0.33.0", decided={"kv_cache_memory_bytes": (20 * 2**30, "user")})
    assert vllm_flags.plan_config(kv)["kv-cache-memory-bytes"] == 20 * 2**30
    old = make_plan(version="0.10.1", decided={"kv_cache_memory_bytes": (20 * 2**30, "user")})
    with pytest.raises(FlagError, match="vLLM 0.10.1 has no --kv-cache-memory-bytes"):
        plan_argv(old)
