"""Runs INSIDE a throwaway virtualenv that has one vLLM release installed (not vllm-compile's venv).

Builds that release's real `vllm serve` parser on a machine without a GPU and either dumps it
(`dump OUT.json [SRC_DIR]`) or parses requested command lines through it (`parse REQUEST.json OUT.json`):
FlexibleArgumentParser (with its `--config` expansion), the serve subcommand's validation, then
`AsyncEngineArgs.from_cli_args`, as `vllm serve` does before it starts anything. Nothing is started.

Standalone on purpose: it imports only vLLM and the standard library, so it runs in any release's venv.
Used by tools/extract_vllm_flags.py and bench/consumer_check.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# Recent releases pick the CPU platform from VLLM_TARGET_DEVICE (vllm/platforms/__init__.py
# cpu_platform_plugin); older ones only from the wheel's version suffix, so the platform is also set
# directly below, before anything asks for vllm.platforms.current_platform.
os.environ["VLLM_TARGET_DEVICE"] = "cpu"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
# Not HF_HUB_OFFLINE: with it, EngineArgs.__post_init__ (0.10.2+) resolves the model id to a local
# snapshot and fails for a model that is not downloaded. Nothing here downloads: no config is created.


def set_cpu_platform() -> str:
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform

    # vllm/platforms/__init__.py resolves `current_platform` lazily into the module global
    # `_current_platform` (module __getattr__); setting it first makes every later lookup the CPU one.
    platforms._current_platform = CpuPlatform()
    return type(platforms.current_platform).__name__


def _flexible_parser_cls() -> type:
    for mod in ("vllm.utils.argparse_utils", "vllm.utils"):
        try:
            module = __import__(mod, fromlist=["FlexibleArgumentParser"])
            return module.FlexibleArgumentParser
        except (ImportError, AttributeError):
            continue
    raise ImportError("FlexibleArgumentParser not found")


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, Any]:
    """(top-level `vllm` parser, its `serve` subparser, the serve subcommand) as vllm/entrypoints/cli/main.py builds them."""
    from vllm.entrypoints.cli import serve

    parser_cls = _flexible_parser_cls()
    top = parser_cls(description="vLLM CLI")
    subparsers = top.add_subparsers(required=False, dest="subparser")
    cmds = serve.cmd_init()
    cmd = cmds[0]
    sub = cmd.subparser_init(subparsers)
    sub.set_defaults(dispatch_function=cmd.cmd)
    return top, sub, cmd


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _repr(v: Any) -> str:
    return _ADDRESS.sub("", repr(v))


def js(v: Any, depth: int = 0) -> Any:
    """A JSON-safe, deterministic rendering of a default or parsed value."""
    if depth > 6:
        return _repr(v)
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return _repr(v)
        return v
    if isinstance(v, enum.Enum):
        return js(v.value, depth + 1)
    if isinstance(v, list | tuple):
        return [js(x, depth + 1) for x in v]
    if isinstance(v, set | frozenset):
        return sorted((js(x, depth + 1) for x in v), key=_repr)
    if isinstance(v, dict):
        return {str(k): js(x, depth + 1) for k, x in v.items()}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        try:
            return {f.name: js(getattr(v, f.name, None), depth + 1) for f in dataclasses.fields(v)}
        except Exception:
            return _repr(v)
    dump = getattr(v, "model_dump", None)
    if callable(dump):
        try:
            return js(dump(), depth + 1)
        except Exception:
            return _repr(v)
    return _repr(v)


def _type_kind(t: Any) -> str:
    if t is None:
        return "str"
    if t in (int, float, str):
        return t.__name__
    # vLLM wraps types (optional_type(int), parse_type(json.loads), human_readable_int, Config.from_cli):
    # classify by what the callable returns for sample inputs, a JSON object first.
    for sample in ("{}", '{"a": 1}'):
        try:
            out = t(sample)
        except Exception:  # noqa: BLE001 - any refusal means "not JSON"
            continue
        if not isinstance(out, str | int | float | bool) and out is not None:
            return "json"
    try:
        out = t("7")
    except Exception:  # noqa: BLE001
        return "str"
    if isinstance(out, bool):
        return "bool"
    if isinstance(out, int):
        return "int"
    if isinstance(out, float):
        return "float"
    return "str"


def _type_name(t: Any) -> str | None:
    if t is None:
        return None
    return getattr(t, "__qualname__", None) or getattr(t, "__name__", None) or repr(t)


def dump_actions(sub: argparse.ArgumentParser) -> list[dict[str, Any]]:
    deprecated_set = set()
    for attr in ("_deprecated", "deprecated_args"):
        value = getattr(sub, attr, None) or getattr(type(sub), attr, None)
        if isinstance(value, set | list | tuple):
            deprecated_set |= {id(a) for a in value}
    # Every string the parser accepts for an action, the hidden ones too (EnableDisableAction keeps
    # `--no-enable-x` registered but out of help: vllm/utils/argparse_utils.py _register_action).
    registered: dict[int, list[str]] = {}
    for string, action in sub._option_string_actions.items():
        registered.setdefault(id(action), []).append(string)
    out = []
    for a in sub._actions:
        if not a.option_strings or isinstance(a, argparse._HelpAction):
            continue
        help_text = a.help if isinstance(a.help, str) else ""
        strings = list(a.option_strings) + [s for s in registered.get(id(a), []) if s not in a.option_strings]
        negative = getattr(a, "negative_option_strings", None)
        if negative is None and isinstance(a, argparse.BooleanOptionalAction):
            negative = [s for s in strings if s.startswith("--no-")]
        entry: dict[str, Any] = {
            "option_strings": strings,
            "negative_strings": sorted(negative) if negative else [],
            "dest": a.dest,
            "action": type(a).__name__,
            "nargs": a.nargs,
            "type": _type_kind(a.type) if a.nargs != 0 else "bool",
            "type_name": _type_name(a.type),
            "choices": js(list(a.choices)) if a.choices is not None else None,
            "default": js(a.default) if a.default is not argparse.SUPPRESS else "==SUPPRESS==",
            "const": js(a.const),
            "required": bool(a.required),
            "deprecated": bool(getattr(a, "deprecated", False)) or id(a) in deprecated_set,
            "help_says_deprecated": "deprecat" in help_text.lower(),
        }
        if entry["help_says_deprecated"]:
            entry["help"] = " ".join(help_text.split())[:300]
        out.append(entry)
    return out


def engine_defaults() -> dict[str, Any]:
    from vllm.engine.arg_utils import EngineArgs

    out: dict[str, Any] = {}
    for f in dataclasses.fields(EngineArgs):
        if f.default is not dataclasses.MISSING:
            out[f.name] = js(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            try:
                out[f.name] = js(f.default_factory())  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001
                out[f.name] = f"==factory failed: {type(exc).__name__}=="
        else:
            out[f.name] = "==required=="
    return out


def env_defaults() -> dict[str, Any]:
    import vllm.envs as envs

    table = getattr(envs, "environment_variables", {})
    saved = dict(os.environ)
    out: dict[str, Any] = {}
    try:
        for name in table:
            os.environ.pop(name, None)
        for name, fn in sorted(table.items()):
            try:
                out[name] = js(fn())
            except Exception as exc:  # noqa: BLE001
                out[name] = f"==error {type(exc).__name__}=="
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return out


class _Rejected(Exception):
    pass


def parse(top: argparse.ArgumentParser, cmd: Any, argv: list[str]) -> dict[str, Any]:
    """Parse `vllm serve <argv>` as the real CLI does; the EngineArgs it builds, or the refusal."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                args = top.parse_args(["serve", *argv])
            except SystemExit as exc:
                lines = [ln.strip() for ln in err.getvalue().strip().splitlines() if ln.strip()]
                raise _Rejected(lines[-3:] or [f"exit {exc.code}"]) from None
            if getattr(args, "model_tag", None) is not None:
                args.model = args.model_tag  # vllm/entrypoints/cli/serve.py ServeSubcommand.cmd
            validate = getattr(cmd, "validate", None)
            if callable(validate):
                validate(args)
            engine = AsyncEngineArgs.from_cli_args(args)
    except _Rejected as exc:
        return {"ok": False, "error": " ".join(exc.args[0])}
    except Exception as exc:  # noqa: BLE001 - vLLM raises anything from its validators
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    fields = {f.name: js(getattr(engine, f.name, None)) for f in dataclasses.fields(engine)}
    return {"ok": True, "engine": fields, "warnings": err.getvalue().strip()[-500:] or None}


def _flag(sub: argparse.ArgumentParser, *names: str) -> str | None:
    strings = {s for a in sub._actions for s in a.option_strings}
    for n in names:
        if n in strings:
            return n[2:]
    return None


def config_probes(top: argparse.ArgumentParser, sub: argparse.ArgumentParser, cmd: Any) -> dict[str, Any]:
    """How this release's `--config` loader reads booleans, lists and objects: run and observed."""
    cap = _flag(sub, "--cudagraph-capture-sizes", "--cuda-graph-sizes")
    comp = _flag(sub, "--compilation-config")
    yamls: dict[str, str] = {
        "bool_true": "enable-prefix-caching: true\n",
        "bool_false": "enable-prefix-caching: false\n",
        "bool_no_true": "no-enable-prefix-caching: true\n",
        "bool_disable_true": "disable-prefix-caching: true\n",
        "chunked_disable_true": "disable-chunked-prefill: true\n",
        "store_true_true": "enforce-eager: true\n",
        "store_true_false": "enforce-eager: false\n",
        "chunked_false": "enable-chunked-prefill: false\n",
        "chunked_no_true": "no-enable-chunked-prefill: true\n",
        "int": "max-num-seqs: 64\n",
        "float": "gpu-memory-utilization: 0.85\n",
        "nargs_list_str": "served-model-name: [a, b]\n",
    }
    if cap:
        yamls["nargs_list_int_one"] = f"{cap}: [128]\n"
        yamls["nargs_list_int_two"] = f"{cap}: [8, 16]\n"
        yamls["nargs_scalar_int"] = f"{cap}: 128\n"
        yamls["nargs_string_int"] = f"{cap}: '8 16'\n"
    if comp:
        yamls["object_level"] = f"{comp}:\n  level: 3\n"
        yamls["object_mode"] = f"{comp}:\n  mode: 3\n"
        yamls["object_string"] = f"{comp}: '{{\"level\": 3}}'\n"
        yamls["object_mode_string"] = f"{comp}: '{{\"mode\": 3}}'\n"
        yamls["object_capture"] = f"{comp}:\n  cudagraph_capture_sizes: [8, 16]\n"
    argvs: dict[str, list[str]] = {
        "cli_O_space": ["-O", "3"],
        "cli_O_joined": ["-O3"],
        "cli_no_prefix": ["--no-enable-prefix-caching"],
        "cli_bool_value": ["--enable-prefix-caching", "false"],
    }
    base = parse(top, cmd, ["m"])
    results: dict[str, Any] = {"baseline_ok": base["ok"]}
    if not base["ok"]:
        results["baseline_error"] = base["error"]

    def diff(r: dict[str, Any]) -> dict[str, Any]:
        if not r["ok"] or not base["ok"]:
            return {"ok": r["ok"], "error": r.get("error")}
        changed = {k: v for k, v in r["engine"].items() if base["engine"].get(k) != v}
        return {"ok": True, "changed": changed}

    with tempfile.TemporaryDirectory() as tmp:
        for key, text in yamls.items():
            path = Path(tmp) / f"{key}.yaml"
            path.write_text(text)
            results[key] = {"yaml": text, **diff(parse(top, cmd, ["m", "--config", str(path)]))}
    for key, words in argvs.items():
        results[key] = {"argv": words, **diff(parse(top, cmd, ["m", *words]))}
    return results


SOURCES = (
    "engine/arg_utils.py",
    "config.py",
    "config",
    "envs.py",
    "utils.py",
    "utils/__init__.py",
    "utils/argparse_utils.py",
    "platforms/__init__.py",
    "platforms/cuda.py",
    "platforms/interface.py",
    "v1/worker/gpu_worker.py",
    "worker/worker.py",
    "worker/gpu_worker.py",
    "entrypoints/cli/serve.py",
    "entrypoints/openai/cli_args.py",
    "v1/engine/core.py",
    "usage/usage_lib.py",
)


def copy_sources(dest: Path) -> None:
    """Keep the files that hold the defaults, for reading after the venv is gone (not committed)."""
    import vllm

    root = Path(vllm.__file__).parent
    for rel in SOURCES:
        src = root / rel
        target = dest / rel
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def main() -> int:
    mode = sys.argv[1]
    platform = set_cpu_platform()
    top, sub, cmd = build_parser()
    import vllm

    if mode == "dump":
        out = Path(sys.argv[2])
        data = {
            "vllm_version": vllm.__version__,
            "python": sys.version.split()[0],
            "platform": platform,
            "actions": dump_actions(sub),
            "engine_defaults": engine_defaults(),
            "env_defaults": env_defaults(),
            "config_probes": config_probes(top, sub, cmd),
        }
        out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        if len(sys.argv) > 3:
            copy_sources(Path(sys.argv[3]))
        return 0
    if mode == "parse":
        request = json.loads(Path(sys.argv[2]).read_text())
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for case in request["cases"]:
                argv = list(case["argv"])
                for name, text in case.get("files", {}).items():
                    path = Path(tmp) / case["id"].replace("/", "_") / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
                    argv = [str(path) if w == f"@{name}" else w for w in argv]
                results[case["id"]] = parse(top, cmd, argv)
        Path(sys.argv[3]).write_text(
            json.dumps({"vllm_version": vllm.__version__, "results": results}, sort_keys=True) + "\n"
        )
        return 0
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
