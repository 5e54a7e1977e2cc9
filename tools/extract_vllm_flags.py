"""Maintainer script (not run by CI): read every targeted vLLM release's `vllm serve` parser.

For each release, one at a time: a throwaway virtualenv under /tmp, `uv pip install vllm==X` (the
release's own pinned torch and CUDA libraries, from PyPI), then tools/vllm_probe.py inside it builds the
real parser with vLLM's CPU platform as the current platform and dumps every option, the `--config`
loader's observed handling of booleans, lists and objects, EngineArgs' defaults and vllm.envs' defaults.
The dump is trimmed into `compiler/vllm_compile/facts/data/vllm_flags/<X>.json` and the venv deleted.

    python tools/extract_vllm_flags.py                 # every release in facts/data/vllm_versions.json
    python tools/extract_vllm_flags.py 0.19.0 0.20.0   # some
    python tools/extract_vllm_flags.py --from-raw      # re-trim the raw dumps kept under --work

Needs network to PyPI and ~15 GB free under /tmp per release (the uv cache is cleaned when space runs low).
vLLM 0.25.0 imports torchcodec, which needs FFmpeg's shared libraries on the machine (Debian 12:
apt-get install libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "compiler" / "vllm_compile" / "facts" / "data"
OUT = DATA / "vllm_flags"
PROBE = ROOT / "tools" / "vllm_probe.py"
PYTHON = "python3.11"
MIN_FREE = 14 << 30  # below this the uv cache is cleaned before the next install


def versions() -> list[str]:
    table = json.loads((DATA / "vllm_versions.json").read_text(encoding="utf-8"))
    return [r["version"] for r in table["releases"]]


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def release_cutoff(version: str, work: Path) -> str:
    """Two days after the release's last upload: its dependencies resolve as they did when it shipped
    (a newer transformers breaks older releases' imports: vLLM 0.9.2 vs transformers' own `aimv2`)."""
    cache = work / "vllm-pypi.json"
    if not cache.exists():
        with urllib.request.urlopen("https://pypi.org/pypi/vllm/json", timeout=60) as r:
            cache.write_bytes(r.read())
    files = json.loads(cache.read_text(encoding="utf-8"))["releases"][version]
    last = max(f["upload_time_iso_8601"] for f in files)
    when = datetime.datetime.fromisoformat(last.replace("Z", "+00:00")) + datetime.timedelta(days=2)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def install(version: str, work: Path, python: str) -> Path:
    venv = work / f"venv-{version}"
    shutil.rmtree(venv, ignore_errors=True)
    env = {**os.environ, "UV_CACHE_DIR": str(work / "uvcache")}
    uv = shutil.which("uv") or "uv"
    subprocess.run([uv, "venv", "-q", "-p", python, str(venv)], check=True, env={**env})
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
            "--exclude-newer",
            release_cutoff(version, work),
            f"vllm=={version}",
        ],
        check=True,
        env=env,
    )
    return venv


def dump(version: str, venv: Path, work: Path) -> Path:
    raw = work / "raw" / f"{version}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    src = work / "src" / version
    subprocess.run(
        [str(venv / "bin" / "python"), str(PROBE), "dump", str(raw), str(src)],
        check=True,
        timeout=900,
        cwd=str(work),
    )
    return raw


def _flag_entry(a: dict[str, Any], by_dest: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    strings = list(a["option_strings"])
    longs = [s for s in strings if s.startswith("--")]
    negative = set(a.get("negative_strings") or ())
    if a["action"] in ("BooleanOptionalAction", "EnableDisableAction") and not negative:
        # Dumps without `negative_strings`: the off spellings as those actions define them.
        first = longs[0] if longs else ""
        counter = {
            o + first[len(p) :]
            for p, o in (("--enable-", "--disable-"), ("--disable-", "--enable-"))
            if first.startswith(p)
        }
        negative = {s for s in longs if s.startswith("--no-") or s in counter}
    on = [s for s in longs if s not in negative] or longs
    name = on[0] if on else strings[0]
    # The switch that turns it off: `--no-<name>` (argparse BooleanOptionalAction), else the
    # enable/disable counterpart (vLLM's EnableDisableAction); other off spellings are aliases of it.
    negation = f"--no-{name[2:]}" if f"--no-{name[2:]}" in negative else None
    inverse = None
    for prefix, other in (("--enable-", "--disable-"), ("--disable-", "--enable-")):
        if name.startswith(prefix) and other + name[len(prefix) :] in negative:
            inverse = other + name[len(prefix) :]
    if negation is None and inverse is None and negative:
        negation = sorted(negative)[0]
    negations = [s for s in (negation, inverse) if s]
    nargs = a["nargs"]
    takes: bool | str = False if nargs == 0 else ("optional" if nargs == "?" else True)
    entry: dict[str, Any] = {
        "name": name,
        "dest": a["dest"],
        "action": a["action"],
        "takes_value": takes,
        # vLLM's config options parse JSON through a dataclass (arg_utils _compute_kwargs parse_dataclass).
        "type": "json" if "parse_dataclass" in (a.get("type_name") or "") else a["type"],
    }
    if not isinstance(a["default"], dict):
        entry["default"] = a["default"]  # config objects' defaults are in engine_defaults
    aliases = [s for s in strings if s not in (name, *negations)]
    if aliases:
        entry["aliases"] = aliases
    if negation:
        entry["negation"] = negation
    if inverse:
        entry["inverse"] = inverse
    off_aliases = sorted(set(aliases) & negative)
    if off_aliases:
        entry["off_aliases"] = off_aliases
    if nargs not in (None, 0):
        entry["nargs"] = nargs
    if a["choices"] is not None:
        entry["choices"] = a["choices"]
    if a["deprecated"] or a["help_says_deprecated"]:
        entry["deprecated"] = True
        if a.get("help"):
            entry["deprecation"] = a["help"]
    if takes is False and a["action"] in ("_StoreTrueAction", "_StoreFalseAction", "_StoreConstAction"):
        # Two switches writing one destination in opposite senses (--enable-x / --disable-x).
        for other in by_dest.get(a["dest"], []):
            if other is a or other["nargs"] != 0 or other["action"] == a["action"]:
                continue
            entry.setdefault("inverse", other["option_strings"][0])
    return entry


def _loader(probes: dict[str, Any]) -> dict[str, Any]:
    """What the `--config` loader honours, read off the observed parses."""

    def changed(key: str, field: str) -> Any:
        p = probes.get(key) or {}
        if not p.get("ok"):
            return "refused"
        return p.get("changed", {}).get(field, "ignored")

    def ok(key: str) -> bool | None:
        p = probes.get(key)
        return None if p is None else bool(p.get("ok"))

    # `-O 3`: an alias of --compilation-config read as its level/mode (up to 0.10.x, ...), or rewritten by
    # FlexibleArgumentParser.parse_args into --optimization-level (later releases).
    o_key = o_flag = None
    o_changed = (probes.get("cli_O_space") or {}).get("changed", {})
    compiled = o_changed.get("compilation_config")
    if "optimization_level" in o_changed:
        o_flag = "--optimization-level"
    elif isinstance(compiled, dict):
        o_key = next((k for k in ("level", "mode") if compiled.get(k) == 3), None)
    cap_field = None
    for key in ("nargs_list_int_one", "nargs_scalar_int"):
        p = probes.get(key) or {}
        for field in ("cudagraph_capture_sizes", "cuda_graph_sizes"):
            if field in p.get("changed", {}):
                cap_field = field
    return {
        "bool_true": changed("bool_true", "enable_prefix_caching"),
        "bool_false": changed("bool_false", "enable_prefix_caching"),
        "bool_no_key_true": changed("bool_no_true", "enable_prefix_caching"),
        "bool_disable_key_true": changed("bool_disable_true", "enable_prefix_caching"),
        "store_true_false": changed("store_true_false", "enforce_eager"),
        "chunked_false": changed("chunked_false", "enable_chunked_prefill"),
        "chunked_no_key_true": changed("chunked_no_true", "enable_chunked_prefill"),
        "list_int": ok("nargs_list_int_one"),
        "list_int_value": changed("nargs_list_int_two", cap_field) if cap_field else None,
        "list_str": ok("nargs_list_str"),
        "object": ok("object_level"),
        "object_mode": ok("object_mode"),
        "object_as_string": ok("object_string"),
        "cli_O_space": ok("cli_O_space"),
        "O_key": o_key,
        "O_flag": o_flag,
        "list_str_value": changed("nargs_list_str", "served_model_name"),
    }


def _trim_probes(probes: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Probe results with config objects cut to the sub-keys that changed from EngineArgs' default."""
    out: dict[str, Any] = {}
    for key, probe in probes.items():
        if not isinstance(probe, dict) or "changed" not in probe:
            out[key] = probe
            continue
        changed = {}
        for field, value in probe["changed"].items():
            base = defaults.get(field)
            if isinstance(value, dict) and isinstance(base, dict):
                value = {k: v for k, v in value.items() if base.get(k) != v}
            changed[field] = value
        out[key] = {**probe, "changed": changed}
    return out


def source_facts(src: Path) -> dict[str, Any]:
    """Start-up behaviour read from the release's own source (kept under --work/src by the dump)."""
    arg_utils = src / "engine" / "arg_utils.py"
    if not arg_utils.is_file():
        return {}
    text = arg_utils.read_text(encoding="utf-8")
    # engine/arg_utils.py _set_default_args(_v1): "V1 always uses chunked prefills" then
    # `self.enable_chunked_prefill = True` for generative models, whatever the flag said.
    forced = re.search(
        r"V1 always uses chunked prefills?[^\n]*\n(?:[^\n]*\n){0,4}?\s*self\.enable_chunked_prefill = True",
        text,
    )
    return {"chunked_prefill_forced": forced is not None}


def trim(raw: dict[str, Any], version: str, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    actions = raw["actions"]
    by_dest: dict[str, list[dict[str, Any]]] = {}
    for a in actions:
        by_dest.setdefault(a["dest"], []).append(a)
    flags = sorted((_flag_entry(a, by_dest) for a in actions if a["dest"] != "help"), key=lambda e: e["name"])
    home_free = {
        k: v
        for k, v in raw["env_defaults"].items()
        if not (isinstance(v, str) and ("/root" in v or "/tmp" in v or v.startswith("==")))
    }
    return {
        "version": version,
        "source": (
            f"vllm=={raw['vllm_version']} installed from PyPI (python {raw['python']}); the `vllm serve` parser "
            f"built by the release itself with {raw['platform']} as current platform "
            "(tools/extract_vllm_flags.py + tools/vllm_probe.py)"
        ),
        "config_loader": _loader(raw["config_probes"]),
        "config_probes": _trim_probes(raw["config_probes"], raw["engine_defaults"]),
        "engine_defaults": raw["engine_defaults"],
        "env_defaults": home_free,
        "source_facts": facts or {},
        "flags": flags,
    }


def write(version: str, raw_path: Path) -> Path:
    raw = json.loads(raw_path.read_text(encoding="utf-8"))
    data = trim(raw, version, source_facts(raw_path.parent.parent / "src" / version))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{version}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("versions", nargs="*")
    ap.add_argument("--work", type=Path, default=Path("/tmp/vx"))
    ap.add_argument("--python", default=PYTHON)
    ap.add_argument("--keep", default="", help="comma-separated versions whose venv is kept (for the bench)")
    ap.add_argument("--from-raw", action="store_true", help="re-trim the raw dumps, install nothing")
    ap.add_argument("--skip-done", action="store_true", help="skip releases with a raw dump already")
    ap.add_argument("--reuse", action="store_true", help="dump from an existing venv instead of reinstalling")
    args = ap.parse_args(argv)
    wanted = args.versions or versions()
    keep = {v for v in args.keep.split(",") if v}
    args.work.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    for version in wanted:
        raw = args.work / "raw" / f"{version}.json"
        if args.from_raw or (args.skip_done and raw.exists()):
            if raw.exists():
                write(version, raw)
            continue
        if free_bytes(args.work) < MIN_FREE:
            log(f"low disk ({free_bytes(args.work) >> 30} GiB free): cleaning the uv cache")
            subprocess.run(
                ["uv", "cache", "clean"],
                env={**os.environ, "UV_CACHE_DIR": str(args.work / "uvcache")},
                check=False,
            )
            for old in sorted(keep):
                if free_bytes(args.work) >= MIN_FREE // 2:
                    break
                log(f"still low: dropping the kept venv of {old}")
                shutil.rmtree(args.work / f"venv-{old}", ignore_errors=True)
        t0 = time.time()
        log(f"{version}: installing")
        try:
            venv = args.work / f"venv-{version}"
            if not (args.reuse and (venv / "bin" / "vllm").exists()):
                venv = install(version, args.work, args.python)
            log(f"{version}: installed in {time.time() - t0:.0f}s; dumping")
            write(version, dump(version, venv, args.work))
            log(f"{version}: done in {time.time() - t0:.0f}s")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            failed[version] = str(exc)
            log(f"{version}: FAILED {exc}")
        if version not in keep:
            shutil.rmtree(args.work / f"venv-{version}", ignore_errors=True)
        log(f"free: {free_bytes(args.work) >> 30} GiB")
    for version, why in failed.items():
        log(f"failed {version}: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
