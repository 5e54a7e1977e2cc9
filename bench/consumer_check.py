"""Consumer check: every artifact that starts vLLM, parsed by the real parser of the release it targets.

For each vLLM release with a throwaway virtualenv (made by tools/extract_vllm_flags.py --keep, or here
with --install, one at a time, deleted after): render the bundled profiles of `profiles/` (re-targeted
at that release) and a matrix of test profiles with this repo's code, take every `vllm serve`
invocation the artifacts hold (serve.sh, `--config vllm-config.yaml`, the Kubernetes Deployment /
LeaderWorkerSet / KServe args, docker-compose, the production-stack chart values as the chart's
template turns them into arguments), run each through the release's own FlexibleArgumentParser,
serve validation and `AsyncEngineArgs.from_cli_args` (tools/vllm_probe.py, nothing started), and
compare every engine field with the lock.

A field counts as "left to vLLM" when the artifact does not set it and the lock says vLLM decides it
(`by: vllm-default` / `derived`); everything else must parse to the lock's value. Prints one table per
release; exits 1 on any rejected artifact or differing field.

    python bench/consumer_check.py                       # every release with /tmp/vx/venv-<X>
    python bench/consumer_check.py 0.19.0 --install      # install, check, delete
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tools" / "vllm_probe.py"
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))  # tests.fixtures: the chart's argv, one definition for the tests and this bench

from tests.fixtures.artifact_checks import chart_argv  # noqa: E402

from vllm_compile import api  # noqa: E402
from vllm_compile.facts import vllm_flags  # noqa: E402
from vllm_compile.facts.vllm_versions import SUPPORTED_VERSIONS, get_vllm_version, version_key  # noqa: E402
from vllm_compile.profile.loader import load_profile  # noqa: E402
from vllm_compile.render import TARGETS, RenderError, render_artifacts  # noqa: E402

MODEL_8B = "meta-llama/Llama-3.1-8B-Instruct"
# Test profiles: each is rendered for every release. Settings the matrix varies are the ones whose
# spelling differs between releases (booleans, lists, JSON options, renamed flags, offload, overrides).
MATRIX: dict[str, dict[str, Any]] = {
    "base": {},
    "prefix-off": {"vllm": {"enable_prefix_caching": False}},
    "prefix-on-chunked-off": {"vllm": {"enable_prefix_caching": True, "enable_chunked_prefill": False}},
    "eager": {"vllm": {"enforce_eager": True}},
    "graphs-on": {"vllm": {"enforce_eager": False, "max_cudagraph_capture_size": 128}},
    "tuned": {
        "vllm": {
            "gpu_memory_utilization": 0.85,
            "max_num_seqs": 128,
            "max_num_batched_tokens": 4096,
            "block_size": 32,
            "kv_cache_dtype": "fp8",
        }
    },
    "offload": {"vllm": {"cpu_offload_gb": 2.0, "num_gpu_blocks_override": 4000}},
    "kv-bytes": {"vllm": {"kv_cache_memory_bytes": 20 << 30}},
    "tp2": {"hardware": {"gpus": 2}, "parallelism": {"tensor_parallel_size": 2}},
    "extra-args": {"vllm": {"extra_args": ["-O", "3", "--disable-log-stats", "--seed", "7"]}},
    "multi-node": {
        "model": {"id": "meta-llama/Meta-Llama-3.1-405B", "max_model_len": 8192},
        "hardware": {"gpu_name": "H100", "gpus": 16, "gpus_per_node": 8, "interconnect": "infiniband"},
        "parallelism": {"tensor_parallel_size": 8, "pipeline_parallel_size": 2},
        "vllm": {"kv_cache_dtype": "fp8", "enable_prefix_caching": False},
    },
}
BASE: dict[str, Any] = {
    "profile_version": 1,
    "model": {"id": MODEL_8B, "max_model_len": 8192},
    "hardware": {"gpu_name": "H100", "gpus": 1},
    "deploy": {"targets": [t for t in TARGETS if t not in ("lws", "profile", "report")]},
}
# Lock engine field -> EngineArgs field, where they differ by release (vllm PR #26016, 0.11.1).
DECIDED_BY_VLLM = {"vllm-default", "derived"}


@dataclass
class Case:
    id: str
    profile: str
    artifact: str
    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    release: str
    cases: int = 0
    rejected: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    fields: int = 0
    left_to_vllm: int = 0
    not_rendered: list[str] = field(default_factory=list)
    profiles: int = 0


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def bundled_profiles() -> list[tuple[str, Any]]:
    paths = sorted(p for p in (ROOT / "profiles").rglob("*.y*ml") if not p.name.startswith("_"))
    out = []
    for p in paths:
        loaded = load_profile(p)
        out.append((p.relative_to(ROOT / "profiles").as_posix(), loaded))
    return out


def _serve_words(script: str) -> list[str] | None:
    body = script.replace("\\\n", " ")
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("exec vllm serve ") or line.startswith("vllm serve "):
            if "$" in line:  # shell expansions (a LeaderWorkerSet worker's rank): let bash expand them
                return _bash_words(line)
            words = shlex.split(line)
            return words[words.index("serve") + 1 :]
    return None


# What a LeaderWorkerSet sets in every pod (lws.x-k8s.io): worker 1 of a group, its leader's address.
LWS_ENV = {"LWS_WORKER_INDEX": "1", "LWS_LEADER_ADDRESS": "leader.example.svc", "LWS_GROUP_SIZE": "2"}


def _bash_words(line: str) -> list[str]:
    """The words bash passes to `vllm serve` for `line`, with a stand-in `vllm` that prints them."""
    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp) / "vllm"
        fake.write_text('#!/bin/sh\nshift\nprintf "%s\\0" "$@"\n')
        fake.chmod(0o755)
        env = {"PATH": f"{tmp}:/usr/bin:/bin", **LWS_ENV}
        done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, check=True)
    return done.stdout.split("\0")[:-1]


def _exports(script: str) -> dict[str, str]:
    """`export KEY=VALUE` lines of a shell script."""
    env: dict[str, str] = {}
    for line in script.splitlines():
        if line.startswith("export "):
            key, _, value = " ".join(shlex.split(line)[1:]).partition("=")
            env[key] = value
    return env


def _usage_env(config: str) -> dict[str, str]:
    """The `KEY=VALUE` words before `vllm serve` on the config file's usage line."""
    for line in config.splitlines():
        if line.startswith("# Usage: "):
            words = (
                shlex.split(line.removeprefix("# Usage: ").split(" vllm serve ")[0])
                if " vllm serve " in line
                else []
            )
            return dict(w.partition("=")[::2] for w in words if "=" in w)
    return {}


def _containers(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "image" in node and ("args" in node or "command" in node):
            found.append(node)
        for v in node.values():
            found += _containers(v)
    elif isinstance(node, list):
        for v in node:
            found += _containers(v)
    return found


def _container_argv(c: dict[str, Any]) -> list[str] | None:
    """The `vllm serve` arguments of a Kubernetes container or a compose service, None for another program."""
    command = [str(w) for w in c.get("command") or []]
    args = [str(w) for w in c.get("args") or []]
    entrypoint = [str(w) for w in c.get("entrypoint") or []]  # compose only
    if entrypoint and not any("vllm" in w for w in entrypoint):
        return None  # another program in the vLLM image (the P/D proxy)
    if command[-1:] == ["-c"] or (command[:1] == ["/bin/bash"] and args):
        # Kubernetes expands $(VAR) in args and turns $$ into $ before the shell sees them.
        return _serve_words(args[0].replace("$$", "$")) if args else None
    words = command + args
    if "serve" in words:
        return words[words.index("serve") + 1 :]
    if "args" in c and command:
        return None  # Kubernetes: `command` replaces the image's `vllm serve` entrypoint
    if str(c.get("image", "")).startswith("vllm/vllm-openai") and words:
        return words  # the image's entrypoint is `vllm serve`
    return None


def helm_argv(values: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The `vllm serve` arguments and engine env the production-stack 0.1.12 chart makes of the values.

    helm/templates/deployment-vllm-multi.yaml: --host/--port, --enable-chunked-prefill or
    --no-enable-chunked-prefill when the key is there, --enable-prefix-caching or
    --no-enable-prefix-caching always, then --max-model-len, --dtype, --tensor-parallel-size,
    --max-num-seqs, --gpu_memory_utilization, --max_loras when present, then extraArgs.
    ray-cluster.yaml (raySpec): VLLM_USE_V1 = vllmConfig.v1 when the key is there, else "0".
    """
    model = values["servingEngineSpec"]["modelSpec"][0]
    vc = model.get("vllmConfig", {})
    argv = [model["modelURL"], *chart_argv(values)]
    env = {str(e["name"]): str(e.get("value", "")) for e in model.get("env") or []}  # modelSpec[].env
    if model.get("raySpec", {}).get("enabled"):
        env["VLLM_USE_V1"] = str(vc["v1"]) if "v1" in vc else "0"
    elif str(vc.get("v0", "")) == "1":
        env["VLLM_USE_V1"] = "0"
    return argv, env


def cases_for(name: str, plan: Any, files: dict[str, str]) -> list[Case]:
    model = plan.resolved.profile.model.id
    out: list[Case] = []
    if "serve.sh" in files:
        words = _serve_words(files["serve.sh"])
        if words is not None:
            out.append(Case(f"{name}/serve.sh", name, "serve.sh", words, env=_exports(files["serve.sh"])))
    if "vllm-config.yaml" in files:
        out.append(
            Case(
                f"{name}/vllm-config.yaml",
                name,
                "vllm-config.yaml",
                [model, "--config", "@vllm-config.yaml"],
                files={"vllm-config.yaml": files["vllm-config.yaml"]},
                env=_usage_env(files["vllm-config.yaml"]),
            )
        )
    for rel in sorted(files):
        if rel.startswith("k8s/") or rel == "docker-compose.yaml":
            for n, doc in enumerate(yaml.safe_load_all(files[rel])):
                if not doc:
                    continue
                if rel == "docker-compose.yaml":
                    for svc_name, svc in sorted(doc.get("services", {}).items()):
                        cmd = [str(w) for w in svc.get("command", [])]
                        entrypoint = [str(w) for w in svc.get("entrypoint") or []]
                        if entrypoint and not any("vllm" in w for w in entrypoint):
                            continue  # another program in the vLLM image (the P/D proxy)
                        environment = svc.get("environment") or {}
                        if isinstance(environment, list):  # compose's KEY=VALUE list form
                            environment = dict(str(e).partition("=")[::2] for e in environment)
                        env = {str(k): str(v) for k, v in environment.items()}
                        if cmd:
                            out.append(Case(f"{name}/{rel}:{svc_name}", name, "compose", cmd, env=env))
                    continue
                if doc.get("kind") == "InferenceService":
                    m = doc["spec"]["predictor"]["model"]
                    # kserve-vllmserver runtime (KServe v0.20.0): --port=8080 --served-model-name={{.Name}}
                    # --model=/mnt/models, then the InferenceService's args.
                    argv = ["/mnt/models", "--port=8080", f"--served-model-name={doc['metadata']['name']}"]
                    worker = doc["spec"]["predictor"].get("workerSpec")
                    if worker:
                        # Multi-node (kserve-huggingfaceserver-multinode): KServe passes the workerSpec
                        # sizes to the engine and starts it over its Ray cluster.
                        argv += [
                            "--tensor-parallel-size",
                            str(worker["tensorParallelSize"]),
                            "--pipeline-parallel-size",
                            str(worker["pipelineParallelSize"]),
                            "--distributed-executor-backend",
                            "ray",
                        ]
                    env = {str(e["name"]): str(e.get("value", "")) for e in m.get("env") or []}
                    out.append(
                        Case(
                            f"{name}/{rel}",
                            name,
                            "kserve",
                            argv + [str(a) for a in m.get("args", [])],
                            env=env,
                        )
                    )
                    continue
                for i, c in enumerate(_containers(doc)):
                    words = _container_argv(c)
                    if words is not None:
                        env = {str(e["name"]): str(e.get("value", "")) for e in c.get("env") or []}
                        out.append(Case(f"{name}/{rel}#{n}.{i}", name, rel.split("/")[-1], words, env=env))
    if "helm-values.yaml" in files:
        argv, env = helm_argv(yaml.safe_load(files["helm-values.yaml"]))
        out.append(Case(f"{name}/helm-values.yaml", name, "helm", argv, env=env))
    return out


def plans_for(release: str) -> tuple[list[tuple[str, Any, dict[str, str]]], list[str]]:
    """(name, plan, files) for every bundled profile re-targeted at `release` and every matrix profile."""
    out: list[tuple[str, Any, dict[str, str]]] = []
    skipped: list[str] = []
    sources: list[tuple[str, Any]] = []
    for rel, loaded in bundled_profiles():
        profile = loaded.profile
        profile = profile.model_copy(update={"vllm": profile.vllm.model_copy(update={"version": release})})
        sources.append((f"profiles/{rel}", (profile, loaded.name, (ROOT / "profiles" / rel).parent)))
    for key, override in MATRIX.items():
        data = _merge(_merge(BASE, override), {"vllm": {"version": release}, "name": f"m-{key}"})
        try:
            sources.append((f"matrix/{key}", (api.load_profile_dict(data), f"m-{key}", ROOT)))
        except Exception as exc:  # noqa: BLE001 - a profile this release cannot take is reported
            skipped.append(f"matrix/{key}: {exc}")
    for name, (profile, pname, base_dir) in sources:
        try:
            plan = api.plan_profile(profile, name=pname, base_dir=base_dir)
            targets = [t for t in TARGETS if t not in ("profile", "report")]
            if plan.engine.gpus_per_replica <= vllm_flags.gpus_per_node(plan):
                targets = [t for t in targets if t != "lws"]
            files = render_artifacts(plan, targets)
        except (RenderError, vllm_flags.FlagError, ValueError) as exc:
            skipped.append(f"{name}: {str(exc)[:200]}")
            continue
        except Exception as exc:  # noqa: BLE001 - a diagnostic (DiagnosticError) is reported, not fatal
            skipped.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        out.append((name, plan, files))
    return out, skipped


# Lock fields that a release keeps inside a JSON config: EngineArgs.eplb_config from 0.12.0
# (--eplb-config '{"num_redundant_experts": N}'), --num-redundant-experts before.
NESTED = {"num_redundant_experts": ("eplb_config", "num_redundant_experts")}
# Lock fields that a release reads from an environment variable instead (vllm/envs.py): the all-to-all
# backend before --all2all-backend (0.11.1).
ENV_FIELDS = {"all2all_backend": "VLLM_ALL2ALL_BACKEND"}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) < 1e-9
        except (TypeError, ValueError):
            return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return bool(a == b)


def compare(
    plan: Any, engine: dict[str, Any], defaults: dict[str, Any], env: dict[str, str]
) -> tuple[list[str], int, int]:
    """(differences, fields compared, fields left to vLLM) between the lock and the parsed EngineArgs."""
    diffs: list[str] = []
    left = 0
    locked = plan.engine.model_dump()
    release = plan.resolved.vllm.version
    has_cap = "max_cudagraph_capture_size" in engine
    sizes_field = "cudagraph_capture_sizes" if "cudagraph_capture_sizes" in engine else "cuda_graph_sizes"
    for name, want in sorted(locked.items()):
        decision = plan.decisions.get(name)
        by = decision.by if decision is not None else None
        if name == "cudagraph_capture_sizes" and by is None:
            by = "derived"  # vLLM derives the sizes from the batch settings (the lock models _set_cudagraph_sizes)
        if name == "cudagraph_capture_sizes":
            got = engine.get(sizes_field)
            dflt = defaults.get(sizes_field)
            cap = locked.get("max_cudagraph_capture_size")
            if not has_cap and cap and isinstance(got, list) and got == [cap]:
                left += 1  # one size before 0.11.1 is the cap vLLM fills the sizes up to
                continue
        elif name == "max_cudagraph_capture_size" and not has_cap:
            got = engine.get(sizes_field)
            # One size is the cap vLLM fills the list up to; an explicit list ends at the cap.
            if want is None or (isinstance(got, list) and got and max(got) == want):
                continue
            diffs.append(f"{name}: lock {want!r}, vLLM {release} parsed {sizes_field}={got!r}")
            continue
        elif name not in engine and name in ENV_FIELDS:
            got = env.get(ENV_FIELDS[name])  # a release that reads the setting from the environment
            dflt = None
            if got is None and by in DECIDED_BY_VLLM:
                left += 1
                continue
        elif name not in engine and NESTED.get(name, ("",))[0] in engine:
            outer, key = NESTED[name]  # a field that moved into a JSON config of a later release
            config = engine[outer]
            config = json.loads(config) if isinstance(config, str) else (config or {})
            got = config.get(key) if isinstance(config, dict) else getattr(config, key, None)
            dflt = None
        else:
            if name not in engine:
                if want in (None, 0, 0.0, False):
                    continue
                diffs.append(f"{name}: lock {want!r}, vLLM {release} has no such engine argument")
                continue
            got = engine[name]
            dflt = defaults.get(name)
        if _same(got, want):
            continue
        if _same(got, dflt) and (by in DECIDED_BY_VLLM or (by is None and want in (None, 0, 0.0))):
            left += 1
            continue
        diffs.append(f"{name}: lock {want!r} ({by or 'profile'}), vLLM parsed {got!r}")
    # The engine the chart's environment selects (VLLM_USE_V1=0 picks V0 where the release still has it).
    version = get_vllm_version(release)
    if env.get("VLLM_USE_V1") == "0" and version.v0_available and version.engine == "V1":
        diffs.append("engine: lock V1, the chart sets VLLM_USE_V1=0 (the V0 engine runs)")
    return diffs, len(locked), left


def check_release(release: str, venv: Path, *, verbose: bool = False) -> Outcome:
    outcome = Outcome(release)
    rendered, skipped = plans_for(release)
    outcome.not_rendered = skipped
    outcome.profiles = len(rendered)
    cases: list[tuple[Case, Any]] = []
    for name, plan, files in rendered:
        cases += [(c, plan) for c in cases_for(name, plan, files)]
    request = {"cases": [{"id": c.id, "argv": c.argv, "files": c.files} for c, _ in cases]}
    with tempfile.TemporaryDirectory() as tmp:
        req, res = Path(tmp) / "req.json", Path(tmp) / "res.json"
        req.write_text(json.dumps(request))
        subprocess.run(
            [str(venv / "bin" / "python"), str(PROBE), "parse", str(req), str(res)], check=True, cwd=tmp
        )
        results = json.loads(res.read_text())["results"]
    defaults = vllm_flags.engine_defaults(release)
    for c, plan in cases:
        outcome.cases += 1
        r = results[c.id]
        if not r["ok"]:
            outcome.rejected.append(f"{c.id}: {r['error']}")
            continue
        diffs, n, left = compare(plan, r["engine"], defaults, c.env)
        outcome.fields += n
        outcome.left_to_vllm += left
        outcome.different += [f"{c.id}: {d}" for d in diffs]
    return outcome


def print_table(outcomes: list[Outcome]) -> None:
    head = f"{'release':<8} {'profiles':>8} {'artifacts':>9} {'rejected':>8} {'fields':>7} {'different':>9} {'left to vLLM':>12} {'not rendered':>12}"
    print(head)
    print("-" * len(head))
    for o in outcomes:
        print(
            f"{o.release:<8} {o.profiles:>8} {o.cases:>9} {len(o.rejected):>8} {o.fields:>7} "
            f"{len(o.different):>9} {o.left_to_vllm:>12} {len(o.not_rendered):>12}"
        )
    for o in outcomes:
        for line in o.rejected:
            print(f"  {o.release} REJECTED {line}")
        for line in o.different:
            print(f"  {o.release} DIFFERENT {line}")
        for line in o.not_rendered:
            print(f"  {o.release} not rendered (a diagnostic) {line}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("versions", nargs="*")
    ap.add_argument("--work", type=Path, default=Path("/tmp/vx"))
    ap.add_argument("--install", action="store_true", help="install a missing release (deleted after)")
    ap.add_argument("--json", type=Path, help="also write the outcomes as JSON here")
    args = ap.parse_args(argv)
    wanted = args.versions or [v for v in SUPPORTED_VERSIONS if (args.work / f"venv-{v}").exists()]
    outcomes: list[Outcome] = []
    for release in sorted(wanted, key=version_key):
        venv = args.work / f"venv-{release}"
        made = False
        if not (venv / "bin" / "python").exists():
            if not args.install:
                print(f"{release}: no venv at {venv} (use --install)", file=sys.stderr)
                continue
            import extract_vllm_flags

            venv = extract_vllm_flags.install(release, args.work, extract_vllm_flags.PYTHON)
            made = True
        try:
            outcomes.append(check_release(release, venv))
        finally:
            if made:
                shutil.rmtree(venv, ignore_errors=True)
        print(f"{release}: checked", file=sys.stderr, flush=True)
    print_table(outcomes)
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=1) + "\n")
    bad = any(o.rejected or o.different for o in outcomes)
    return 1 if bad or not outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
