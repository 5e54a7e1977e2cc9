"""`vllm-compile plan`: one deployment from flags (or a profile), answered on the terminal.

Exit 0 when vLLM would start, 1 when it would not, 2 for invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..diagnostics import DiagnosticError, ExitCode
from ..plan import Plan
from ..units import GIB, stable_float
from .flags import add_profile_flags, profile_from_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "plan",
        help="plan one deployment from flags: memory per GPU, KV cache, verdict",
        description="Plan one vLLM deployment: memory per GPU as vLLM accounts it at start-up, KV cache "
        "tokens and concurrency, and whether it starts. Exit 0 if it starts, 1 if not, 2 on invalid input.",
    )
    add_profile_flags(parser)
    parser.add_argument("--json", action="store_true", help="print JSON (sorted keys)")
    parser.add_argument("--explain", action="store_true", help="print every decision with its reason")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        base, name = _base_profile(args.profile)
        data = profile_from_args(args, base)
        plan = _plan(data, name, Path(args.profile).parent if args.profile else None)
    except DiagnosticError as exc:
        for d in exc.diagnostics:
            print(d.format(), file=sys.stderr)
        return ExitCode.INVALID
    except (ValueError, OSError) as exc:  # ProfileFlagError, ResolveError, KvCacheError ... all ValueError
        print(f"vllm-compile plan: {exc}", file=sys.stderr)
        return ExitCode.INVALID
    if args.json:
        print(json.dumps(plan_json(plan, explain=args.explain), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print_human(plan, explain=args.explain)
    return ExitCode.OK if plan.verdict.starts else ExitCode.POLICY


def _base_profile(path: str | None) -> tuple[dict[str, Any] | None, str]:
    if not path:
        return None, "plan"
    from ..profile.loader import load_profile

    loaded = load_profile(Path(path))
    return loaded.data, loaded.name


def _plan(data: dict[str, Any], name: str, base_dir: Path | None = None) -> Plan:
    from .. import api

    profile = api.load_profile_dict(data)
    return api.plan_profile(profile, name=name, base_dir=base_dir)


def _weights_total(plan: Plan) -> int:
    """Every weight of the checkpoint as loaded (one GPU, no parallelism)."""
    from ..facts.weights import weight_bytes_per_gpu

    e = plan.engine
    return weight_bytes_per_gpu(
        plan.resolved.model,
        dtype=e.dtype,
        quantization=e.quantization,
        compute_capability=plan.resolved.gpu.compute_capability,
        vllm_version=plan.resolved.vllm.version,
    )


def _g(n: int | float) -> float:
    return round(n / GIB, 2)


def plan_json(plan: Plan, *, explain: bool = False) -> dict[str, Any]:
    m, b, kv = plan.resolved.model, plan.memory.binding, plan.memory.kv
    e = plan.engine
    out: dict[str, Any] = {
        "model": {
            "id": m.id,
            "revision": m.revision,
            "architecture": m.architecture,
            "params_total": m.params_total,
            "params_active": m.params_active,
            "weight_bytes_total": _weights_total(plan),
            "source": m.source,
        },
        "gpu": {
            "name": plan.resolved.gpu.name,
            "memory_gib": _g(plan.resolved.gpu.memory_bytes),
            "count": e.total_gpus,
        },
        "vllm": {"version": plan.resolved.vllm.version},
        "engine": json.loads(e.model_dump_json(exclude={"cudagraph_capture_sizes"})),
        "memory": {
            "pp_rank": b.pp_rank,
            "gpu_total_gib": _g(b.gpu_total_bytes),
            "requested_gib": _g(b.requested_bytes),
            "baseline_gib": _g(b.baseline_bytes),
            "weights_gib": _g(b.weights_bytes),
            "activation_peak_gib": _g(b.activation_peak_bytes),
            "non_torch_gib": _g(b.non_torch_bytes),
            "cuda_graph_gib": _g(b.cuda_graph_bytes),
            "kv_cache_gib": _g(b.kv_cache_bytes),
            "ranks": [
                {
                    "pp_rank": r.pp_rank,
                    "weights_gib": _g(r.weights_bytes),
                    "activation_peak_gib": _g(r.activation_peak_bytes),
                    "non_torch_gib": _g(r.non_torch_bytes),
                    "cuda_graph_gib": _g(r.cuda_graph_bytes),
                    "kv_cache_gib": _g(r.kv_cache_bytes),
                    "num_blocks": r.num_blocks,
                }
                for r in plan.memory.ranks
            ],
        },
        "kv_cache": {
            **kv.model_dump(exclude={"blocks_per_request"}),
            "max_concurrency": stable_float(kv.max_concurrency, 2),
            "largest_max_model_len": plan.memory.largest_max_model_len,
        },
        "verdict": {
            "starts": plan.verdict.starts,
            "oom_risk": plan.verdict.oom_risk,
            "reasons": plan.verdict.reasons,
            "capacity_ok": plan.verdict.capacity_ok,
            "capacity_notes": plan.verdict.capacity_notes,
            "warnings": plan.verdict.warnings,
        },
        "assumptions": plan.memory.assumptions,
    }
    if plan.performance is not None:
        p = plan.performance
        out["performance"] = {
            "concurrency": p.concurrency,
            **{
                k: {"value": stable_float(r.value), "low": stable_float(r.low), "high": stable_float(r.high)}
                for k, r in (
                    ("ttft_ms", p.ttft_ms),
                    ("itl_ms", p.itl_ms),
                    ("output_tok_s", p.output_tok_s),
                    ("total_tok_s", p.total_tok_s),
                    ("request_rps", p.request_rps),
                    ("e2e_latency_s", p.e2e_latency_s),
                )
            },
            "percentiles": p.percentiles,
        }
    if plan.cost is not None:
        out["cost"] = plan.cost
    if plan.cuda_graphs is not None:
        out["cuda_graphs"] = plan.cuda_graphs
    if plan.disaggregation is not None:  # a `roles:` profile: the memory above is the decode pool's
        out["disaggregation"] = plan.disaggregation
    if explain:
        out["decisions"] = {k: json.loads(d.model_dump_json()) for k, d in sorted(plan.decisions.items())}
    return out


def _bar(parts: list[tuple[str, int, str]], total: int, width: int = 60) -> str:
    """A text bar of the budget: one character per 1/width of the GPU."""
    out, used = [], 0
    for _label, n, style in parts:
        cells = max(0, round(n / total * width)) if total else 0
        cells = min(cells, width - used)
        used += cells
        out.append(f"[{style}]{'█' * cells}[/]")
    out.append("[dim]" + "░" * (width - used) + "[/]")
    return "".join(out)


def print_human(plan: Plan, *, explain: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    m, e, b, kv = plan.resolved.model, plan.engine, plan.memory.binding, plan.memory.kv
    gpu = plan.resolved.gpu
    console.print(
        f"[bold]{m.id}[/] on {e.total_gpus} x {gpu.name} (TP {e.tensor_parallel_size}, PP "
        f"{e.pipeline_parallel_size}, DP {e.data_parallel_size}), vLLM {plan.resolved.vllm.version}, "
        f"{e.dtype}, KV {e.kv_cache_dtype}, max_model_len {e.max_model_len:,}"
    )
    d = plan.disaggregation
    if d is not None:
        pools = ", ".join(
            f"{role} {p['replicas']} x {p['gpus_per_replica']} {p['gpu']}" for role, p in d["pools"].items()
        )
        console.print(f"disaggregated prefill/decode over {d.get('connector')}: {pools}", markup=False)
        if "comparison" in d:
            console.print(f"  {d['comparison']['text']}", markup=False)
            console.print(f"  {d['ratio']['text']}", markup=False)
        console.print("the memory below is the decode pool's (REPORT.md has both pools)", markup=False)
    title = "Memory per GPU" + (
        f" (binding stage: PP rank {b.pp_rank})" if e.pipeline_parallel_size > 1 else ""
    )
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("GiB", justify="right")
    table.add_column("share of GPU", justify="right")
    rows = [
        ("GPU total (CUDA)", b.gpu_total_bytes),
        (f"budget ({e.gpu_memory_utilization:g} x total)", b.requested_bytes),
        ("  weights", b.weights_bytes),
        ("  activation peak (profile run)", b.activation_peak_bytes),
        ("  non-torch (NCCL, cuBLAS)", b.non_torch_bytes),
        ("  CUDA graphs (deducted)", b.cuda_graph_bytes),
        ("  KV cache", b.kv_cache_bytes),
        ("outside: CUDA context, NCCL", b.baseline_bytes),
    ]
    for label, n in rows:
        table.add_row(label, f"{n / GIB:.2f}", f"{n / b.gpu_total_bytes:.1%}" if b.gpu_total_bytes else "-")
    console.print(table)
    parts = [
        ("weights", b.weights_bytes, "blue"),
        ("activation", b.activation_peak_bytes, "magenta"),
        ("non-torch", b.non_torch_bytes, "yellow"),
        ("graphs", b.cuda_graph_bytes, "cyan"),
        ("kv", max(0, b.kv_cache_bytes), "green"),
    ]
    console.print(_bar(parts, b.gpu_total_bytes) + "  [blue]weights[/] [magenta]activation[/] [yellow]non-torch[/] "
                  "[cyan]graphs[/] [green]KV[/] [dim]outside budget[/]")  # fmt: skip
    console.print(
        f"KV cache: {kv.bytes_per_token:,} bytes/token, block {kv.block_size}, {kv.num_blocks:,} blocks, "
        f"[bold]{kv.tokens:,} tokens[/], max concurrency [bold]{kv.max_concurrency:.2f}x[/] at {e.max_model_len:,} tokens"
    )
    if plan.memory.features:  # serving features: their share of the figures above
        console.print(
            "Serving features: "
            + ", ".join(f"{f.name} {f.bytes_per_gpu / 2**30:.2f} GiB" for f in plan.memory.features),
            markup=False,
        )
    v = plan.verdict
    colour = "green" if v.starts and v.oom_risk == "LOW" else ("yellow" if v.starts else "red")
    console.print(
        f"[{colour}][bold]{'STARTS' if v.starts else 'WOULD NOT START'}[/] — OOM risk {v.oom_risk}[/]"
    )
    for reason in v.reasons + v.capacity_notes + v.warnings:
        console.print(f"  • {reason}", markup=False)
    if plan.performance is not None:
        p = plan.performance
        console.print(
            f"Performance at concurrency {p.concurrency}: TTFT {p.ttft_ms.value:.0f} ms, ITL {p.itl_ms.value:.1f} ms, "
            f"{p.output_tok_s.value:,.0f} output tok/s, {p.request_rps.value:.2f} req/s"
        )
        if p.percentiles:
            q = p.percentiles
            console.print(
                f"  simulated p50/p90/p99: TTFT {q['ttft_ms_p50']:.0f}/{q['ttft_ms_p90']:.0f}/{q['ttft_ms_p99']:.0f} ms, "
                f"ITL {q['itl_ms_p50']:.1f}/{q['itl_ms_p90']:.1f}/{q['itl_ms_p99']:.1f} ms",
                markup=False,
            )
    if plan.cuda_graphs is not None:
        g = plan.cuda_graphs
        console.print(
            f"CUDA graphs ({g['mode']}): {len(g['sizes'])} sizes up to {g['max_size']}, {g['graph_gib']:.2f} GiB "
            f"({g['kv_tokens_traded']:,} KV tokens); {g['coverage']:.0%} of engine steps from a graph, "
            f"{g['padding_waste']:.0%} padding",
            markup=False,
        )
    if plan.cost is not None:
        c = plan.cost
        per_m = c["usd_per_million_output_tokens"]
        console.print(
            f"Cost (estimate): {c['price']}; ${c['replica_usd_per_hour']:.2f}/hour per replica, "
            f"${c['fleet_usd_per_hour']:.2f}/hour for {c['replicas']} replica(s); "
            + (f"[bold]${per_m:.3f} per million output tokens[/]" if per_m is not None else "nothing served")
            + f" at {c['fleet_output_tok_s']:,.0f} output tok/s",
            markup=True,
        )
    if explain:
        console.print("[bold]Decisions[/]")
        for key, d in sorted(plan.decisions.items()):
            console.print(f"  {key} = {d.value!r} ({d.by}): {d.reason}", markup=False)
        for a in plan.memory.assumptions:
            console.print(f"  assumption: {a}", markup=False)
