"""Accuracy of the performance model against real vLLM benchmarks.

Reads ../shared/calibration/perf_observations.yaml (beside the repo) and the model configs in
../shared/reference/models, replays every `controlled` entry through the same step model and batching
simulator the planner uses, and prints per-entry errors and a summary (median absolute error per
metric), then the same per GPU family and per vLLM release. A script, not a test:
`python bench/perf_accuracy.py [--all] [--json] [--fit] [--cv]` (--fit refits the model's named
constants, --cv predicts each GPU family and each source with constants fitted without it: bench/perf_fit.py).

How each benchmark kind is replayed:
- serving, request_rate inf, no client cap: all prompts at t=0 (a burst); with max_concurrency: the
  client keeps that many in flight (closed loop); with a finite rate: seeded Poisson arrivals.
- throughput (benchmark_throughput / offline LLM): all prompts at once; tokens/s is input+output.
- latency (benchmark_latency): one batch of batch_size prompts; avg_latency_s is the batch's time;
  lengths left unstated are the script's defaults then (--input-len 32 --output-len 128).
Caveats from the entries are honoured: a stated prefix-cache hit rate is applied to the prompt; TTFTs
the source marks as reduced by cache hits are reported but left out of the TTFT summary; TTFT targets
apply at concurrency <= 4 (at higher load with request_rate=inf TTFT is queueing, not prefill).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from vllm_compile.facts.gpus import resolve_gpu
from vllm_compile.facts.model_config import facts_from_config
from vllm_compile.facts.model_facts import ModelFacts, QuantizationFacts
from vllm_compile.passes import perf_model as pm
from vllm_compile.passes.batching_sim import mean, poisson_arrivals, simulate

SHARED = Path(__file__).resolve().parents[2] / "shared"
OBS = SHARED / "calibration" / "perf_observations.yaml"
MODELS = SHARED / "reference" / "models"

# Observation model -> (reference config dir, quantization override, kv cache dtype). Where the exact
# checkpoint's config is not in the reference set, a config of the same architecture stands in.
MODEL_MAP: dict[str, tuple[str, str | None, str]] = {
    "Qwen/Qwen2-7B-Instruct": ("Qwen--Qwen2.5-7B-Instruct", None, "auto"),  # same shapes as Qwen2-7B
    "Qwen/Qwen2.5-32B": ("Qwen--Qwen2.5-32B", None, "auto"),
    "Qwen/QwQ-32B": ("Qwen--Qwen2.5-32B", None, "auto"),  # QwQ-32B is a Qwen2.5-32B fine-tune
    "meta-llama/Llama-3.1-405B-FP8": ("meta-llama--Meta-Llama-3.1-405B", "fp8", "auto"),
    "amd/Llama-3.1-405B-Instruct-FP8-KV": ("meta-llama--Meta-Llama-3.1-405B", "fp8", "fp8"),
    "amd/Llama-3.1-70B-Instruct-FP8-KV": ("meta-llama--Llama-3.1-70B-Instruct", "fp8", "fp8"),
    "amd/Llama-3.3-70B-Instruct-FP8-KV": ("meta-llama--Llama-3.3-70B-Instruct", "fp8", "fp8"),
    "deepseek-ai/DeepSeek-R1": ("deepseek-ai--DeepSeek-R1", None, "auto"),
    "Qwen/Qwen3-30B-A3B-FP8": ("Qwen--Qwen3-30B-A3B", "fp8", "fp8"),
    "meta-llama/Meta-Llama-3-8B": ("meta-llama--Meta-Llama-3-8B", None, "auto"),
    "openai/gpt-oss-20b": ("openai--gpt-oss-20b", None, "auto"),
    "neuralmagic/Llama-3.2-3B-Instruct-FP8": ("meta-llama--Llama-3.2-3B-Instruct", "fp8", "auto"),
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8": ("meta-llama--Llama-3.1-8B-Instruct", "fp8", "auto"),
}
GPU_MAP = {
    "NVIDIA A100 80GB": "A100 80GB",
    "NVIDIA H100 SXM": "H100",
    "NVIDIA H100 PCIe": "H100 PCIe",
    "NVIDIA H100 (form": "H100",
    "NVIDIA H200": "H200",
    "NVIDIA B200": "B200",
    "AMD MI300X": "MI300X",
    "AMD MI355X": "MI355X",
}
GIB = 1 << 30


def _num(x: Any) -> float | None:
    try:
        return float(str(x).split()[0])
    except (TypeError, ValueError):
        return None


def _version(v: Any) -> tuple[int, int]:
    m = re.search(r"(\d+)\.(\d+)", str(v or ""))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 10)


def load_model(name: str) -> tuple[ModelFacts, str | None, str] | None:
    if name not in MODEL_MAP:
        return None
    folder, quant, kv = MODEL_MAP[name]
    cfg = json.loads((MODELS / folder / "config.json").read_text())
    facts = facts_from_config(cfg, model_id=name, source="local")
    if quant and facts.quantization is None:
        facts = facts.model_copy(update={"quantization": QuantizationFacts(method=quant, bits=8)})
    return facts, quant, kv


def batch_defaults(o: dict[str, Any], gpu_mib: float, offline: bool) -> tuple[int, int, bool]:
    """max_num_seqs, max_num_batched_tokens, chunked prefill, as that release's engine defaults
    (vllm/engine/arg_utils.py get_batch_defaults; V0 before 0.8 schedules whole prompts)."""
    ver = _version(o.get("vllm_version"))
    mns = _num(o.get("max_num_seqs"))
    mnbt = _num(o.get("max_num_batched_tokens"))
    big = gpu_mib >= 70 * 1024 and "A100" not in str(o.get("gpu_class"))
    if ver < (0, 8):
        d_mns, d_mnbt, chunked = 256, 1 << 20, False
    elif ver >= (0, 10) and big:
        d_mns, d_mnbt, chunked = 1024, 16384 if offline else 8192, True
    else:
        d_mns, d_mnbt, chunked = 256, 8192 if offline else 2048, True
    return int(mns or d_mns), int(mnbt or d_mnbt), chunked


def replay(o: dict[str, Any]) -> dict[str, Any] | None:
    loaded = load_model(o["model"])
    gpu_name = next((v for k, v in GPU_MAP.items() if str(o.get("gpu_class", "")).startswith(k)), None)
    if loaded is None or gpu_name is None:
        return None
    model, quant, kv_dtype = loaded
    gpu = resolve_gpu(gpu_name)
    tp = int(o.get("tensor_parallel_size") or 1)
    pp = int(o.get("pipeline_parallel_size") or 1)
    dtype = "bfloat16" if model.dtype in ("bfloat16", "float32") else model.dtype
    method = quant or (model.quantization.method if model.quantization else None)
    shape = pm.model_shape(model, dtype=dtype, quantization=method, kv_cache_dtype=kv_dtype, tp=tp)
    text = f"{(o.get('observed') or {}).get('notes') or ''} {o.get('evidence') or ''}"
    aiter = "VLLM_ROCM_USE_AITER=1" in text  # vllm/envs.py: off unless set
    hw = pm.hardware(
        gpu, dtype=dtype, fp8_compute=shape.fp8_compute, tp=tp, multi_node_pp=False, rocm_aiter=aiter
    )
    engine = "V0" if _version(o.get("vllm_version")) < (0, 8) else "V1"
    # Async scheduling: on by default from 0.14 (facts/vllm_versions.json), or where the entry says so.
    notes_all = f"{(o.get('observed') or {}).get('notes') or ''} {o.get('benchmark') or ''}"
    async_sched = _version(o.get("vllm_version")) >= (0, 14) or "--async-scheduling" in notes_all
    sm = pm.StepModel(
        shape=shape, hw=hw, tp=tp, pp=pp, eager=False, graph_max_batch=512, engine=engine,
        async_scheduling=async_sched,
    )  # fmt: skip
    # KV capacity: 0.9 of memory less this rank's weights and ~3 GiB of activations/graphs.
    per_rank_kv = (shape.kv_bytes_full + shape.kv_bytes_window) / pp
    free = gpu.memory_bytes * 0.9 - shape.weight_bytes / (tp * pp) - 3 * GIB
    kv_tokens = int(max(free, GIB) / max(per_rank_kv, 1.0))

    bench = str(o["benchmark"])
    is_lat, is_thr = bench.startswith("latency"), bench.startswith("throughput")
    p_len = int(_num(o.get("input_len")) or (32 if is_lat else 0))
    g_len = int(_num(o.get("output_len")) or (128 if is_lat else 0))
    if not p_len or not g_len:
        return None
    mns, mnbt, chunked = batch_defaults(o, gpu.memory_bytes / (1 << 20), offline=is_thr or is_lat)
    if not chunked:
        mnbt = max(mnbt, p_len)
    notes = str((o.get("observed") or {}).get("notes") or "")
    hit = re.search(r"hit rate ~?(\d+)-(\d+)%", notes)
    cached = (int(hit.group(1)) + int(hit.group(2))) / 200 if hit else 0.0
    rr = _num(o.get("request_rate"))
    mc = _num(o.get("max_concurrency"))
    n = int(_num(o.get("num_prompts")) or 0)
    arrivals = None
    if is_lat:
        n = int(_num(o.get("batch_size")) or 1)
    elif is_thr:
        n = n or 1000  # benchmark_throughput's default --num-prompts then
    elif "custom streaming client" in bench:
        n = max(4 * int(mc or 1), 8)  # a closed-loop phase: many rounds of `mc` requests
    if rr and not is_thr and not is_lat:
        arrivals = poisson_arrivals(n, rr, seed=0)
    conc = int(mc) if mc else n
    res = simulate(
        sm,
        prompts=[p_len] * n,
        gens=[g_len] * n,
        arrivals=arrivals,
        max_concurrency=int(mc) if mc else None,
        max_num_seqs=mns,
        max_num_batched_tokens=mnbt,
        kv_tokens=kv_tokens,
        cached_prompt_fraction=cached,
    )
    pred: dict[str, float] = {
        "tpot_ms": mean(res.tpot_s) * 1e3,
        "ttft_ms": mean(res.ttft_s) * 1e3,
        "output_tok_s": res.output_tok_s,
        "total_tok_s": res.total_tok_s,
        "request_rps": res.request_rps,
        "avg_latency_s": res.duration_s,
    }
    obs = o.get("observed") or {}
    ttft_caveat = bool(re.search(r"TTFT (is optimistic|may be reduced)", notes)) or "prefix-cache" in notes
    return {
        "id": o["id"],
        "kind": "latency" if is_lat else "throughput" if is_thr else "serving",
        "concurrency": conc,
        "pred": pred,
        "obs": {
            "tpot_ms": obs.get("mean_tpot_ms"),
            "ttft_ms": obs.get("mean_ttft_ms"),
            "output_tok_s": obs.get("output_tok_s"),
            "total_tok_s": obs.get("total_tok_s"),
            "avg_latency_s": obs.get("avg_latency_s"),
        },
        "ttft_caveat": ttft_caveat,
        "cached": cached,
    }


def _err(pred: float, obs: float | None) -> float | None:
    return None if obs in (None, 0) else (pred - obs) / obs


# The oldest vLLM release the planner targets (facts/vllm_versions.py): older entries stay out of the summary.
OLDEST = (0, 8, 5)


def _version3(v: Any) -> tuple[int, int, int] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", str(v or ""))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def _family(gpu_class: Any) -> str:
    text = str(gpu_class or "")
    for fam in ("H100 PCIe", "H100", "H200", "B200", "A100", "MI300X", "MI355X", "MI325X", "L40S", "L4"):
        if fam in text:
            return fam
    return text[:20] or "unknown"


def _in_range(err: float | None, metric: str) -> bool | None:
    """Does the estimate's range (perf.UNCERTAINTY) contain the measured value?"""
    if err is None:
        return None
    from vllm_compile.passes.perf import UNCERTAINTY

    u = UNCERTAINTY["itl" if metric == "tpot" else metric]
    pred_over_obs = 1 + err
    if metric == "throughput":  # range pred/(1+u) .. pred/(1-u)
        return 1 - u <= pred_over_obs <= 1 + u if u < 1 else True
    return 1 / (1 + u) <= pred_over_obs <= (1 / (1 - u) if u < 1 else float("inf"))


def _sel_ttft(r: dict[str, Any]) -> bool:
    return r["concurrency"] <= 4 and not r["ttft_caveat"]


METRICS = (
    ("ITL/TPOT", "tpot_err", lambda r: True, 10),
    ("output throughput", "thr_err", lambda r: True, 10),
    ("TTFT, conc <= 4", "ttft_err", _sel_ttft, 15),
)
_METRIC_NAME = {"tpot_err": "tpot", "thr_err": "throughput", "ttft_err": "ttft"}


def _stats_list(xs: list[float], ins: list[bool] | None = None) -> str:
    if not xs:
        return "n/a"
    a = sorted(abs(x) for x in xs)
    p80 = a[min(len(a) - 1, max(0, -(-8 * len(a) // 10) - 1))]
    inside = f", range {sum(ins) / len(ins):.0%}" if ins else ""
    return f"{statistics.median(a) * 100:.1f}% / p80 {p80 * 100:.1f}% (n={len(a)}{inside})"


def _stats(rows: list[dict[str, Any]], key: str, sel) -> str:
    picked = [r for r in rows if r[key] is not None and sel(r)]
    ins = [bool(_in_range(r[key], _METRIC_NAME[key])) for r in picked]
    return _stats_list([r[key] for r in picked], ins)


def _med_n(rows: list[dict[str, Any]], key: str, sel) -> str:
    xs = [abs(r[key]) for r in rows if r[key] is not None and sel(r)]
    return f"{statistics.median(xs) * 100:.0f}% ({len(xs)})" if xs else "-"


def collect(
    entries: list[dict[str, Any]], include_all: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """Replay the entries (controlled ones unless `include_all`) and attach each metric's relative error."""
    rows, skipped = [], []
    for o in entries:
        if o.get("setup_quality") != "controlled" and not include_all:
            continue
        r = replay(o)
        if r is None:
            skipped.append(o["id"])
            continue
        r["quality"] = o.get("setup_quality")
        v3 = _version3(o.get("vllm_version"))
        r["release"] = f"{v3[0]}.{v3[1]}" if v3 else "not stated"
        r["in_scope"] = v3 is None or v3 >= OLDEST
        r["family"] = _family(o.get("gpu_class"))
        r["source"] = _source(o)
        # Throughput: output tok/s where stated, else total tok/s (same relative error on fixed lengths);
        # end-to-end batch latency for benchmark_latency (1 / throughput of that batch).
        p, ob = r["pred"], r["obs"]
        if ob["output_tok_s"] is not None:
            r["thr_err"] = _err(p["output_tok_s"], ob["output_tok_s"])
        elif ob["total_tok_s"] is not None:
            r["thr_err"] = _err(p["total_tok_s"], ob["total_tok_s"])
        elif ob["avg_latency_s"] is not None:
            r["thr_err"] = _err(ob["avg_latency_s"], p["avg_latency_s"])  # throughput = n*G / latency
        else:
            r["thr_err"] = None
        r["tpot_err"] = _err(p["tpot_ms"], ob["tpot_ms"])
        r["ttft_err"] = _err(p["ttft_ms"], ob["ttft_ms"])
        rows.append(r)
    return rows, skipped


def _source(o: dict[str, Any]) -> str:
    """The publication an entry comes from (one repository, issue or vendor page): entries of one source
    share a harness and a host, so a split check leaves them out together."""
    src = str(o.get("source") or "")
    m = re.search(r"github\.com/([^/\s]+/[^/\s#]+)", src) or re.search(r"([\w.-]+/[\w.-]+)#\d+", src)
    if m:
        return m.group(1)
    m = re.search(r"https?://([^/\s]+)", src)
    return m.group(1) if m else src[:40] or "unknown"


def _scoped(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for o in entries:
        v3 = _version3(o.get("vllm_version"))
        if o.get("setup_quality") == "controlled" and (v3 is None or v3 >= OLDEST):
            out.append(o)
    return out


def fit_report(entries: list[dict[str, Any]], cv: bool) -> int:
    import perf_fit  # bench/perf_fit.py, beside this script

    scoped = _scoped(entries)
    values = perf_fit.fit(collect, scoped)
    print(f"fitted on {len(scoped)} in-scope controlled entries (loss: sum of |log(pred/obs)|):")
    for k in perf_fit.FITTED:
        print(
            f"  {k:26} prior {perf_fit.PRIOR[k][0]:<8g} fitted {values[k]:.4g}   (in code now: {getattr(pm, k):g})"
        )
    if not cv:
        return 0
    for title, key in (
        ("GPU family", lambda o: _family(o.get("gpu_class"))),
        ("source", _source),
    ):
        held = perf_fit.split_check(collect, scoped, key)
        print()
        print(f"leave-one-{title.replace(' ', '-')}-out (constants fitted without the left-out group):")
        for label, k, sel, _ in METRICS:
            print(f"  {label:22} {_stats(held, k, sel):>44}")
        print(f"  {title:28} {'ITL/TPOT':>16} {'throughput':>16} {'TTFT conc<=4':>16}")
        for name in sorted({r["fold"] for r in held}):
            g = [r for r in held if r["fold"] == name]
            cells = [_med_n(g, k, sel) for _, k, sel, _ in METRICS]
            fitted = " ".join(f"{v:.3g}" for v in g[0]["fold_values"].values())
            print(
                f"  {name[:28]:28} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}   fitted without it: {fitted}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--all", action="store_true", help="also replay partial/suspect entries (not in the summary)"
    )
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument(
        "--fit",
        action="store_true",
        help="fit the model's named efficiencies on the in-scope entries and print them",
    )
    ap.add_argument(
        "--cv",
        action="store_true",
        help="held-out check: leave one GPU family / one source out, fit on the rest, predict the left-out entries",
    )
    args = ap.parse_args(argv)
    if not OBS.exists():
        print(f"no calibration file at {OBS}", file=sys.stderr)
        return 2
    entries = yaml.safe_load(OBS.read_text())["observations"]
    if args.fit or args.cv:
        return fit_report(entries, cv=args.cv)
    rows, skipped = collect(entries, include_all=args.all)
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
        return 0

    def f(x: float | None, pct: bool = True) -> str:
        return "-" if x is None else (f"{x * 100:+.0f}%" if pct else f"{x:.1f}")

    print(
        f"{'entry':58} {'kind':10} {'conc':>5} | {'TPOT ms obs/pred':>18} {'err':>6} | "
        f"{'TTFT ms obs/pred':>20} {'err':>6} | {'thr err':>7}"
    )
    for r in rows:
        p, ob = r["pred"], r["obs"]
        tp = f"{ob['tpot_ms'] or 0:.1f}/{p['tpot_ms']:.1f}" if ob["tpot_ms"] else "-"
        tt = f"{ob['ttft_ms'] or 0:.0f}/{p['ttft_ms']:.0f}" if ob["ttft_ms"] else "-"
        mark = "*" if r["ttft_caveat"] else " "
        print(
            f"{r['id'][:58]:58} {r['kind']:10} {r['concurrency']:>5} | {tp:>18} {f(r['tpot_err']):>6} | "
            f"{tt:>19}{mark} {f(r['ttft_err']):>6} | {f(r['thr_err']):>7}"
        )
    ctrl = [r for r in rows if r["quality"] == "controlled"]
    scope = [r for r in ctrl if r["in_scope"]]
    print()
    print(
        f"summary over controlled entries from vLLM >= {OLDEST[0]}.{OLDEST[1]}.{OLDEST[2]} (the oldest release "
        f"the planner targets; {len(ctrl) - len(scope)} older entries left out) - median / p80 absolute error, "
        "share of entries inside the estimate's range:"
    )
    for label, key, sel, target in METRICS:
        print(
            f"  {label:22} {_stats(scope, key, sel):>44}   target: median <= {target}%, p80 <= 25%, range >= 80%"
        )
    print("  the same over every controlled entry (older releases included):")
    for label, key, sel, _ in METRICS:
        print(f"  {label:22} {_stats(ctrl, key, sel):>44}")
    ttft_all = [r["ttft_err"] for r in scope if r["ttft_err"] is not None and r["concurrency"] <= 4]
    print(f"  TTFT, conc <= 4, incl. cache-caveat entries: {_stats_list(ttft_all)}")
    for title, keyf in (("GPU family", lambda r: r["family"]), ("vLLM release", lambda r: r["release"])):
        for label, picked in (
            ("in-scope controlled entries", scope),
            ("controlled entries of older releases (not in the summary)", ctrl),
        ):
            groups: dict[str, list[dict[str, Any]]] = {}
            for r in picked:
                if picked is scope or not r["in_scope"]:
                    groups.setdefault(keyf(r), []).append(r)
            if not groups:
                continue
            print()
            print(f"by {title}, {label}; median abs. error (n):")
            print(f"  {title:28} {'ITL/TPOT':>16} {'throughput':>16} {'TTFT conc<=4':>16}")
            for name in sorted(groups):
                g = groups[name]
                cells = [_med_n(g, key, sel) for _, key, sel, _ in METRICS]
                print(f"  {name:28} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}")
    print()
    print(
        "held-out check (constants refitted without each GPU family / source): python bench/perf_accuracy.py --cv"
    )
    print(f"  skipped (model or GPU not in the reference set, or lengths unstated): {len(skipped)}")
    for s in skipped:
        print(f"    {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
