"""Profile fuzzing with hypothesis: random and mutated profiles through `compile_paths` never raise,
never report an internal error, and each takes under 2 s.

Used twice: tests/test_fuzz_property.py runs a few hundred cases in the suite; `.ci/run` runs the long
fuzz as a script (fixed seed, a time limit, shards in parallel):

    python -m tests.fuzz --cases 10000 --seed 11 --jobs 2 --time-limit 240
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

MODELS = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "meta-llama/Llama-3.1-70B-Instruct",
    "Qwen/Qwen3-8B",
    "org/unknown-model",
]
GPUS = ["H100", "A100 80GB", "L40S", "RTX 4090", "RTX 3090", "T4", "L4", "H200", "V100", "detect", "H1OO"]

# Leaf paths a mutation may replace (the profile's fields), and a few that do not exist.
PATHS = [
    ("profile_version",), ("name",), ("description",), ("extends",),
    ("model", "id"), ("model", "revision"), ("model", "dtype"), ("model", "quantization"),
    ("model", "kv_cache_dtype"), ("model", "max_model_len"), ("model", "params_b"),
    ("model", "trust_remote_code"), ("model", "served_model_name"),
    ("hardware", "gpu_name"), ("hardware", "gpus"), ("hardware", "gpus_per_node"),
    ("hardware", "interconnect"), ("hardware", "vram_gib"), ("hardware", "vram_gb"),
    ("parallelism", "tensor_parallel_size"), ("parallelism", "pipeline_parallel_size"),
    ("parallelism", "data_parallel_size"), ("parallelism", "enable_expert_parallel"),
    ("workload", "preset"), ("workload", "prompt_tokens"), ("workload", "gen_tokens"),
    ("workload", "prompt_tokens", "mean"), ("workload", "prompt_tokens", "p99"),
    ("workload", "gen_tokens", "max"), ("workload", "concurrency"), ("workload", "request_rate"),
    ("workload", "mode"), ("workload", "objective"), ("workload", "slo", "ttft_ms_p99"),
    ("workload", "slo", "itl_ms"), ("vllm", "version"), ("vllm", "gpu_memory_utilization"),
    ("vllm", "max_num_seqs"), ("vllm", "max_num_batched_tokens"), ("vllm", "block_size"),
    ("vllm", "kv_cache_dtype"), ("vllm", "enforce_eager"), ("vllm", "enable_prefix_caching"),
    ("vllm", "enable_chunked_prefill"), ("vllm", "max_cudagraph_capture_size"),
    ("vllm", "kv_cache_memory_bytes"), ("vllm", "num_gpu_blocks_override"), ("vllm", "cpu_offload_gb"),
    ("vllm", "extra_args"), ("policy", "gpu_memory_utilization"), ("policy", "fragmentation_factor"),
    ("policy", "headroom_gb"), ("policy", "fail_on"), ("policy", "medium_kv_margin"),
    ("policy", "allow_quantization"), ("policy", "max_gpu_memory_utilization"),
    ("deploy", "targets"), ("deploy", "image"), ("deploy", "tag"), ("deploy", "port"),
    ("deploy", "replicas"), ("deploy", "namespace"), ("deploy", "node_selector"),
    ("deploy", "tolerations"), ("deploy", "env"), ("deploy", "hf_token_secret"), ("deploy", "shm_size"),
    ("deploy", "resources", "memory"), ("deploy", "storage_size"),
    ("hardware", "gpu_count"), ("x",), ("workload", "slo", "bogus"),
]  # fmt: skip


def _schema_paths() -> list[tuple[str, ...]]:
    """Every property path of the published profile schema (roles, speculative, KV connectors...),
    so a field added to the language is fuzzed without editing this file."""
    import json

    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "schemas" / "profile.v1.schema.json").read_text(
            encoding="utf-8"
        )
    )

    def objects(node: dict[str, Any]) -> list[dict[str, Any]]:
        if "$ref" in node:
            return objects(schema["$defs"][node["$ref"].rsplit("/", 1)[-1]])
        if "anyOf" in node:
            return [o for branch in node["anyOf"] for o in objects(branch)]
        return [node] if "properties" in node else []

    def leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
        if "$ref" in node:
            return leaves(schema["$defs"][node["$ref"].rsplit("/", 1)[-1]])
        if "anyOf" in node:
            return [b for branch in node["anyOf"] for b in leaves(branch)]
        return [node]

    def values(prop: dict[str, Any]) -> list[Any]:
        """What the schema allows at its edges: enum members, consts, both booleans, the bounds."""
        out: list[Any] = []
        for branch in leaves(prop):
            out += branch.get("enum", []) + ([branch["const"]] if "const" in branch else [])
            if branch.get("type") == "boolean":
                out += [True, False]
            for bound in ("minimum", "maximum"):
                if bound in branch and branch.get("type") in ("integer", "number"):
                    out.append(branch[bound])
        return out

    out: dict[tuple[str, ...], list[Any]] = {}

    def walk(node: dict[str, Any], path: tuple[str, ...], depth: int) -> None:
        for obj in objects(node):
            for key, prop in obj["properties"].items():
                out[(*path, key)] = values(prop)
                if depth < 4:
                    walk(prop, (*path, key), depth + 1)

    walk(schema, (), 0)
    return out


# Valid values at the schema's edges per path: a third of the mutations use them, so cases get past
# validation into the planning passes (where the crashes were) instead of stopping at a type error.
SCHEMA_VALUES = {path: vs for path, vs in _schema_paths().items() if vs}
PATHS += [p for p in _schema_paths() if p not in PATHS]

# Values people write (and the edges next to them), then anything at all.
REALISTIC = [0, 1, 2, 3, 4, 7, 8, 16, 32, 64, 128, 1000, 1024, 4096, 8192, 32768, 131072, 10**6, 2**24,
             2**24 + 1, 10**10, 0.5, 0.9, 0.95, 1.0, 1.5, -1, "auto", "none", "fp8", "bfloat16", "float16",
             "awq", "custom", "chatbot", "0.19.0", "0.8.5", "0.10.2", "9.9.9", "throughput", "latency",
             "never", "nvlink", "pcie", "--flag", "a b", "", [], {}, None, True, False, ["command"],
             ["--enable-lora"], {"mean": 100, "p99": 50}, {"mean": 1000, "max": 4096}, {"p50": 200},
             {"histogram": [[100, 1], [2000, 3]]}, {"histogram": []}, {"p90": 500},
             {"method": "ngram", "num_speculative_tokens": 3}, {"connector": "NixlConnector"},
             {"prefill": {}, "decode": {}}, {"size_gib": 16}, "deepep_low_latency", "NixlConnector"]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(REALISTIC),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=24),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=3),
)


def _bundled() -> list[dict[str, Any]]:
    """The bundled profiles (after `extends`): rich starting points (roles, wide EP, speculative...)."""
    from vllm_compile.profile.loader import load_profile

    return [
        load_profile(p).data
        for p in sorted((Path(__file__).resolve().parents[1] / "profiles").glob("*.yaml"))
    ]


BUNDLED = _bundled()


@st.composite
def base_profiles(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(min_value=0, max_value=3)) == 0:  # a quarter start from a bundled profile
        import copy

        return copy.deepcopy(draw(st.sampled_from(BUNDLED)))
    data: dict[str, Any] = {
        "profile_version": 1,
        "model": {
            "id": draw(st.sampled_from(MODELS)),
            "max_model_len": draw(st.sampled_from([4096, 8192, "auto"])),
        },
        "hardware": {"gpu_name": draw(st.sampled_from(GPUS)), "gpus": draw(st.sampled_from([1, 2, 3, 4, 8]))},
    }
    if data["model"]["id"] == "org/unknown-model":
        data["model"]["params_b"] = draw(st.sampled_from([0.5, 7, 70]))
    if draw(st.booleans()):
        data["workload"] = {
            "prompt_tokens": draw(st.sampled_from([128, 1024, 8000])),
            "gen_tokens": draw(st.sampled_from([16, 256])),
            "concurrency": draw(st.sampled_from([1, 32, 256])),
        }
    return data


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = data
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    """A valid-looking profile with up to four fields replaced by anything (or removed)."""
    data = draw(base_profiles())
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        path = draw(st.sampled_from(PATHS))
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            parent: Any = data
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
        elif path in SCHEMA_VALUES and draw(st.integers(min_value=0, max_value=2)) == 0:
            _set(data, path, draw(st.sampled_from(SCHEMA_VALUES[path])))
        else:
            _set(data, path, draw(VALUES))
    return data


def _text(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """YAML text: a mutated profile, sometimes with its text cut or a character put in."""
    text = _text(draw(profiles()))
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind == 0:
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif kind == 1:
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = (
            text[:at]
            + draw(
                st.sampled_from(
                    [
                        "\x07",
                        "\t",
                        "&a ",
                        "*a",
                        "<<: ",
                        "!!python/object ",
                        "{",
                        "- ",
                        ": ",
                        "\ufeff",
                        "\x00",
                        "'",
                        "%YAML 1.1\n",
                    ]
                )
            )
            + text[at:]
        )
    return text


class Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Timeout


def run_case(text: str, workdir: Path, write: bool) -> tuple[str | None, float]:
    """One document through compile_paths: (failure or None, seconds)."""
    from vllm_compile import api
    from vllm_compile.diagnostics import INTERNAL_CODE

    path = workdir / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    try:
        result = api.compile_paths([path], out_dir=workdir / "out", check=not write)
    except Timeout:
        return "over 10 s (stopped)", time.perf_counter() - start
    except BaseException:
        return "raised: " + traceback.format_exc(limit=-3), time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.perf_counter() - start
    internal = [d.message for r in result.results for d in r.diagnostics if d.code == INTERNAL_CODE]
    internal += [d.message for d in result.diagnostics if d.code == INTERNAL_CODE]
    if internal:
        return "internal error: " + internal[0], elapsed
    return None, elapsed


def _shard(job: tuple[int, int, float]) -> dict[str, Any]:
    shard_seed, cases, deadline = job
    failures: list[tuple[str, str, float]] = []
    times: list[float] = []
    workdir = Path(tempfile.mkdtemp(prefix="vllm-compile-fuzz-"))
    # Warm up: the first compile pays the lazy imports (ruamel, jinja2, the passes), not the case's cost.
    warm = {"profile_version": 1, "model": {"id": MODELS[0]}, "hardware": {"gpu_name": "H100"}}
    run_case(_text(warm), workdir, write=True)
    run_case("profile_version: 1\nmodel: {id: 1}\n", workdir, write=False)

    @seed(shard_seed)
    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(documents())
    def case(text: str) -> None:
        if time.monotonic() > deadline:
            return
        failure, elapsed = run_case(text, workdir, write=len(times) % 20 == 0)
        times.append(elapsed)
        if failure is None and elapsed > 2.0:
            failure = f"took {elapsed:.2f} s"
        if failure is not None:
            failures.append((failure, text[:2000], elapsed))

    try:
        case()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"cases": len(times), "failures": failures, "max_s": max(times, default=0.0), "times": times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds for the whole fuzz")
    args = parser.parse_args(argv)
    start = time.monotonic()
    deadline = start + args.time_limit
    per = math.ceil(args.cases / args.jobs)
    jobs = [(args.seed * 1000 + i, per, deadline) for i in range(args.jobs)]
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ctx.Pool(args.jobs) as pool:
        shards = pool.map(_shard, jobs)
    cases = sum(s["cases"] for s in shards)
    failures = [f for s in shards for f in s["failures"]]
    times = sorted(t for s in shards for t in s["times"])
    wall = time.monotonic() - start
    p99 = times[int(len(times) * 0.99)] if times else 0.0
    print(f"fuzz: {cases:,} cases in {wall:.0f} s ({args.jobs} jobs, seed {args.seed})")
    print(f"  tracebacks/internal errors/over 2 s: {len(failures)}")
    print(
        f"  per case: median {times[len(times) // 2] * 1e3 if times else 0:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {times[-1] if times else 0:.2f} s"
    )
    for failure, text, _ in failures[:10]:
        print(f"FAIL {failure}\n--- input ---\n{text}\n-------------")
    if cases < args.cases:
        print(f"FAIL only {cases:,} of {args.cases:,} cases ran within the {args.time_limit:g} s limit")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
