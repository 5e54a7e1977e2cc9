"""Render a Plan into its deployment artifacts: Jinja2 templates over `templates/`, data from `artifacts/`.

Every shell word goes through `shlex.quote` (the `q` filter); every YAML body is data serialised by
`artifacts.yaml_out` (the `to_yaml` filter), never pasted strings. Output is deterministic: no
timestamps, LF newlines, one trailing newline.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from functools import cache
from typing import Any

import jinja2

from .artifacts import compose, context, helm, kube, report
from .artifacts.context import RenderError
from .facts import vllm_flags
from .plan import Plan
from .resources import resource_dir
from .yaml_text import to_yaml, to_yaml_documents

__all__ = ["RenderError", "TARGETS", "render_artifacts", "render_template"]

# The CLI/profile target names, in the order artifacts are listed.
TARGETS = ("command", "vllm-config", "profile", "compose", "helm", "k8s", "lws", "kserve", "report", "charts")


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (Jinja2 keys them by the template source's checksum, so an
    edited template is compiled again): compiling them costs ~50 ms of every cold compile, more than
    rendering. In the user's cache folder, like pre-commit's; none when it cannot be written."""
    import os
    import tempfile

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "vllm-compile", f"jinja2-{jinja2.__version__}")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(folder)


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda v: shlex.quote(str(v))
    env.filters["to_yaml"] = to_yaml
    env.filters["to_yaml_documents"] = to_yaml_documents
    return env


def _finish(text: str) -> str:
    """LF newlines, no trailing blanks, exactly one final newline."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_template(template: str, **ctx: Any) -> str:
    return _finish(_env().get_template(template).render(**ctx))


def _arg_lines(argv: list[str]) -> list[list[str]]:
    """Group `--flag value...` so serve.sh shows one flag per line."""
    lines: list[list[str]] = []
    for word in argv:
        if word.startswith("-") or not lines:
            lines.append([word])
        else:
            lines[-1].append(word)
    return lines


def _command(plan: Plan, ctx: context.Context) -> dict[str, str]:
    text = render_template(
        "serve.sh.j2",
        **ctx.common(),
        env=sorted(ctx.env.items()),
        arg_lines=_arg_lines(ctx.argv),
        dp=ctx.dp_layout,
        literal_expansions=any("$" in w or "`" in w for w in [ctx.model_id, *ctx.argv, *ctx.env.values()]),
    )
    return {"serve.sh": text}


def _vllm_config(plan: Plan, ctx: context.Context) -> dict[str, str]:
    config = vllm_flags.plan_config(plan) | context.extra_args_config(ctx)
    # The environment the deployment needs (deploy.env, and settings a release reads only from the
    # environment, e.g. VLLM_ALL2ALL_BACKEND before 0.11.1) is not expressible in a config file: the
    # usage line carries it.
    return {
        "vllm-config.yaml": render_template("vllm-config.yaml.j2", **ctx.common(), config=config, env=ctx.env)
    }


def _profile(plan: Plan, ctx: context.Context) -> dict[str, str]:
    from .passes.extra_args import without_feature_flags  # features are fields here, not also flags

    profile = without_feature_flags(plan.resolved.profile, plan.resolved.vllm.version)
    data = profile.model_dump(mode="json", exclude_unset=True, by_alias=True)
    data["profile_version"] = plan.resolved.profile.profile_version
    return {"profile.yaml": render_template("profile.yaml.j2", **ctx.common(), profile=data)}


def _compose(plan: Plan, ctx: context.Context) -> dict[str, str]:
    if ctx.spans_nodes:
        return {}  # one compose host cannot hold a multi-node replica; REPORT.md says so
    return {
        "docker-compose.yaml": render_template(
            "docker-compose.yaml.j2", **ctx.common(), compose=compose.build(ctx)
        )
    }


def _helm(plan: Plan, ctx: context.Context) -> dict[str, str]:
    if ctx.dp_layout is not None:
        return {}  # the chart's multi-node mode is a Ray cluster; REPORT.md says so
    return {
        "helm-values.yaml": render_template("helm-values.yaml.j2", **ctx.common(), values=helm.build(ctx))
    }


def _k8s(plan: Plan, ctx: context.Context) -> dict[str, str]:
    if ctx.spans_nodes:
        return _lws(plan, ctx)
    return {
        "k8s/deployment.yaml": render_template(
            "k8s/deployment.yaml.j2", **ctx.common(), obj=kube.deployment(ctx)
        ),
        "k8s/service.yaml": render_template(
            "k8s/service.yaml.j2", **ctx.common(), obj=kube.service(ctx, leader=False)
        ),
        "k8s/pvc.yaml": render_template("k8s/pvc.yaml.j2", **ctx.common(), obj=kube.pvc(ctx)),
    }


def _lws(plan: Plan, ctx: context.Context) -> dict[str, str]:
    out = {
        "k8s/leaderworkerset.yaml": render_template(
            "k8s/leaderworkerset.yaml.j2", **ctx.common(), obj=kube.leader_worker_set(ctx)
        )
    }
    # Each pod gets its own cache volume from the LeaderWorkerSet's volumeClaimTemplates. On one node
    # with `k8s` also requested, the Deployment's Service stays; the LWS gets its own.
    name = "k8s/service.yaml" if ctx.spans_nodes or "k8s" not in ctx.targets else "k8s/lws-service.yaml"
    out[name] = render_template("k8s/service.yaml.j2", **ctx.common(), obj=kube.service(ctx, leader=True))
    return out


def _kserve(plan: Plan, ctx: context.Context) -> dict[str, str]:
    if ctx.dp_layout is not None:
        return {}  # KServe's multi-node runtime is Ray-based; REPORT.md says so
    return {
        "k8s/inferenceservice.yaml": render_template(
            "k8s/inferenceservice.yaml.j2", **ctx.common(), obj=kube.inference_service(ctx)
        )
    }


def _report(plan: Plan, ctx: context.Context) -> dict[str, str]:
    return {"REPORT.md": render_template("REPORT.md.j2", **ctx.common(), r=report.build(plan, ctx))}


def _charts(plan: Plan, ctx: context.Context) -> dict[str, str]:
    from .charts import render_charts  # pygal: only when a chart is drawn
    from .charts.svg import ChartError

    try:
        return render_charts(plan)
    except ChartError as exc:
        raise RenderError(str(exc), ("deploy", "targets")) from exc


_RENDERERS: dict[str, Callable[[Plan, context.Context], dict[str, str]]] = {
    "command": _command,
    "vllm-config": _vllm_config,
    "profile": _profile,
    "compose": _compose,
    "helm": _helm,
    "k8s": _k8s,
    "lws": _lws,
    "kserve": _kserve,
    "report": _report,
    "charts": _charts,
}


def render_artifacts(plan: Plan, targets: list[str]) -> dict[str, str]:
    """Artifacts for `targets` (profile deploy.targets / CLI --emit): relative path -> text.

    Raises RenderError (a ValueError) for a target name it does not know, a model id or name that
    cannot be written safely, or a setting the targeted vLLM version refuses.
    """
    unknown = [t for t in targets if t not in _RENDERERS]
    if unknown:
        raise RenderError(f"unknown artifact target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    if plan.roles:
        return _render_roles(plan, targets)
    ctx = context.build(plan, targets)
    out: dict[str, str] = {}
    for target in TARGETS:
        if target in targets:
            out.update(_RENDERERS[target](plan, ctx))
    return dict(sorted(out.items()))


# Targets a `roles:` profile renders (artifacts/disaggregated.py); the others say why they are not written.
ROLE_TARGETS = ("command", "vllm-config", "compose", "helm", "k8s", "report")
# What the `helm` target writes for each `roles.router` (compose and k8s/ run vLLM's toy proxy whatever it is).
ROUTER_NOTES = {
    "llm-d": "router llm-d: `helm` writes llm-d-values.yaml (the llm-d modelservice chart)",
    "production-stack": "router production-stack: `helm` writes helm-values.yaml (the production-stack "
    "chart's disaggregated prefill)",
    "toy-proxy": "router toy-proxy: no chart values (`helm` writes nothing); vLLM's toy proxy runs in "
    "docker-compose.yaml and k8s/",
}


def _render_roles(plan: Plan, targets: list[str]) -> dict[str, str]:
    """A disaggregated prefill/decode plan: each pool's artifacts, the router, both charts' values."""
    from .artifacts import disaggregated as pd

    ctxs = pd.role_contexts(plan, targets)
    common = {
        **ctxs["decode"].common(),
        "name": plan.resolved.name,
        "k8s_name": context.k8s_name(plan.resolved.name),
    }
    out: dict[str, str] = {}
    for role, ctx in ctxs.items():
        role_plan = plan.roles[role]  # type: ignore[index]
        if "command" in targets:
            out[f"{role}/serve.sh"] = _command(role_plan, ctx)["serve.sh"]
        if "vllm-config" in targets:
            out[f"{role}/vllm-config.yaml"] = _vllm_config(role_plan, ctx)["vllm-config.yaml"]
    proxy = render_template("pd-proxy.py.j2", **common)
    if "compose" in targets or "k8s" in targets:
        out["pd-proxy.py"] = proxy
    misfit = pd.compose_misfit(plan, ctxs) if "compose" in targets else None
    if "compose" in targets and misfit is None:
        data = pd.compose_file(plan, ctxs)
        port = ctxs["decode"].port + 900
        out["docker-compose.yaml"] = render_template(
            "docker-compose-pd.yaml.j2", **common, compose=data, proxy_port=port
        )
    if "k8s" in targets:
        for path, obj in pd.k8s_objects(plan, ctxs, proxy).items():
            out[path] = render_template("k8s/deployment.yaml.j2", **common, obj=obj)
    router = plan.disaggregation["router"]  # type: ignore[index]
    if "helm" in targets and router == "llm-d":
        values = pd.llmd_values(plan, ctxs)
        out["llm-d-values.yaml"] = render_template(
            "llm-d-values.yaml.j2",
            **common,
            values=values,
            chart_version=pd.LLMD_CHART_VERSION,
            connector=values["routing"]["proxy"]["connector"],
        )
    if "helm" in targets and router == "production-stack":
        out["helm-values.yaml"] = render_template(
            "helm-values-pd.yaml.j2", **common, values=pd.production_stack_values(plan, ctxs)
        )
    if "report" in targets:
        skipped = [t for t in targets if t not in ROLE_TARGETS]
        notes = [ROUTER_NOTES[router]] if "helm" in targets else []
        if misfit is not None:  # as for an engine that spans nodes: that target is skipped, and said
            notes.append(f"docker-compose.yaml not written: {misfit} (k8s/ and the chart values hold them)")
        if skipped:
            notes.append(
                f"not generated for a `roles:` profile: {', '.join(skipped)} (the disaggregated artifacts are the "
                "pools' serve.sh / vllm-config, docker-compose.yaml, k8s/ and the router's chart values)"
            )
        out["REPORT.md"] = render_template(
            "REPORT-pd.md.j2", **common, **report.roles_report(plan, ctxs), notes=notes
        )
    return dict(sorted(out.items()))
