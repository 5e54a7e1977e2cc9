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


@pytest.mark.parametrize("version", ["0.8.5", "0.10.2", "0.33.0"])
def test_carried_files_match_the_wheel_extraction(version: str) -> None:
    """Reads ../shared/reference/vllm-flags directly; skips without it."""
    path = SHARED / "reference" / "vllm-flags" / f"{version}.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    ref = [e for e in json.loads(path.read_text()) if not e.get("positional")]
    fs = flag_set(version)
    assert fs.exact and fs.base == version
    assert set(fs.flags) == {e["name"] for e in ref}
    for e in ref:
        f = fs.flags[e["name"]]
        assert (f.negation, f.inverse, f.takes_value) == (
            e.get("negation"),
            e.get("inverse"),
            e["takes_value"],
        )
        assert f.choices == (tuple(e["choices"]) if "choices" in e else None)


def test_flag_counts_per_carried_release() -> None:
    # VALIDATION.md: 137 / 176 / 320 flags in 0.8.5 / 0.10.2 / 0.33.0 (the model positional not counted).
    assert [len(flag_set(v).flags) for v in ("0.8.5", "0.10.2", "0.33.0")] == [137, 176, 320]


def test_unknown_flag_gets_a_did_you_mean() -> None:
    assert check_args("0.33.0", ["--gpu-memory-utilisation", "0.9"]) == [
        "unknown flag --gpu-memory-utilisation for vLLM 0.33.0; did you mean --gpu-memory-utilization?"
    ]


def test_removed_renamed_and_later_flags_are_explained() -> None:
    assert check_args("0.33.0", ["--swap-space", "4"]) == [
        "unknown flag --swap-space for vLLM 0.33.0: removed in vLLM 0.18.0 (vllm PR #36216)"
    ]
    assert check_args("0.18.0", ["--swap-space", "4"]) == [
        "unknown flag --swap-space for vLLM 0.18.0: removed in vLLM 0.18.0 (vllm PR #36216)"
    ]
    assert check_args("0.17.0", ["--swap-space", "4"]) == []
    assert check_args("0.33.0", ["--cuda-graph-sizes", "8"]) == [
        "unknown flag --cuda-graph-sizes for vLLM 0.33.0: renamed to --cudagraph-capture-sizes in vLLM 0.11.1 "
        "(vllm PR #26016)"
    ]
    assert check_args("0.8.5", ["--max-cudagraph-capture-size", "64"]) == [
        "unknown flag --max-cudagraph-capture-size for vLLM 0.8.5: first in vLLM 0.11.1"
    ]


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


def test_version_without_file_is_lower_file_plus_changes() -> None:
    fs = flag_set("0.12.0")
    assert (fs.base, fs.exact) == ("0.10.2", False)
    assert "--max-cudagraph-capture-size" in fs.flags and "--cudagraph-capture-sizes" in fs.flags
    assert fs.flags["--cuda-graph-sizes"].deprecated  # the old name stays accepted after the rename
    assert "--max-seq-len-to-capture" not in fs.flags and "--disable-log-requests" not in fs.flags
    # A flag the next carried release has, first release unknown: accepted from users, never emitted.
    assert check_args("0.12.0", ["--max-num-queued-reqs", "8"]) == []
    assert vllm_flags.resolve_flag(fs, "--max-num-queued-reqs") is None
    with pytest.raises(FlagError, match="older than the oldest"):
        flag_set("0.7.3")


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


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_emitted_setting_flags_exist_in_both_neighbouring_releases(version: str) -> None:
    """A flag we emit for an in-between version is in the lower file and the next one, or a dated addition."""
    fs = flag_set(version)
    adds = {c.new if c.kind == "rename" else c.flag for c in vllm_flags.CHANGES if c.kind != "remove"}
    carried = vllm_flags.carried_versions()
    higher = [v for v in carried if vllm_flags._vkey(v) > vllm_flags._vkey(version)]
    for name in vllm_flags.SETTING_FLAGS.values():
        flag = vllm_flags.resolve_flag(fs, name)
        if flag is None or fs.exact:
            continue
        in_lower = flag.name in flag_set(fs.base).flags
        in_upper = not higher or flag.name in flag_set(higher[0]).flags or flag.name in adds
        assert (in_lower and in_upper) or flag.name in adds, (version, flag.name)


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
