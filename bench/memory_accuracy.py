"""Memory accuracy benchmark: every calibration observation through the planner's own code path.

Reads ../shared/calibration/memory_observations.yaml (public vLLM start-up logs), builds the profile
each log describes (model, GPU, vLLM version, the flags it shows), runs the settings, memory and policy passes (vLLM's defaults, no recommend pass) and prints
per entry the error of weights, activation, non-torch, KV GiB and KV tokens, then a summary.

    /work/venv/bin/python bench/memory_accuracy.py [--all] [--json]

The target (V1 entries with a KV figure): KV GiB mean absolute error <= 3%, >= 85% within +-5%, KV
tokens the same, every start-up failure predicted as not starting. A benchmark script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a benchmark never waits on the network

from vllm_compile import api  # noqa: E402
from vllm_compile.facts.vllm_versions import SUPPORTED_VERSIONS, version_key  # noqa: E402
from vllm_compile.passes.memory import plan_memory  # noqa: E402
from vllm_compile.passes.policy import judge  # noqa: E402
from vllm_compile.passes.settings import decide_engine  # noqa: E402
from vllm_compile.plan import Plan  # noqa: E402
from vllm_compile.resolve import resolve  # noqa: E402
from vllm_compile.units import GIB  # noqa: E402

CALIBRATION = Path(__file__).resolve().parents[2] / "shared" / "calibration" / "memory_observations.yaml"
# Disaggregated prefill/decode and KV-connector start-ups (public logs, quoted), printed on their own.
PD_OBSERVATIONS = Path(__file__).resolve().parent / "data" / "pd_observations.yaml"

# The log names the GPU loosely; the catalog name it resolves to.
_GPU_NAMES = [
    ("H200", "H200"), ("H100", "H100"), ("A100", "A100 80GB"), ("RTX 4090", "RTX 4090"), ("4090", "RTX 4090"), ("L40S", "L40S"),
    ("RTX 4060", "RTX 4060"), ("T4", "T4"), ("A6000", "RTX A6000"), ("RTX 5090", "RTX 5090"),
]  # fmt: skip

# Entries whose log gives no version: the era of the issue they come from (assumed, printed as such).
_V1_UNKNOWN_VERSION = "0.10.1"  # vllm-project/vllm#23278 / #27508: gpt-oss on H100, Aug-Oct 2025
_V0_VERSION = "0.6.4"


def _gpu_name(entry: dict[str, Any]) -> str | None:
    text = str(entry.get("gpu", ""))
    if "not named" in text:
        return "H100" if "79.2" in str(entry.get("gpu_total_gib")) else None
    for needle, name in _GPU_NAMES:
        if needle.lower() in text.lower():
            return name
    return None


def _version(entry: dict[str, Any]) -> tuple[str, bool]:
    """(version to plan with, assumed?). Unknown V1 versions take the era of their issue."""
    m = re.search(r"\d+\.\d+\.\d+", str(entry.get("vllm_version", "")))
    if entry.get("engine") == "V0":
        return (m.group(0) if m else _V0_VERSION), m is None
    if not m:
        return _V1_UNKNOWN_VERSION, True
    wanted = version_key(m.group(0))
    older = [v for v in SUPPORTED_VERSIONS if version_key(v) <= wanted]
    return (older[-1] if older else SUPPORTED_VERSIONS[0]), False


def _profile(entry: dict[str, Any], version: str) -> dict[str, Any]:
    v0 = entry.get("engine") == "V0"
    tp = entry.get("tensor_parallel_size", 1)
    pp = entry.get("pipeline_parallel_size") or 1
    dp = entry.get("data_parallel_size") or 1
    hardware: dict[str, Any] = {"gpu_name": _gpu_name(entry), "gpus": tp * pp * dp}
    if entry.get("gpus_per_node"):
        hardware["gpus_per_node"] = entry["gpus_per_node"]
    if entry.get("gpu_total_gib"):
        hardware["vram_gib"] = entry["gpu_total_gib"]
    model: dict[str, Any] = {"id": entry["model"]}
    if entry.get("dtype") in ("float16", "bfloat16", "float32"):
        model["dtype"] = entry["dtype"]
    if entry.get("online_quantization"):  # `--quantization` on an unquantized checkpoint
        model["quantization"] = entry["online_quantization"]
    if entry.get("max_model_len"):
        model["max_model_len"] = entry["max_model_len"]
    vllm: dict[str, Any] = {"version": "0.8.5" if v0 else version}
    for key in ("gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "block_size"):
        if entry.get(key) is not None:
            vllm[key] = entry[key]
    if entry.get("kv_cache_dtype") not in (None, "auto"):
        vllm["kv_cache_dtype"] = entry["kv_cache_dtype"]
    if entry.get("enforce_eager") is not None:
        vllm["enforce_eager"] = entry["enforce_eager"]
    kv = entry.get("kv_transfer")
    if kv:  # the engine's --kv-transfer-config (P/D and KV-connector entries)
        vllm["kv_transfer"] = {
            "connector": kv["kv_connector"],
            **({"kv_role": kv["kv_role"]} if kv.get("kv_role") else {}),
        }
    # Serving features the log shows: an entry's own keys, or limit_mm_per_prompt in its non-default args.
    for key in ("speculative", "lora", "limit_mm_per_prompt"):
        if entry.get(key) is not None:
            vllm[key] = entry[key]
    if "limit_mm_per_prompt" not in vllm and entry.get("multimodal"):
        m = re.search(r"'limit_mm_per_prompt': (\{[^}]*\})", " ".join(map(str, entry.get("evidence", []))))
        if m:
            vllm["limit_mm_per_prompt"] = json.loads(m.group(1).replace("'", '"'))
    if v0:
        # V0 defaults (engine/arg_utils.py then): utilization 0.9, 256 sequences, no chunked prefill below
        # 32K context (a step holds a whole max_model_len prompt), chunked with 2048 tokens above.
        vllm.setdefault("gpu_memory_utilization", 0.9)
        vllm.setdefault("max_num_seqs", 256)
        length = entry.get("max_model_len") or 8192
        vllm.setdefault("max_num_batched_tokens", max(length, 2048) if length <= 32768 else 2048)
    return {
        "profile_version": 1,
        "model": model,
        "hardware": hardware,
        "parallelism": {
            "tensor_parallel_size": tp,
            "pipeline_parallel_size": pp,
            "data_parallel_size": dp,
            **{k: entry[k] for k in _WIDE_EP_KEYS if entry.get(k) is not None},
        },
        "vllm": vllm,
    }


def _plan(entry: dict[str, Any]) -> tuple[Plan, str, bool]:
    version, assumed = _version(entry)
    profile = api.load_profile_dict(_profile(entry, version))
    resolved = resolve(profile, entry["id"])
    if entry.get("engine") == "V0":
        resolved = resolved.model_copy(
            update={
                "vllm": resolved.vllm.model_copy(
                    update={"engine": "V0", "version": version, "cuda_graph_deducted": False}
                )
            }
        )
    # vLLM's own defaults for everything the log does not show: settings, not the recommend pass.
    engine, decisions = decide_engine(resolved)
    memory = plan_memory(resolved, engine)
    verdict = judge(resolved, engine, memory)
    plan = Plan(resolved=resolved, engine=engine, decisions=decisions, memory=memory, verdict=verdict)
    return plan, version, assumed


def _err(pred: float, obs: float | None) -> float | None:
    if obs is None:
        return None
    return pred - obs


def evaluate(entry: dict[str, Any]) -> dict[str, Any]:
    obs = entry["observed"]
    row: dict[str, Any] = {
        "id": entry["id"],
        "engine": entry.get("engine", "V1"),
        "features": _features(entry),
    }
    if entry.get("plannable") is False:
        row["skipped"] = entry.get("reason_not_planned", "not plannable offline")
        row["failed"] = _failed(entry)
        return row
    try:
        plan, version, assumed = _plan(entry)
    except Exception as exc:  # the bench reports every entry, even one the planner cannot take
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    logged = plan.memory.ranks[0]  # the worker that logs (TP0 / PP0)
    row.update(
        version=version + ("?" if assumed else ""),
        weights=(logged.weights_bytes / GIB, obs.get("weights_gib")),
        activation=(logged.activation_peak_bytes / GIB, obs.get("activation_peak_gib")),
        non_torch=(logged.non_torch_bytes / GIB, obs.get("non_torch_gib")),
        kv_gib=(logged.kv_cache_bytes / GIB, obs.get("kv_cache_gib")),
        tokens=(plan.memory.kv.tokens, obs.get("kv_cache_tokens")),
        blocks=(plan.memory.kv.num_blocks, obs.get("gpu_blocks")),
        starts=plan.verdict.starts,
        failed=_failed(entry),
        inconsistent=_inconsistent(entry, plan.resolved.vllm.cuda_graph_deducted),
    )
    if row["inconsistent"]:
        # Also plan it at the utilization its own figures add up to (vLLM takes two decimals).
        util = round(sum(obs[k] for k in _PARTS) / entry["gpu_total_gib"], 2)
        replan, _, _ = _plan({**entry, "gpu_memory_utilization": util})
        row["implied"] = (util, replan.memory.ranks[0].kv_cache_bytes / GIB, obs["kv_cache_gib"])
    return row


_PARTS = ("weights_gib", "activation_peak_gib", "non_torch_gib", "kv_cache_gib")
FEATURES = ("speculative", "lora", "multimodal", "wide_ep")
_WIDE_EP_KEYS = (
    "enable_expert_parallel", "all2all_backend", "enable_eplb", "num_redundant_experts",
    "decode_context_parallel_size", "data_parallel_size_local",
)  # fmt: skip
WIDE_EP_FILE = Path(__file__).resolve().parent / "data" / "wide_ep_observations.yaml"


def _features(entry: dict[str, Any]) -> list[str]:
    """The serving features an entry exercises (printed as their own group)."""
    wide = bool(entry.get("enable_expert_parallel") or (entry.get("data_parallel_size") or 1) > 1)
    return [f for f in FEATURES if entry.get(f) or (f == "wide_ep" and wide)]


def _inconsistent(entry: dict[str, Any], graphs_deducted: bool) -> bool:
    """A data-quality check on the entry itself, not on our prediction: its logged parts must add up to
    its stated budget (utilization x total), as vLLM's own formula makes them. More than 2% apart means
    a figure or a setting in the entry is wrong (e.g. a summary table that mislabels the utilization)."""
    obs, total, util = entry["observed"], entry.get("gpu_total_gib"), entry.get("gpu_memory_utilization")
    parts = [obs.get(k) for k in _PARTS]
    if entry.get("engine") != "V1" or None in parts or not total or not util:
        return False
    logged = sum(parts) + (obs.get("cuda_graph_gib") or 0.0) * graphs_deducted
    return abs(logged - total * util) > 0.02 * total * util


def _failed(entry: dict[str, Any]) -> bool:
    """Did this start-up fail for lack of memory (negative KV, too few tokens, or the notes say so)?"""
    obs = entry["observed"]
    if obs.get("kv_cache_gib") is not None and obs["kv_cache_gib"] < 0:
        return True
    notes = str(entry.get("notes", ""))
    if re.search(r"startup (fails|failed)|still fails|startup errors", notes, re.IGNORECASE):
        return True
    tokens, length = obs.get("kv_cache_tokens"), entry.get("max_model_len")
    return bool(tokens and length and tokens < length)


def _fmt(pair: tuple[float, float | None] | None, digits: int = 2) -> str:
    if not pair or pair[1] is None:
        return "-"
    pred, obs = pair
    return f"{pred:.{digits}f}/{obs:.{digits}f}"


def _pct(pair: tuple[float, float | None] | None) -> float | None:
    if not pair or pair[1] in (None, 0):
        return None
    return (pair[0] - pair[1]) / abs(pair[1]) * 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--file", type=Path, default=CALIBRATION)
    parser.add_argument(
        "--wide-ep",
        type=Path,
        default=WIDE_EP_FILE,
        help="wide-EP observations, printed as their own section",
    )
    parser.add_argument("--pd-file", type=Path, default=PD_OBSERVATIONS)
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"no calibration file at {args.file}", file=sys.stderr)
        return 2
    entries = yaml.safe_load(args.file.read_text(encoding="utf-8"))["observations"]
    same = args.wide_ep.resolve() == args.file.resolve()
    wide_file = args.wide_ep if args.wide_ep.exists() and not same else None
    wide_doc = yaml.safe_load(wide_file.read_text(encoding="utf-8")) if wide_file else {}
    wide_entries = wide_doc.get("observations", [])
    buffers = wide_doc.get("buffer_observations", []) or (
        yaml.safe_load(args.file.read_text(encoding="utf-8")).get("buffer_observations", [])
    )
    rows = [evaluate(e) for e in entries]
    wide_rows = [evaluate(e) for e in wide_entries]
    pd_entries = (
        yaml.safe_load(args.pd_file.read_text(encoding="utf-8"))["observations"]
        if args.pd_file.exists()
        else []
    )
    pd_rows = [{**evaluate(e), "role": e.get("role", "")} for e in pd_entries]
    if args.json:
        print(
            json.dumps({"rows": rows + wide_rows, "pd_rows": pd_rows}, indent=2, sort_keys=True, default=str)
        )
        return 0
    _table(rows)
    _summary(rows)
    wide = [r for r in rows if "wide_ep" in r.get("features", [])] + wide_rows
    if wide:
        print()
        print(f"WIDE EP entries ({wide_file or args.file}):")
        _table(wide)
        _wide_ep_summary(wide)
    _buffer_check(buffers)
    if pd_rows:
        print()
        print(f"P/D AND KV-CONNECTOR ENTRIES ({args.pd_file.name}: disaggregated prefill/decode, LMCache)")
        _table(pd_rows)
        _pd_summary(pd_rows)
    return 0


def _buffer_check(buffers: list[dict[str, Any]]) -> None:
    """DeepEP low-latency RDMA sizes a source tabulates, against the planner's formula."""
    from vllm_compile.passes.all2all import low_latency_rdma_hint

    for b in buffers:
        pairs = [
            (int(t), low_latency_rdma_hint(int(t), b["hidden"], b["num_experts"]) / GIB, gib)
            for t, gib in sorted(b["rdma_gib_by_tokens_per_rank"].items())
        ]
        worst = max(abs(p - o) for _, p, o in pairs)
        cells = ", ".join(f"{t} tokens {p:.2f}/{o:.2f}" for t, p, o in pairs)
        print(
            f"SUMMARY wide EP buffer {b['id']} ({b['source']}): planned/observed GiB {cells}; worst {worst:.3f} GiB"
        )


def _pd_summary(rows: list[dict[str, Any]]) -> None:
    ok = [r for r in rows if "error" not in r and r["kv_gib"][1] is not None and not r["failed"]]
    errs = [abs(_pct(r["kv_gib"]) or 0) for r in ok]
    tok = [abs(_pct(r["tokens"]) or 0) for r in ok if r["tokens"][1]]
    failures = [r for r in rows if "error" not in r and r["failed"]]
    print()
    print(
        f"SUMMARY P/D entries: KV GiB MAE {sum(errs) / max(1, len(errs)):.2f}% over {len(errs)} "
        f"({', '.join(r['id'] for r in ok)}); KV tokens MAE {sum(tok) / max(1, len(tok)):.2f}% over {len(tok)}; "
        f"start-up failures predicted as not starting: {sum(not r['starts'] for r in failures)}/{len(failures)}"
    )


def _table(rows: list[dict[str, Any]]) -> None:
    head = f"{'entry':44} {'ver':8} {'weights':13} {'activation':11} {'non-torch':9} {'KV GiB':13} {'KV err':>7} {'tokens pred/obs':21} {'tok err':>7} starts"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['id'][:44]:44} ERROR {r['error']}")
            continue
        if "skipped" in r:
            print(f"{r['id'][:44]:44} SKIPPED {r['skipped']}" + (" (start-up failed)" if r["failed"] else ""))
            continue
        kv_err, tok_err = _pct(r["kv_gib"]), _pct(r["tokens"])
        tokens = f"{r['tokens'][0]:,}/{r['tokens'][1]:,}" if r["tokens"][1] else "-"
        start = ("yes" if r["starts"] else "NO") + (" (failed)" if r["failed"] else "")
        print(
            f"{r['id'][:44]:44} {r['version']:8} {_fmt(r['weights']):13} {_fmt(r['activation']):11} "
            f"{_fmt(r['non_torch']):9} {_fmt(r['kv_gib']):13} "
            f"{'' if kv_err is None else f'{kv_err:+.1f}%':>7} {tokens:21} {'' if tok_err is None else f'{tok_err:+.2f}%':>7} {start}"
        )


def _wide_ep_summary(rows: list[dict[str, Any]]) -> None:
    """Per-term error of the wide-EP entries, their KV GiB MAE (target <= 10%) and the failures caught."""
    ok = [r for r in rows if "error" not in r and "skipped" not in r]
    for term in ("weights", "activation", "non_torch", "kv_gib"):
        pairs = [r for r in ok if r[term][1] is not None and r[term][1] > 0 and not r["failed"]]
        errs = [_pct(r[term]) or 0.0 for r in pairs]
        detail = ", ".join(f"{r['id']} {e:+.1f}%" for r, e in zip(pairs, errs, strict=True))
        mae = f"MAE {sum(abs(e) for e in errs) / len(errs):.1f}%" if errs else "no observed figure"
        print(f"SUMMARY wide EP {term}: {mae}" + (f" ({detail})" if detail else ""))
    failures = [r for r in ok if r["failed"]]
    caught = [r for r in failures if not r["starts"]]
    missed = [r["id"] for r in failures if r["starts"]]
    print(
        f"SUMMARY wide EP start-up failures predicted as not starting: {len(caught)}/{len(failures)}"
        + (f" (missed: {', '.join(missed)})" if missed else "")
    )
    skipped = [r["id"] for r in rows if "skipped" in r]
    if skipped:
        print(f"SUMMARY wide EP entries not planned (model not in the offline catalog): {', '.join(skipped)}")


def _summary(rows: list[dict[str, Any]]) -> None:
    ok = [r for r in rows if "error" not in r and "skipped" not in r]
    v1_kv = [
        r
        for r in ok
        if r["engine"] == "V1" and r["kv_gib"][1] is not None and r["kv_gib"][1] > 0 and not r["failed"]
    ]
    errs = [abs(_pct(r["kv_gib"]) or 0) for r in v1_kv]
    within = sum(e <= 5 for e in errs)
    tok_rows = [r for r in v1_kv if r["tokens"][1]]
    tok_errs = [abs(_pct(r["tokens"]) or 0) for r in tok_rows]
    failures = [r for r in ok if r["failed"]]
    caught = [r for r in failures if not r["starts"]]
    v1_fail = [r for r in failures if r["engine"] == "V1"]
    v1_caught = [r for r in v1_fail if not r["starts"]]
    w_errs = [abs(_pct(r["weights"]) or 0) for r in ok if r["engine"] == "V1" and r["weights"][1]]
    a_errs = [
        abs(r["activation"][0] - r["activation"][1])
        for r in ok
        if r["engine"] == "V1" and r["activation"][1] is not None
    ]
    # The same with the logged weights in place of the model-facts pass's: the memory pass alone.
    own = [
        abs((r["kv_gib"][0] + r["weights"][0] - r["weights"][1] - r["kv_gib"][1]) / r["kv_gib"][1] * 100)
        for r in v1_kv
        if r["weights"][1] is not None
    ]
    print()
    print(
        f"SUMMARY memory pass alone (logged weights): KV GiB MAE {sum(own) / max(1, len(own)):.2f}% over {len(own)} entries, "
        f"within +-5%: {sum(e <= 5 for e in own)}/{len(own)}"
    )
    print(
        f"SUMMARY V1 entries with a KV figure (started): {len(v1_kv)}; KV GiB MAE {sum(errs) / max(1, len(errs)):.2f}%; "
        f"within +-5%: {within}/{len(errs)} ({within / max(1, len(errs)):.0%}); "
        f"KV tokens MAE {sum(tok_errs) / max(1, len(tok_errs)):.2f}% over {len(tok_rows)} entries; "
        f"weights MAE {sum(w_errs) / max(1, len(w_errs)):.2f}%; activation MAE {sum(a_errs) / max(1, len(a_errs)):.2f} GiB"
    )
    print(
        f"SUMMARY start-up failures predicted as not starting: V1 {len(v1_caught)}/{len(v1_fail)}, all {len(caught)}/{len(failures)}"
        + (
            ""
            if len(caught) == len(failures)
            else f" (missed: {', '.join(r['id'] for r in failures if r['starts'])})"
        )
    )
    clean = [r for r in v1_kv if not r["inconsistent"]]
    clean_errs = [abs(_pct(r["kv_gib"]) or 0) for r in clean]
    print(
        f"SUMMARY the same without entries whose own figures do not add up to their budget "
        f"({', '.join(r['id'] for r in v1_kv if r['inconsistent']) or 'none'}): "
        f"KV GiB MAE {sum(clean_errs) / max(1, len(clean_errs)):.2f}% over {len(clean)}; "
        f"within +-5%: {sum(e <= 5 for e in clean_errs)}/{len(clean)}"
    )
    implied_errs = [
        abs(_pct(r["implied"][1:]) or 0) if r.get("implied") else e for r, e in zip(v1_kv, errs, strict=True)
    ]
    for r in v1_kv:
        if r.get("implied"):
            util, pred, obs = r["implied"]
            print(
                f"SUMMARY {r['id']} planned at utilization {util:g} (what its figures add up to): "
                f"KV {pred:.2f}/{obs:.2f} GiB ({_pct((pred, obs)):+.1f}%)"
            )
    print(
        f"SUMMARY every V1 entry, those at the utilization their figures imply: KV GiB MAE "
        f"{sum(implied_errs) / max(1, len(implied_errs)):.2f}% over {len(implied_errs)}; "
        f"within +-5%: {sum(e <= 5 for e in implied_errs)}/{len(implied_errs)}"
    )
    _feature_summary(v1_kv)
    errors = [r for r in rows if "error" in r]
    if errors:
        print(
            f"SUMMARY entries the planner could not take: {len(errors)} ({', '.join(r['id'] for r in errors)})"
        )


def _feature_summary(v1_kv: list[dict[str, Any]]) -> None:
    """KV error of the entries with speculative decoding, LoRA or multimodal inputs, apart from the classic ones."""

    def mae(rows: list[dict[str, Any]]) -> str:
        errs = [abs(_pct(r["kv_gib"]) or 0) for r in rows]
        if not errs:
            return "no entries"
        return (
            f"KV GiB MAE {sum(errs) / len(errs):.2f}% over {len(errs)} ({', '.join(r['id'] for r in rows)})"
        )

    classic = [r for r in v1_kv if not r.get("features")]
    print(f"SUMMARY classic entries (no speculative decoding, LoRA or multimodal input): {mae(classic)}")
    print(
        "SUMMARY classic entries whose own figures add up to their budget: "
        + mae([r for r in classic if not r["inconsistent"]])
    )
    for feature in FEATURES:
        print(f"SUMMARY {feature} entries: {mae([r for r in v1_kv if feature in r.get('features', [])])}")


if __name__ == "__main__":
    sys.exit(main())
