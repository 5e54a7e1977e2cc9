"""`vllm-compile recommend`: which GPU to buy for a model, workload and SLO, ranked by $ per million tokens.

Exit 0 when some layout meets the SLO, 1 when none does, 2 for invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..diagnostics import DiagnosticError, ExitCode

_SUPPRESS = argparse.SUPPRESS


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _counts(text: str) -> list[int]:
    try:
        values = [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU counts like 1,2,4,8, got {text!r}") from None
    if any(v < 1 or v > 64 for v in values):
        raise argparse.ArgumentTypeError("GPU counts must be between 1 and 64")
    return sorted(set(values))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from .flags import context_len, positive_int

    parser = sub.add_parser(
        "recommend",
        help="rank GPU types and layouts for a model and workload by $ per million output tokens",
        description="Search GPU type x GPUs per replica x TP/PP x weight quantization x KV dtype x replicas for "
        "the model, workload and SLO; print the layouts ranked by $ per million output tokens (estimates). "
        "Exit 0 when a layout meets the SLO, 1 when none does, 2 on invalid input.",
    )
    parser.add_argument("--model", "-m", default=_SUPPRESS, help="Hugging Face id or local directory.")
    parser.add_argument(
        "--profile", "-p", default=None, help="A profile YAML to start from (workload, SLO, vllm, cost)."
    )
    parser.add_argument(
        "--gpus-available",
        type=_csv,
        default=None,
        metavar="LIST",
        help="GPU types to consider, e.g. H100,H200,A100-80GB,L40S,MI300X (default: those and L4, B200).",
    )
    parser.add_argument(
        "--gpu-counts", type=_counts, default=None, metavar="LIST", help="GPUs per replica (default 1,2,4,8)."
    )
    parser.add_argument(
        "--quantization",
        type=_csv,
        default=["none", "fp8"],
        metavar="LIST",
        help="weight options: none (as the checkpoint is), fp8 (default: none,fp8).",
    )
    parser.add_argument(
        "--kv-cache-dtype",
        type=_csv,
        default=["auto", "fp8"],
        metavar="LIST",
        help="KV options (default: auto,fp8).",
    )
    parser.add_argument("--max-model-len", type=context_len, default=_SUPPRESS)
    parser.add_argument("--vllm-version", default=_SUPPRESS)
    w = parser.add_argument_group("workload and SLO")
    w.add_argument(
        "--preset", default=_SUPPRESS, choices=["chatbot", "batch_inference", "interactive", "long_context"]
    )
    w.add_argument("--prompt-tokens", type=positive_int, default=_SUPPRESS)
    w.add_argument("--gen-tokens", type=positive_int, default=_SUPPRESS)
    w.add_argument("--concurrency", "-c", type=positive_int, default=_SUPPRESS)
    w.add_argument(
        "--request-rate", type=_positive, default=_SUPPRESS, help="requests per second (open loop)"
    )
    w.add_argument("--slo-itl-ms", type=_positive, default=_SUPPRESS, help="inter-token latency target, ms")
    w.add_argument("--slo-ttft-ms", type=_positive, default=_SUPPRESS, help="TTFT p50 target, ms")
    w.add_argument("--slo-ttft-p99-ms", type=_positive, default=_SUPPRESS, help="TTFT p99 target, ms")
    w.add_argument("--slo-e2e-s", type=_positive, default=_SUPPRESS, help="end-to-end latency target, s")
    w.add_argument("--slo-ttft-p90-ms", type=_positive, default=_SUPPRESS, help="TTFT p90 target, ms")
    w.add_argument("--slo-itl-p90-ms", type=_positive, default=_SUPPRESS, help="ITL p90 target, ms")
    w.add_argument("--slo-itl-p99-ms", type=_positive, default=_SUPPRESS, help="ITL p99 target, ms")
    w.add_argument("--burstiness", type=_positive, default=_SUPPRESS, help="1 Poisson, < 1 burstier arrivals")
    w.add_argument("--trace", default=_SUPPRESS, metavar="CSV", help="arrivals and lengths to replay")
    w.add_argument("--objective", default=_SUPPRESS, choices=["throughput", "latency", "balanced", "cost"])
    parser.add_argument(
        "--prices", metavar="FILE", default=None, help="YAML mapping of GPU name -> USD per GPU-hour"
    )
    parser.add_argument(
        "--top", type=positive_int, default=12, help="rows to print (plus the best of each GPU type)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON (sorted keys): every layout weighed")
    parser.add_argument("--write-profile", metavar="FILE", default=None, help="write the winner as a profile")
    parser.set_defaults(func=run)


_SLO_FLAGS = {
    "slo_itl_ms": "itl_ms",
    "slo_ttft_ms": "ttft_ms_p50",
    "slo_ttft_p99_ms": "ttft_ms_p99",
    "slo_e2e_s": "e2e_s",
    "slo_ttft_p90_ms": "ttft_ms_p90",
    "slo_itl_p90_ms": "itl_ms_p90",
    "slo_itl_p99_ms": "itl_ms_p99",
}
_WORKLOAD_FLAGS = (
    "preset", "prompt_tokens", "gen_tokens", "concurrency", "request_rate", "burstiness", "trace", "objective",
)  # fmt: skip


def profile_data(args: argparse.Namespace) -> dict[str, Any]:
    """The base profile the search plans every layout over: --profile, then the flags."""
    from ..yaml_text import load_yaml

    data: dict[str, Any] = {}
    if args.profile:
        from ..profile.loader import load_profile

        data = dict(load_profile(Path(args.profile)).data)
    data["profile_version"] = 1
    given = vars(args)
    model = dict(data.get("model") or {})
    if "model" in given:
        model = {"id": given["model"]}  # another model: the file's model settings do not apply
    if "max_model_len" in given:
        model["max_model_len"] = given["max_model_len"]
    if "id" not in model:
        raise ValueError("no model: pass --model/-m <Hugging Face id> or --profile/-p <file>")
    data["model"] = model
    workload = dict(data.get("workload") or {})
    for flag in _WORKLOAD_FLAGS:
        if flag in given:
            workload[flag] = given[flag]
    if "concurrency" in given:
        workload.pop("request_rate", None)
    elif "request_rate" in given:
        workload.pop("concurrency", None)
    slo = dict(workload.get("slo") or {})
    for flag, key in _SLO_FLAGS.items():
        if flag in given:
            slo[key] = given[flag]
    if slo:
        workload["slo"] = slo
    data["workload"] = workload
    if "vllm_version" in given:
        data["vllm"] = {**(data.get("vllm") or {}), "version": given["vllm_version"]}
    if args.prices:
        prices = load_yaml(Path(args.prices).read_text(encoding="utf-8"))
        if not isinstance(prices, dict) or not all(isinstance(v, (int, float)) for v in prices.values()):
            raise ValueError(f"{args.prices}: expected a mapping of GPU name -> USD per GPU-hour")
        cost = dict(data.get("cost") or {})
        cost["prices"] = {**(cost.get("prices") or {}), **{str(k): float(v) for k, v in prices.items()}}
        cost.setdefault("source", args.prices)
        data["cost"] = cost
    for section in ("hardware", "parallelism", "deploy"):
        data.pop(section, None)
    return data


def run(args: argparse.Namespace) -> int:
    from .. import api

    try:
        data = profile_data(args)
        quants = [None if q in ("none", "auto") else q for q in args.quantization]
        for q in quants:
            if q not in (None, "fp8"):
                raise ValueError(f"--quantization: only none and fp8 are searched, got {q!r}")
        for kv in args.kv_cache_dtype:
            if kv not in ("auto", "fp8"):
                raise ValueError(f"--kv-cache-dtype: only auto and fp8 are searched, got {kv!r}")
        rows = api.recommend_gpus(
            data,
            gpus_available=args.gpus_available,
            counts=args.gpu_counts,
            quantizations=list(dict.fromkeys(quants)),
            kv_dtypes=list(dict.fromkeys(args.kv_cache_dtype)),
            base_dir=Path(args.profile).parent if args.profile else None,
        )
    except DiagnosticError as exc:
        for d in exc.diagnostics:
            print(d.format(), file=sys.stderr)
        return ExitCode.INVALID
    except (ValueError, OSError) as exc:
        print(f"vllm-compile recommend: {exc}", file=sys.stderr)
        return ExitCode.INVALID
    winner = next((r for r in rows if r.starts and r.slo_met is not False), None)
    if args.write_profile and winner is not None:
        path = Path(args.write_profile)
        try:
            from ..write import Change, apply_changes

            apply_changes([Change(path, None, winner_profile_text(data, winner, path))])
        except OSError as exc:
            print(f"vllm-compile recommend: cannot write {path}: {exc}", file=sys.stderr)
            return ExitCode.INVALID
    if args.json:
        print(json.dumps(rows_json(rows), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print_table(rows, args.top, data)
        if args.write_profile:
            if winner is None:
                print("no layout meets the SLO: no profile written", file=sys.stderr)
            else:
                print(
                    f"wrote {args.write_profile}: #{winner.rank} {winner.layout.label}, {winner.replicas} replica(s)"
                )
    return ExitCode.OK if winner is not None else ExitCode.POLICY


def rows_json(rows: list[Any]) -> dict[str, Any]:
    shown = [r for r in rows if r.starts]
    return {
        "estimate": True,
        "ranked": [{**r.model_dump(mode="json"), "label": r.layout.label} for r in shown],
        "not_starting": [
            {"label": r.layout.label, "layout": r.layout.model_dump(mode="json"), "why": r.why}
            for r in rows
            if not r.starts
        ],
    }


def _shown(rows: list[Any], top: int) -> list[Any]:
    """The top rows, plus the best row of each GPU type beyond them: every type gets a line."""
    starting = [r for r in rows if r.starts]
    out = starting[:top]
    seen = {r.layout.gpu for r in out}
    for r in starting[top:]:
        if r.layout.gpu not in seen:
            out.append(r)
            seen.add(r.layout.gpu)
    return out


def print_table(rows: list[Any], top: int, data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=220)
    w = data.get("workload", {})
    load = (
        f"trace {w['trace']}"
        if w.get("trace")
        else f"{w['request_rate']:g} req/s"
        if w.get("request_rate")
        else f"concurrency {w.get('concurrency', 'preset')}"
    )
    slo = ", ".join(f"{k} {v:g}" for k, v in sorted((w.get("slo") or {}).items())) or "none"
    console.print(
        f"[bold]{data['model']['id']}[/]: {load}, prompt {w.get('prompt_tokens', 'preset')} / gen "
        f"{w.get('gen_tokens', 'preset')} tokens, SLO {slo}. Estimates (physics x calibrated efficiencies); "
        "prices from the built-in table or your overrides."
    )
    table = Table(title="Layouts by $ per million output tokens", title_justify="left")
    for col, just in (
        ("#", "right"), ("layout (per replica)", "left"), ("replicas", "right"), ("GPUs", "right"),
        ("$/GPU-h", "right"), ("fleet $/h", "right"), ("$/Mtok", "right"), ("TTFT ms", "right"),
        ("ITL ms", "right"), ("fleet tok/s", "right"), ("headroom", "right"), ("verdict", "left"), ("why", "left"),
    ):  # fmt: skip
        table.add_column(col, justify=just, overflow="fold")
    for r in _shown(rows, top):
        money = r.usd_per_million_output_tokens
        table.add_row(
            str(r.rank),
            r.layout.label,
            str(r.replicas),
            str(r.total_gpus),
            f"{r.usd_per_gpu_hour:.2f}" if r.usd_per_gpu_hour is not None else "-",
            f"{r.fleet_usd_per_hour:.2f}" if r.fleet_usd_per_hour is not None else "-",
            f"{money:.3f}" if money is not None else "-",
            f"{r.ttft_ms:,.0f}" if r.ttft_ms is not None else "-",
            f"{r.itl_ms:.1f}" if r.itl_ms is not None else "-",
            f"{r.fleet_output_tok_s:,.0f}" if r.fleet_output_tok_s is not None else "-",
            f"{r.headroom:+.0%}" if r.headroom is not None else "-",
            "starts" + ("" if r.slo_met is not False else ", misses SLO"),
            r.why,
        )
    console.print(table)
    out = sum(1 for r in rows if not r.starts)
    console.print(
        f"{len(rows)} layouts weighed; {len(rows) - out} start, {out} do not (--json lists them with the reason)."
    )


def winner_profile_text(data: dict[str, Any], row: Any, path: Path) -> str:
    """The winning layout as a profile ready for profiles/: the workload and SLO it was chosen for."""
    from ..yaml_text import to_yaml

    lay = row.layout
    model = {**data["model"], "max_model_len": row.max_model_len}
    if lay.quantization:
        model["quantization"] = lay.quantization
    profile: dict[str, Any] = {
        "profile_version": 1,
        "description": f"vllm-compile recommend: #{row.rank} of the layouts weighed, "
        f"${row.usd_per_million_output_tokens} per million output tokens (estimate)",
        "model": model,
        "hardware": {"gpu_name": lay.gpu, "gpus": lay.gpus_per_replica},
        "parallelism": {
            "tensor_parallel_size": lay.tensor_parallel_size,
            "pipeline_parallel_size": lay.pipeline_parallel_size,
        },
        "workload": data.get("workload", {}),
        "vllm": {**(data.get("vllm") or {}), "kv_cache_dtype": lay.kv_cache_dtype},
        "deploy": {"replicas": row.replicas},
    }
    if data.get("cost"):
        profile["cost"] = data["cost"]
    if data.get("policy"):
        profile["policy"] = data["policy"]
    header = "# yaml-language-server: $schema=../schemas/profile.v1.schema.json\n"
    return header + to_yaml(profile)
