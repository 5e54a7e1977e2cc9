"""The vLLM release table: defaults per release, batch tiers per GPU, CUDA graph sizes per era."""

from __future__ import annotations

import pytest

from vllm_compile.facts.gpus import resolve_gpu
from vllm_compile.facts.vllm_versions import (
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    UnknownVersionError,
    batch_defaults,
    batch_tier,
    cudagraph_capture_sizes,
    default_block_size,
    get_vllm_version,
)


def _serve(version: str, gpu: str) -> tuple[int, int]:
    b = batch_defaults(get_vllm_version(version), resolve_gpu(gpu))
    return b.max_num_batched_tokens, b.max_num_seqs


def test_table_covers_the_targeted_releases() -> None:
    for v in ("0.8.5", "0.9.2", "0.10.2", "0.11.0", "0.12.0", "0.19.0", "0.21.0", "0.28.0", "0.33.0"):
        assert v in SUPPORTED_VERSIONS
    assert LATEST_VERSION == "0.33.0" == SUPPORTED_VERSIONS[-1]
    assert list(SUPPORTED_VERSIONS) == sorted(SUPPORTED_VERSIONS, key=lambda s: tuple(map(int, s.split("."))))


def test_every_value_names_its_source() -> None:
    latest = get_vllm_version("0.33.0")
    for field in (
        "gpu_memory_utilization",
        "batch_70g",
        "batch_small",
        "cudagraph_rule",
        "cuda_graph_deducted",
    ):
        assert latest.sources[field]
    assert "38284" in latest.sources["gpu_memory_utilization"]
    assert "gb10" in latest.sources["batch_excluded_names"].lower()
    assert "17885" in get_vllm_version("0.9.0").sources["batch_excluded_names"]


def test_gpu_memory_utilization_and_graph_deduction_change_at_0_20() -> None:
    # PR #38284: CUDA graph memory profiling on by default, utilization 0.9 -> 0.92; the 0.20.0 wheel
    # already has both (its EngineArgs and vllm.envs defaults, facts/data/vllm_flags/0.20.0.json).
    for v in ("0.8.5", "0.10.2", "0.19.0"):
        version = get_vllm_version(v)
        assert (version.gpu_memory_utilization, version.cuda_graph_deducted) == (0.9, False)
    for v in ("0.20.0", "0.21.0", "0.28.0", "0.33.0"):
        version = get_vllm_version(v)
        assert (version.gpu_memory_utilization, version.cuda_graph_deducted) == (0.92, True)


def test_scheduling_defaults() -> None:
    assert not get_vllm_version("0.13.0").async_scheduling
    assert get_vllm_version("0.14.0").async_scheduling
    assert all(get_vllm_version(v).prefix_caching_default for v in SUPPORTED_VERSIONS)
    assert all(get_vllm_version(v).engine == "V1" for v in SUPPORTED_VERSIONS)
    assert get_vllm_version("0.10.2").v0_available and not get_vllm_version("0.11.0").v0_available


@pytest.mark.parametrize(
    ("version", "gpu", "expected"),
    [
        # 0.8.5: memory >= 70 GiB alone (PR #17073), so an 80 GB A100 still gets the large defaults.
        ("0.8.5", "H100", (8192, 1024)),
        ("0.8.5", "A100", (8192, 1024)),
        ("0.8.5", "L4", (2048, 256)),
        ("0.8.5", "B200", (8192, 1024)),
        # 0.9.0+: A100 excluded by name (PR #17885).
        ("0.9.2", "A100", (2048, 256)),
        ("0.19.0", "H100", (8192, 1024)),
        ("0.19.0", "A100", (2048, 256)),
        ("0.19.0", "L40S", (2048, 256)),
        ("0.19.0", "B200", (8192, 1024)),
        ("0.27.0", "B200", (8192, 1024)),
        # 0.28.0+: the >= 160 GiB tier.
        ("0.28.0", "B200", (16384, 1024)),
        ("0.33.0", "B200", (16384, 1024)),
        ("0.33.0", "MI300X", (16384, 1024)),
        ("0.33.0", "H200", (8192, 1024)),
        ("0.33.0", "H100", (8192, 1024)),
        ("0.33.0", "A100", (2048, 256)),
        ("0.33.0", "L4", (2048, 256)),
        ("0.33.0", "RTX 4090", (2048, 256)),
        ("0.33.0", "GB10", (2048, 256)),
    ],
)
def test_serve_batch_defaults(version: str, gpu: str, expected: tuple[int, int]) -> None:
    assert _serve(version, gpu) == expected


def test_offline_batch_defaults() -> None:
    v = get_vllm_version("0.33.0")
    offline = batch_defaults(v, resolve_gpu("H100"), usage="offline")
    assert (offline.max_num_batched_tokens, offline.max_num_seqs) == (16384, 1024)
    offline = batch_defaults(v, resolve_gpu("L4"), usage="offline")
    assert (offline.max_num_batched_tokens, offline.max_num_seqs) == (8192, 256)
    offline = batch_defaults(v, resolve_gpu("B200"), usage="offline")
    assert (offline.max_num_batched_tokens, offline.max_num_seqs) == (16384, 1024)


def test_tier_follows_overridden_memory() -> None:
    v = get_vllm_version("0.33.0")
    assert batch_tier(v, resolve_gpu("L40S")) == "small"
    assert batch_tier(v, resolve_gpu("L40S", vram_gib=96)) == "70g"
    assert batch_tier(v, resolve_gpu("H100", vram_gib=40)) == "small"
    # The 160 GiB test comes before the name exclusion.
    assert batch_tier(v, resolve_gpu("A100", vram_gib=200)) == "large"


def _sizes(version: str, gpu: str, **kwargs: object) -> list[int]:
    v, g = get_vllm_version(version), resolve_gpu(gpu)
    b = batch_defaults(v, g)
    return cudagraph_capture_sizes(v, b.max_num_seqs, b.max_num_batched_tokens, g, **kwargs)  # type: ignore[arg-type]


def test_capture_sizes_h100_serve_latest() -> None:
    sizes = _sizes("0.33.0", "H100")
    assert len(sizes) == 51
    assert sizes[:5] == [1, 2, 4, 8, 16] and sizes[-1] == 512
    assert 248 in sizes and 256 in sizes and 264 not in sizes and 272 in sizes


def test_capture_sizes_by_era() -> None:
    # 0.8/0.9: [1, 2, 4] + 8..512 step 8 whatever max_num_seqs is.
    assert _sizes("0.8.5", "H100") == [1, 2, 4, *range(8, 513, 8)]
    assert len(_sizes("0.9.2", "L4")) == 67
    # 0.10: capped at 2 x max_num_seqs, still step 8.
    v = get_vllm_version("0.10.2")
    assert cudagraph_capture_sizes(v, 64, 2048, resolve_gpu("L4")) == [1, 2, 4, *range(8, 129, 8)]
    # 0.11.1+: step 16 from 256; A100/L4 at 256 seqs also reach 512.
    assert len(_sizes("0.19.0", "A100")) == 51
    assert len(_sizes("0.19.0", "L4")) == 51
    # 0.28.0+: 1024 on data-center Blackwell.
    assert len(_sizes("0.27.0", "B200")) == 51
    b200 = _sizes("0.33.0", "B200")
    assert len(b200) == 83 and b200[-1] == 1024
    assert len(_sizes("0.33.0", "MI300X")) == 51


def test_capture_sizes_small_budgets_and_eager() -> None:
    v, l4 = get_vllm_version("0.33.0"), resolve_gpu("L4")
    assert cudagraph_capture_sizes(v, 16, 2048, l4) == [1, 2, 4, 8, 16, 24, 32]
    # A token budget below the cap limits it; 0.33.0 appends the off-stride budget and decode size.
    assert cudagraph_capture_sizes(v, 100, 100, l4) == [1, 2, 4, *range(8, 97, 8), 100]
    assert cudagraph_capture_sizes(get_vllm_version("0.19.0"), 100, 100, l4) == [1, 2, 4, *range(8, 97, 8)]
    assert cudagraph_capture_sizes(v, 256, 2048, l4, enforce_eager=True) == []
    # Speculative decoding: two tokens per request per step double the cap.
    assert cudagraph_capture_sizes(v, 64, 2048, l4, num_speculative_tokens=1)[-1] == 256
    assert cudagraph_capture_sizes(v, 8, 2048, l4, performance_mode="interactivity") == list(range(1, 17))
    with pytest.raises(ValueError):
        cudagraph_capture_sizes(v, 0, 2048, l4)


def test_block_sizes() -> None:
    v = get_vllm_version("0.33.0")
    assert default_block_size(v, resolve_gpu("H100")) == 16
    assert default_block_size(v, resolve_gpu("H100"), mla=True) == 16
    assert default_block_size(v, resolve_gpu("B200"), mla=True) == 32
    assert default_block_size(get_vllm_version("0.10.2"), resolve_gpu("H100"), mla=True) == 64


def test_patch_releases_map_down() -> None:
    v = get_vllm_version("0.19.1")
    assert v.version == "0.19.1" and "0.19.0" in v.note
    assert v.gpu_memory_utilization == get_vllm_version("0.19.0").gpu_memory_utilization
    assert get_vllm_version("v0.10.1.1").note.endswith("0.10.1")
    assert get_vllm_version("0.9.2").note == ""
    assert get_vllm_version("latest").version == LATEST_VERSION
    assert get_vllm_version("0.33.0.post1").version == "0.33.0.post1"


def test_unknown_versions_name_the_supported_ones() -> None:
    with pytest.raises(UnknownVersionError) as exc:
        get_vllm_version("0.7.3")
    assert "oldest" in str(exc.value) and "0.8.5" in str(exc.value) and "0.33.0" in str(exc.value)
    with pytest.raises(UnknownVersionError, match="newer"):
        get_vllm_version("1.0.0")
    with pytest.raises(UnknownVersionError, match="not a vLLM version"):
        get_vllm_version("latest-ish")
    with pytest.raises(UnknownVersionError):
        get_vllm_version("")
    assert issubclass(UnknownVersionError, ValueError)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_table_defaults_match_what_each_release_says(version: str) -> None:
    """The version table against the dump of each release (facts/data/vllm_flags, read from its parser,
    its vllm.envs defaults and its source by tools/extract_vllm_flags.py)."""
    from vllm_compile.facts import vllm_flags

    dump = vllm_flags._release(version)
    table = get_vllm_version(version)
    assert table.gpu_memory_utilization == dump["engine_defaults"]["gpu_memory_utilization"]
    # CUDA graph memory is taken before the KV cache exactly where the profiler's estimate is applied
    # by default (v1/worker/gpu_worker.py: `if envs.VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS`).
    estimate = dump["env_defaults"].get("VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS", False)
    assert table.cuda_graph_deducted is bool(estimate)
    assert table.chunked_prefill_forced is dump["source_facts"]["chunked_prefill_forced"]
    assert table.performance_mode is ("--performance-mode" in vllm_flags.flag_set(version).flags)
