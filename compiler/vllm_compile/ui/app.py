"""Starlette routes: the fleet, one deployment, what-if, compare. Data from the API, HTML from Jinja2."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import api
from ..plan import Plan

HERE = Path(__file__).resolve().parent
CHART_TITLES = {
    "memory.svg": "Memory per GPU",
    "performance.svg": "Performance vs concurrency",
    "layouts.svg": "Layouts weighed",
}
QUANTIZATIONS = ["", "auto", "none", "fp8", "awq", "gptq", "bitsandbytes"]
KV_DTYPES = ["", "auto", "fp8", "fp8_e4m3", "fp8_e5m2"]


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, d=0: "—" if v is None else f"{v:,.{d}f}"
    return env


def page(template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(_env().get_template(template).render(**ctx), status_code=status)


def markdown_html(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def inline_svg(svg: str) -> str:
    """An SVG file's <svg> element, for embedding in the page (the XML prolog and DOCTYPE dropped)."""
    return svg[svg.index("<svg") :]


@dataclass
class Fleet:
    """The profiles under the given paths, planned once (and again on ?reload=1)."""

    paths: list[Path]
    out_dir: Path | None = None
    result: api.CompileResult | None = None
    rendered: dict[str, dict[str, str]] = field(default_factory=dict)

    def load(self, reload: bool = False) -> api.CompileResult:
        if self.result is None or reload:
            self.result = api.plan_fleet(self.paths, out_dir=self.out_dir)
            self.rendered = {}
        return self.result

    def item(self, name: str) -> api.ProfileResult | None:
        return next((r for r in self.load().results if r.name == name), None)

    def files(self, name: str, plan: Plan) -> dict[str, str]:
        if name not in self.rendered:
            self.rendered[name] = api.render_plan(plan, ["report", "charts"])
        return self.rendered[name]


def _row(item: api.ProfileResult) -> dict[str, Any]:
    """One fleet table row; `order` puts failing profiles first (invalid, then policy, then the rest)."""
    plan = item.plan
    errors = [d.message for d in item.diagnostics if d.severity == "error"]
    row: dict[str, Any] = {
        "name": item.name or Path(item.display).stem,
        "file": item.display,
        "errors": errors,
        "plan": None,
    }
    if plan is None:
        return {**row, "order": 0, "verdict": "invalid", "risk": "", "warnings": 0}
    perf = plan.performance
    cluster = plan.cluster or {}
    v = plan.verdict
    order = 1 if v.fails_policy else 2 if not v.starts else 3 if not v.capacity_ok else 4
    return {
        **row,
        "plan": plan,
        "order": order,
        "model": plan.resolved.model.id,
        "gpu": plan.resolved.gpu.name,
        "gpus": plan.engine.total_gpus,
        "replicas": cluster.get("replicas") or (perf.replicas if perf and perf.replicas else 1),
        "verdict": "fails policy" if v.fails_policy else "starts" if v.starts else "does not start",
        "risk": v.oom_risk,
        "capacity": "holds" if v.capacity_ok else "queues",
        "kv_tokens": plan.memory.kv.tokens,
        "max_concurrency": plan.memory.kv.max_concurrency,
        "ttft": perf.ttft_ms.value if perf else None,
        "itl": perf.itl_ms.value if perf else None,
        "cost": _cost(plan),
        "warnings": len(_warnings(plan)),
    }


def _warnings(plan: Plan) -> list[str]:
    """What a reviewer should read first: capacity shortfalls, then tuning and risk warnings."""
    v = plan.verdict
    return [*([] if v.capacity_ok else v.capacity_notes), *v.warnings]


def _cost(plan: Plan) -> float | None:
    """USD per million output tokens of the chosen layout, when the layouts pass had a GPU price."""
    chosen = next((p for p in plan.layouts if p.role == "chosen"), None)
    return chosen.usd_per_mtok if chosen else None


def _figures(plan: Plan | None) -> list[tuple[str, str]]:
    """The what-if page's before/after figures, formatted."""
    if plan is None:
        return []
    kv, perf, v = plan.memory.kv, plan.performance, plan.verdict
    e = plan.engine
    rows = [
        (
            "Layout",
            f"TP {e.tensor_parallel_size} × PP {e.pipeline_parallel_size} × DP {e.data_parallel_size} on {plan.resolved.gpu.name}",
        ),
        ("Will vLLM start?", f"{'yes' if v.starts else 'NO'} (OOM risk {v.oom_risk})"),
        ("KV cache holds the workload?", "yes" if v.capacity_ok else "SHORT: requests queue"),
        ("max_model_len", f"{e.max_model_len:,}"),
        ("gpu_memory_utilization", f"{e.gpu_memory_utilization:.2f}"),
        ("quantization / KV dtype", f"{e.quantization or 'none'} / {e.kv_cache_dtype}"),
        ("GPU KV cache size (tokens)", f"{kv.tokens:,}"),
        ("Maximum concurrency at max_model_len tokens", f"{kv.max_concurrency:.2f}x"),
    ]
    if perf is not None:
        rows += [
            (f"TTFT at {perf.concurrency} in flight (ms)", f"{perf.ttft_ms.value:,.1f}"),
            ("ITL (ms)", f"{perf.itl_ms.value:,.2f}"),
            ("Output throughput (tok/s)", f"{perf.output_tok_s.value:,.0f}"),
        ]
    return rows


def create_app(paths: list[Path], *, out_dir: Path | None = None) -> Starlette:
    fleet = Fleet([Path(p) for p in paths], out_dir)

    async def index(request: Request) -> HTMLResponse:
        result = fleet.load(reload=request.query_params.get("reload") == "1")
        rows = sorted((_row(r) for r in result.results), key=lambda r: (r["order"], r["name"]))
        return page("fleet.html", rows=rows, paths=[_shown(p) for p in fleet.paths], extra=result.diagnostics)

    def _found(name: str) -> tuple[api.ProfileResult | None, Response | None]:
        item = fleet.item(name)
        if item is None:
            return None, page("error.html", 404, title="Not found", message=f"no profile named {name!r}")
        return item, None

    async def deployment(request: Request) -> Response:
        item, missing = _found(request.path_params["name"])
        if missing:
            return missing
        assert item is not None and item.name is not None
        if item.plan is None:
            return page("deployment.html", item=item, row=_row(item), report="", warnings=[])
        files = fleet.files(item.name, item.plan)
        html = markdown_html(files["REPORT.md"])
        for name, title in CHART_TITLES.items():
            if name in files:  # the REPORT's image links become the SVGs themselves, inline
                tag = re.compile(rf'<img src="{re.escape(name)}" alt="[^"]*" ?/?>')
                figure = f'<figure class="chart" data-chart="{name}">{inline_svg(files[name])}<figcaption>{title}</figcaption></figure>'
                html = tag.sub(lambda _m, f=figure: f, html)
        return page("deployment.html", item=item, row=_row(item), report=html, warnings=_warnings(item.plan))

    async def chart(request: Request) -> Response:
        item, missing = _found(request.path_params["name"])
        if missing:
            return missing
        assert item is not None and item.name is not None
        file = request.path_params["file"]
        files = fleet.files(item.name, item.plan) if item.plan is not None else {}
        if file not in files or not file.endswith(".svg"):
            return page("error.html", 404, title="Not found", message=f"{item.name} has no chart {file!r}")
        return Response(files[file], media_type="image/svg+xml")

    async def whatif(request: Request) -> Response:
        item, missing = _found(request.path_params["name"])
        if missing:
            return missing
        assert item is not None
        form = {k: request.query_params.get(k, "") for k in api.WHAT_IF_FIELDS}
        changed = any(form.values())
        result = api.what_if(item.path, form, out_dir=fleet.out_dir) if changed else None
        after = result.plan if result else None
        charts = {}
        if after is not None:
            charts = {
                k: inline_svg(v) for k, v in api.render_plan(after, ["charts"]).items() if k == "memory.svg"
            }
        before_rows = _figures(item.plan)
        after_rows = _figures(after)
        return page(
            "whatif.html",
            item=item,
            form=form,
            changed=changed,
            result=result,
            rows=[
                (label, value, after_rows[i][1] if i < len(after_rows) else "")
                for i, (label, value) in enumerate(before_rows)
            ],
            charts=charts,
            gpus=api.gpu_names(),
            quantizations=QUANTIZATIONS,
            kv_dtypes=KV_DTYPES,
            current=_current(item.plan),
        )

    async def compare(request: Request) -> Response:
        q = request.query_params
        names = [r.name for r in fleet.load().results if r.name]
        a, b = q.get("a", ""), q.get("b", "")
        ref_a, ref_b, name = q.get("ref_a", ""), q.get("ref_b", ""), q.get("name", "")
        ctx: dict[str, Any] = {"names": names, "a": a, "b": b, "ref_a": ref_a, "ref_b": ref_b, "name": name}
        ctx["sides"], ctx["diff"], ctx["error"] = [], "", ""
        if a and b:
            items = [fleet.item(a), fleet.item(b)]
            if None in items:
                ctx["error"] = "pick two profiles of this fleet"
            else:
                ctx["sides"] = [(x.name, _figures(x.plan)) for x in items if x is not None]
                ctx["diff"] = api.lock_diff_between_plans(items[0].plan, items[1].plan)  # type: ignore[union-attr]
        elif name and (ref_a or ref_b):
            item = fleet.item(name)
            if item is None:
                ctx["error"] = f"no profile named {name!r}"
            else:
                ctx["diff"], ctx["error"] = api.lock_diff_between_refs(
                    item.path, name, ref_a or "HEAD", ref_b, fleet.out_dir
                )
        return page("compare.html", **ctx)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/d/{name}/", deployment),
            Route("/d/{name}/whatif", whatif),
            Route("/d/{name}/{file}", chart),
            Route("/compare", compare),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]
    )


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return path.as_posix()


def _current(plan: Plan | None) -> dict[str, Any]:
    """The form's placeholders: what the plan decided for each field."""
    if plan is None:
        return {}
    e, w = plan.engine, plan.resolved.profile.workload
    return {
        "gpu_name": plan.resolved.gpu.name,
        "gpus": plan.resolved.profile.hardware.gpus,
        "tensor_parallel_size": e.tensor_parallel_size,
        "pipeline_parallel_size": e.pipeline_parallel_size,
        "max_model_len": e.max_model_len,
        "gpu_memory_utilization": e.gpu_memory_utilization,
        "quantization": e.quantization or "none",
        "kv_cache_dtype": e.kv_cache_dtype,
        "concurrency": plan.performance.concurrency if plan.performance else (w.concurrency or ""),
        "request_rate": w.request_rate or "",
    }
