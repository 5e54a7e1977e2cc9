"""`vllm serve` flags per vLLM release: what exists, how it is spelt, and how a plan becomes flags.

Flag sets come from `facts/data/vllm_flags/<version>.json`, extracted statically from the released
wheels (argparse option strings, checked against the real parser; see the `source` field of each
file) and trimmed to the fields read here. A supported version with no file of its own starts from
the nearest lower file and applies `CHANGES` (dated renames, removals, additions) for the releases in
between; its flag set is marked approximate (`FlagSet.exact` is False). Flags of the next carried file
whose first release is not known are accepted when users pass them (`FlagSet.maybe`) but never emitted
by the compiler, so generated commands only use flags known to exist in the targeted release.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..plan import Plan

_DATA = Path(__file__).resolve().parent / "data" / "vllm_flags"


class FlagError(ValueError):
    """A flag or value the targeted vLLM version would refuse."""


@dataclass(frozen=True)
class Flag:
    name: str  # long option, e.g. --max-model-len
    type: str | None = None
    takes_value: bool | str = True  # True | False | "optional"
    aliases: tuple[str, ...] = ()
    negation: str | None = None  # --no-x (argparse BooleanOptionalAction)
    inverse: str | None = None  # --disable-x for --enable-x (FlexibleArgumentParser, newer releases)
    nargs: str | int | None = None
    action: str | None = None
    choices: tuple[Any, ...] | None = None  # exact argparse choices
    deprecated: bool = False

    @property
    def is_bool(self) -> bool:
        return self.takes_value is False

    @property
    def key(self) -> str:
        """The `--config` YAML key: the long name without its dashes."""
        return self.name[2:]


@dataclass(frozen=True)
class Change:
    """One flag change in a release, as the release notes and vLLM's arg_utils.py history say."""

    version: str  # first release with the change
    kind: str  # "rename" (new name added, old kept as a deprecated alias) | "remove" | "add"
    flag: str
    new: str | None = None  # rename target
    note: str = ""


# Changes between the releases we carry files for (0.8.5, 0.10.2, 0.33.0), for the supported versions in
# between. Only changes with a known first release are listed, each with its source; a flag whose first
# release we do not know is accepted from users (FlagSet.maybe) but never emitted, and a flag whose
# removal we cannot date stays accepted until the carried file that lacks it.
CHANGES: tuple[Change, ...] = (
    Change("0.9.0", "add", "--cuda-graph-sizes", note="vllm PR #17201 (merged after 0.8.5)"),
    Change("0.11.0", "remove", "--max-seq-len-to-capture", note="vllm PR #25543"),
    # vllm PR #26016: --cudagraph-capture-sizes / --max-cudagraph-capture-size; --cuda-graph-sizes deprecated.
    Change("0.11.1", "add", "--max-cudagraph-capture-size", note="vllm PR #26016"),
    Change("0.11.1", "rename", "--cuda-graph-sizes", new="--cudagraph-capture-sizes", note="vllm PR #26016"),
    Change(
        "0.12.0",
        "remove",
        "--disable-log-requests",
        note="vllm PR #29402; logging is off unless --enable-log-requests",
    ),
    Change("0.13.0", "remove", "--task", note="deprecated by vllm PR #21470: use --runner / --convert"),
    Change("0.18.0", "remove", "--swap-space", note="vllm PR #36216"),
)

# Engine settings (EngineConfig field names) -> the long flag in the newest spelling.
SETTING_FLAGS: dict[str, str] = {
    "dtype": "--dtype",
    "quantization": "--quantization",
    "kv_cache_dtype": "--kv-cache-dtype",
    "max_model_len": "--max-model-len",
    "tensor_parallel_size": "--tensor-parallel-size",
    "pipeline_parallel_size": "--pipeline-parallel-size",
    "data_parallel_size": "--data-parallel-size",
    "enable_expert_parallel": "--enable-expert-parallel",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "max_num_seqs": "--max-num-seqs",
    "max_num_batched_tokens": "--max-num-batched-tokens",
    "block_size": "--block-size",
    "enforce_eager": "--enforce-eager",
    "enable_prefix_caching": "--enable-prefix-caching",
    "enable_chunked_prefill": "--enable-chunked-prefill",
    "kv_cache_memory_bytes": "--kv-cache-memory-bytes",
    "num_gpu_blocks_override": "--num-gpu-blocks-override",
    "max_cudagraph_capture_size": "--max-cudagraph-capture-size",
    "cudagraph_capture_sizes": "--cudagraph-capture-sizes",
    "cpu_offload_gb": "--cpu-offload-gb",
}

# Spellings vLLM refuses that configuration tools commonly write (the vLLM Config Wizard among them).
VALUE_ALIASES: dict[str, dict[str, str]] = {
    "--dtype": {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"},
    "--kv-cache-dtype": {
        "fp8_e4m3fn": "fp8_e4m3",
        "fp8_e5m2fnuz": "fp8_e5m2",
        "bf16": "bfloat16",
        "fp16": "float16",
    },
}


def _vkey(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        raise FlagError(f"vLLM version {version!r} is not of the form X.Y.Z") from None


@cache
def carried_versions() -> tuple[str, ...]:
    """Versions with a flags file of their own, ascending."""
    names = [p.stem for p in _DATA.glob("*.json")]
    return tuple(sorted(names, key=_vkey))


@cache
def _load_file(version: str) -> dict[str, Flag]:
    raw = json.loads((_DATA / f"{version}.json").read_text(encoding="utf-8"))
    flags: dict[str, Flag] = {}
    for e in raw["flags"]:
        flags[e["name"]] = Flag(
            name=e["name"],
            type=e.get("type"),
            takes_value=e.get("takes_value", True),
            aliases=tuple(e.get("aliases", ())),
            negation=e.get("negation"),
            inverse=e.get("inverse"),
            nargs=e.get("nargs"),
            action=e.get("action"),
            choices=tuple(e["choices"]) if "choices" in e else None,
            deprecated=bool(e.get("deprecated", False)),
        )
    return flags


@dataclass(frozen=True)
class FlagSet:
    version: str
    base: str  # the flags file it was built from
    exact: bool
    flags: dict[str, Flag]
    strings: dict[str, Flag] = field(repr=False)  # every accepted option string -> its flag
    gone: dict[str, str] = field(repr=False)  # removed/renamed option -> explanation
    # Between two carried releases: options of the next carried release whose first release we do not
    # know. Accepted in extra_args (vLLM may have them), never emitted on our own.
    maybe: dict[str, Flag] = field(default_factory=dict, repr=False)

    def get(self, name: str) -> Flag | None:
        return self.flags.get(name)

    def lookup(self, option: str) -> Flag | None:
        return self.strings.get(option)


def _strings(flags: dict[str, Flag]) -> dict[str, Flag]:
    out: dict[str, Flag] = {}
    for f in flags.values():
        for s in (f.name, *f.aliases, f.negation, f.inverse):
            if s:
                out[s] = f
    return out


def _explain(ch: Change) -> str:
    what = f"renamed to {ch.new}" if ch.kind == "rename" else "removed"
    return f"{what} in vLLM {ch.version}" + (f" ({ch.note})" if ch.note else "")


@cache
def flag_set(version: str) -> FlagSet:
    """The flags `vllm serve` of `version` accepts."""
    carried = carried_versions()
    vk = _vkey(version)
    lower = [v for v in carried if _vkey(v) <= vk]
    if not lower:
        raise FlagError(
            f"vLLM {version} is older than the oldest release vllm-compile knows flags for ({carried[0]})"
        )
    base = lower[-1]
    flags = dict(_load_file(base))
    gone: dict[str, str] = {}
    maybe: dict[str, Flag] = {}
    if base != version:
        higher = [v for v in carried if _vkey(v) > vk]
        upper = _load_file(higher[0]) if higher else {}
        for ch in sorted(CHANGES, key=lambda c: _vkey(c.version)):
            if not (_vkey(base) < _vkey(ch.version) <= vk):
                continue
            if ch.kind == "add" and ch.flag in upper:
                flags[ch.flag] = upper[ch.flag]
            elif ch.kind == "remove":
                flags.pop(ch.flag, None)
                gone[ch.flag] = _explain(ch)
            elif ch.kind == "rename" and ch.new:
                # The new name arrives; the old one stays as a deprecated alias until a dated removal
                # (or the next carried file) drops it.
                old = flags.get(ch.flag)
                if old is not None:
                    flags[ch.flag] = Flag(**{**old.__dict__, "deprecated": True})
                if ch.new not in flags:
                    src = upper.get(ch.new) or old
                    if src is not None:
                        flags[ch.new] = Flag(
                            **{**src.__dict__, "name": ch.new, "negation": None, "inverse": None}
                        )
        known = _strings(flags)
        maybe = {s: f for s, f in _strings(upper).items() if s not in known and s not in gone}
    else:
        # Exact file: explain flags that later/earlier files know under another name.
        for ch in CHANGES:
            if ch.flag not in flags and ch.kind in ("remove", "rename") and _vkey(ch.version) <= vk:
                gone[ch.flag] = _explain(ch)
    return FlagSet(version, base, base == version, flags, _strings(flags), gone, maybe)


def _normalise_option(token: str) -> tuple[str, str | None]:
    """`--gpu_memory_utilization=0.9` -> (`--gpu-memory-utilization`, `0.9`), as FlexibleArgumentParser reads it."""
    value: str | None = None
    if "=" in token:
        token, value = token.split("=", 1)
    if token.startswith("--"):
        # --compilation-config.level: a JSON sub-key of --compilation-config
        head = token[2:].split(".", 1)[0]
        token = "--" + head.replace("_", "-")
    return token, value


def is_option(token: str) -> bool:
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)  # a negative number is a value
        return False
    except ValueError:
        return True


def check_args(version: str, args: list[str]) -> list[str]:
    """Error messages for `vllm serve` arguments that vLLM `version` would refuse (empty list: all fine)."""
    try:
        fs = flag_set(version)
    except FlagError as exc:
        return [str(exc)]
    errors: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not isinstance(token, str):
            errors.append(f"argument {token!r} is not a string")
            continue
        if not is_option(token):
            errors.append(f"unexpected argument {token!r}: extra arguments are flags (--name value)")
            continue
        option, inline = _normalise_option(token)
        flag = fs.lookup(option) or fs.maybe.get(option)
        if flag is None:
            errors.append(_unknown(fs, option))
            while i < len(args) and not is_option(args[i]):
                i += 1  # the unknown flag's values
            continue
        if flag.is_bool:
            if inline is not None:
                errors.append(f"{option} is a switch in vLLM {version} and takes no value (got {inline!r})")
            continue
        values: list[str] = []
        if inline is not None:
            values.append(inline)
        elif flag.nargs in ("+", "*"):
            while i < len(args) and not is_option(args[i]):
                values.append(args[i])
                i += 1
        elif i < len(args) and not is_option(args[i]):
            values.append(args[i])
            i += 1
        if not values and flag.takes_value is True and flag.nargs not in ("*", "?"):
            errors.append(f"{option} needs a value in vLLM {version}")
            continue
        for v in values:
            fixed = VALUE_ALIASES.get(flag.name, {}).get(v)
            if fixed:
                errors.append(f"{option} {v!r} is refused by vLLM; did you mean {fixed!r}?")
        values = [v for v in values if v not in VALUE_ALIASES.get(flag.name, {})]
        if flag.choices is not None:
            allowed = {str(c) for c in flag.choices if c is not None}
            errors.extend(
                f"{option} {v!r} is not accepted by vLLM {version}; choose one of: {', '.join(sorted(allowed))}"
                for v in values
                if v not in allowed
            )
    return errors


def _unknown(fs: FlagSet, option: str) -> str:
    if option in fs.gone:
        return f"unknown flag {option} for vLLM {fs.version}: {fs.gone[option]}"
    later = _first_release(option, fs.version)
    if later:
        return f"unknown flag {option} for vLLM {fs.version}: {later}"
    close = difflib.get_close_matches(option, [*fs.strings, *fs.maybe], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown flag {option} for vLLM {fs.version}{hint}"


def _first_release(option: str, version: str) -> str | None:
    """Where a later release accepts `option`: its first release (CHANGES), else the next carried file."""
    vk = _vkey(version)
    for ch in sorted(CHANGES, key=lambda c: _vkey(c.version)):
        target = ch.new if ch.kind == "rename" else ch.flag
        if ch.kind != "remove" and target == option and _vkey(ch.version) > vk:
            return f"first in vLLM {ch.version}"
    for v in carried_versions():
        if _vkey(v) > vk and option in _strings(_load_file(v)):
            return f"vLLM {v} has it"
    return None


def normalise_value(flag_name: str, value: Any) -> Any:
    """Turn common but refused spellings into vLLM's (`bf16` -> `bfloat16`, `fp8_e4m3fn` -> `fp8_e4m3`)."""
    if isinstance(value, str):
        return VALUE_ALIASES.get(flag_name, {}).get(value, value)
    return value


def resolve_flag(fs: FlagSet, name: str) -> Flag | None:
    """The flag `name` (newest spelling) is known as in this version, following renames backwards."""
    if name in fs.flags:
        return fs.flags[name]
    for ch in CHANGES:
        if ch.kind == "rename" and ch.new == name and ch.flag in fs.flags:
            return fs.flags[ch.flag]
    return None


@dataclass(frozen=True)
class Setting:
    """One decided setting, spelt for one vLLM version."""

    flag: Flag
    value: Any  # python value: bool, int, float, str, list

    def argv(self) -> list[str]:
        """Command-line words for this setting ([] where the version has no way to say it)."""
        if self.flag.is_bool:
            if self.value:
                return [self.flag.name]
            off = self.flag.inverse or self.flag.negation
            return [off] if off else []
        if isinstance(self.value, list | tuple):
            if self.flag.nargs in ("+", "*"):
                return [self.flag.name, *(_word(v) for v in self.value)]
            return [self.flag.name, ",".join(_word(v) for v in self.value)]
        return [self.flag.name, _word(self.value)]

    def config_item(self) -> tuple[str, Any] | None:
        """(`--config` YAML key, value), or None where the version cannot express it."""
        if self.flag.is_bool and not self.value and not (self.flag.inverse or self.flag.negation):
            return None
        return self.flag.key, self.value


def _word(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def setting(version: str, name: str, value: Any) -> Setting | None:
    """Spell one engine setting for `version`; None where the flag does not exist there.

    Raises FlagError when the value is one the version's choices refuse.
    """
    fs = flag_set(version)
    flag = resolve_flag(fs, name)
    if flag is None:
        return None
    value = normalise_value(name, value)
    if flag.is_bool:
        value = bool(value)
        if not value and not (flag.inverse or flag.negation):
            return None  # a store_true flag off is vLLM's default
    elif flag.choices is not None and value is not None:
        allowed = [c for c in flag.choices if c is not None]
        if value not in allowed and str(value) not in {str(c) for c in allowed}:
            raise FlagError(
                f"vLLM {version} {flag.name} accepts {', '.join(str(c) for c in allowed)}; got {value!r}"
            )
    return Setting(flag, value)


# Decisions whose value reaches the command line; vLLM's own defaults are left to vLLM.
EMITTED_BY = frozenset({"user", "recommended"})
# Always written: the plan's numbers depend on them, and vLLM's default may differ (auto context length).
ALWAYS = ("max_model_len",)
# Written when they differ from vLLM's default of 1.
WHEN_PARALLEL = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")


def plan_settings(plan: Plan) -> list[Setting]:
    """The plan's engine settings as flags of the targeted version, in a stable order.

    Emitted: settings decided by the user or by a recommendation, max_model_len, parallel sizes > 1,
    the served model name, the port, trust-remote-code and a pinned revision. A setting whose flag does
    not exist in the version is left out (vLLM's behaviour there is what the plan assumed).
    """
    resolved = plan.resolved
    version = resolved.vllm.version
    engine = plan.engine
    profile = resolved.profile
    out: list[Setting] = []

    def add(name: str, value: Any) -> None:
        s = setting(version, name, value)
        if s is not None:
            out.append(s)

    add("--served-model-name", profile.model.served_model_name or profile.model.id)
    add("--port", profile.deploy.port)
    for field_name, flag_name in SETTING_FLAGS.items():
        value = getattr(engine, field_name)
        decision = plan.decisions.get(field_name)
        if field_name in WHEN_PARALLEL:
            wanted = value > 1
        else:
            wanted = field_name in ALWAYS or (decision is not None and decision.by in EMITTED_BY)
        if wanted and value is not None:
            if field_name == "max_cudagraph_capture_size" and _cap_as_sizes(plan, version):
                # Before --max-cudagraph-capture-size (0.11.1), a single --cuda-graph-sizes value was the cap
                # from which vLLM filled in the sizes (config.py _set_cudagraph_sizes, len(sizes) == 1).
                add("--cudagraph-capture-sizes", [value])
                continue
            add(flag_name, value)
    if profile.model.trust_remote_code:
        add("--trust-remote-code", True)
    revision = profile.model.revision or resolved.model.revision
    if revision:
        add("--revision", revision)
    if spans_nodes(plan):
        add("--distributed-executor-backend", "ray")
    return out


def _cap_as_sizes(plan: Plan, version: str) -> bool:
    fs = flag_set(version)
    sizes = plan.decisions.get("cudagraph_capture_sizes")
    explicit = sizes is not None and sizes.by in EMITTED_BY and plan.engine.cudagraph_capture_sizes
    return (
        resolve_flag(fs, "--max-cudagraph-capture-size") is None
        and resolve_flag(fs, "--cudagraph-capture-sizes") is not None
        and not explicit
    )


def gpus_per_node(plan: Plan) -> int:
    return plan.resolved.profile.hardware.gpus_per_node or plan.resolved.gpu.gpus_per_node


def spans_nodes(plan: Plan) -> bool:
    """One replica needs more GPUs than one node has: vLLM runs over a Ray cluster."""
    return plan.engine.gpus_per_replica > gpus_per_node(plan)


def gpus_per_server(plan: Plan) -> int:
    """GPUs one `vllm serve` process group uses: TP x PP, times DP when it runs inside the server."""
    return plan.engine.total_gpus


def plan_argv(plan: Plan) -> list[str]:
    """`vllm serve` arguments after the model: the plan's settings, then the profile's extra_args."""
    argv = [w for s in plan_settings(plan) for w in s.argv()]
    return argv + list(plan.resolved.profile.vllm.extra_args)


def plan_config(plan: Plan) -> dict[str, Any]:
    """The plan's settings as a `vllm serve --config` mapping (keys are long flag names)."""
    items = (s.config_item() for s in plan_settings(plan))
    return dict(sorted(i for i in items if i is not None))
