"""`vllm serve` flags per vLLM release: what exists, how it is spelt, and how a plan becomes flags.

Every targeted release has `facts/data/vllm_flags/<version>.json`, dumped from that release's own
`vllm serve` parser (tools/extract_vllm_flags.py: the release installed from PyPI, its parser built with
vLLM's CPU platform as the current platform). Each file holds every option (name, aliases, negation,
inverse, type, choices, nargs, default, deprecation), how the release's `--config` loader was observed
to read booleans, lists and objects (`config_loader`), and EngineArgs' defaults (`engine_defaults`).
A patch release without a file of its own ("0.19.1") uses the file of the nearest lower release
(`FlagSet.exact` is False).
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
    inverse: str | None = None  # --disable-x for --enable-x (the opposite switch, newer releases)
    nargs: str | int | None = None
    action: str | None = None
    choices: tuple[Any, ...] | None = None  # exact argparse choices
    deprecated: bool = False
    dest: str | None = None  # the argparse destination = the EngineArgs field
    default: Any = field(default=None, compare=False, hash=False)
    off_aliases: tuple[str, ...] = ()  # other spellings that turn a switch off (hidden --no-enable-x)

    def turns_off(self, option: str) -> bool:
        """Whether giving `option` (one of this switch's strings) sets it to False."""
        return option in (self.negation, self.inverse, *self.off_aliases)

    @property
    def is_bool(self) -> bool:
        return self.takes_value is False

    @property
    def key(self) -> str:
        """The `--config` YAML key: the long name without its dashes."""
        return self.name[2:]


@dataclass(frozen=True)
class ConfigLoader:
    """How one release's `vllm serve --config` turns YAML into arguments, as observed on its parser.

    vLLM 0.8.5-0.10.x write `--key str(value)` for every non-boolean and `--key` for `true`, dropping
    `false` (utils.py FlexibleArgumentParser._load_config_file); lists became `--key v1 v2` in 0.10.2.
    """

    bool_false: bool = False  # `x: false` turns x off (else it is silently dropped)
    no_key: bool = True  # `no-x: true` turns x off
    lists: bool = True  # `x: [1, 2]` gives x the list (else one refused string "[1, 2]")
    objects: bool = True  # a mapping value reaches a JSON option as that object
    O_key: str | None = None  # what `-O N` sets inside --compilation-config: "level" or "mode"
    O_flag: str | None = None  # the flag FlexibleArgumentParser rewrites `-O N` / `-ON` into


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
def _release(version: str) -> dict[str, Any]:
    return dict(json.loads((_DATA / f"{version}.json").read_text(encoding="utf-8")))


@cache
def _load_file(version: str) -> dict[str, Flag]:
    flags: dict[str, Flag] = {}
    for e in _release(version)["flags"]:
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
            dest=e.get("dest"),
            default=e.get("default"),
            off_aliases=tuple(e.get("off_aliases", ())),
        )
    return flags


@cache  # pure (the carried versions are fixed); every flag lookup of a plan asks it again
def _base_version(version: str) -> str:
    carried = carried_versions()
    lower = [v for v in carried if _vkey(v) <= _vkey(version)]
    if not lower:
        raise FlagError(
            f"vLLM {version} is older than the oldest release vllm-compile knows flags for ({carried[0]})"
        )
    return lower[-1]


@cache
def config_loader(version: str) -> ConfigLoader:
    """The `--config` loader behaviour of `version` (from the nearest lower release's dump)."""
    raw = _release(_base_version(version)).get("config_loader", {})
    return ConfigLoader(
        bool_false=raw.get("bool_false") is False,
        no_key=raw.get("bool_no_key_true") is False,
        # A list of ints (the capture sizes) and, where the release has no such option, a list of names.
        lists=raw.get("list_int") is True
        or (raw.get("list_int") is None and raw.get("list_str_value") == ["a", "b"]),
        # A YAML mapping reaches --compilation-config as an object (0.8.5, 0.19+; the ones between write
        # str(dict), which is not JSON). `object_mode`: {mode: 3}, for releases that refuse `level`.
        objects=raw.get("object") is True or raw.get("object_mode") is True,
        O_key=raw.get("O_key"),
        O_flag=raw.get("O_flag"),
    )


def release_data(version: str) -> dict[str, Any]:
    """The whole parser dump of the nearest carried release at or below `version`."""
    return _release(_base_version(version))


def engine_defaults(version: str) -> dict[str, Any]:
    """EngineArgs' field defaults in `version` (None: decided at start-up from the model and the GPU)."""
    return dict(_release(_base_version(version)).get("engine_defaults", {}))


@dataclass(frozen=True)
class FlagSet:
    version: str
    base: str  # the flags file it was built from
    exact: bool
    flags: dict[str, Flag]
    strings: dict[str, Flag] = field(repr=False)  # every accepted option string -> its flag
    # Kept for callers of the former interface: every release is read from its parser now, so there
    # are no flags of unknown standing left.
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


@cache
def flag_set(version: str) -> FlagSet:
    """The flags `vllm serve` of `version` accepts."""
    base = _base_version(version)
    flags = dict(_load_file(base))
    strings = _strings(flags)
    o_flag = config_loader(base).O_flag
    if o_flag in flags and "-O" not in strings:
        strings["-O"] = flags[o_flag]  # parse_args rewrites -O N into it before argparse sees it
    return FlagSet(version, base, base == version, flags, strings)


def _history(option: str) -> list[tuple[str, Flag]]:
    """(release, flag) for every carried release whose parser accepts `option`, ascending."""
    return [(v, f) for v in carried_versions() if (f := flag_set(v).lookup(option)) is not None]


def _explain_missing(option: str, version: str) -> str | None:
    """Why `option` is not in `version`: removed or renamed after some release, or first in a later one."""
    vk = _vkey(version)
    seen = _history(option)
    before = [(v, f) for v, f in seen if _vkey(v) < vk]
    if before:
        last, old = before[-1]
        after = [v for v in carried_versions() if _vkey(v) > _vkey(last)]
        gone_in = after[0] if after else version
        now = flag_set(version).flags
        renamed = next((f for f in now.values() if old.dest and f.dest == old.dest), None)
        renamed = renamed or next(
            (now[n] for n, olds in RENAMED.items() if option in olds and n in now), None
        )
        if renamed is not None:
            return f"renamed to {renamed.name} in vLLM {gone_in} (vLLM {last} was the last with {option})"
        return f"removed in vLLM {gone_in} (vLLM {last} was the last with it)"
    later = [v for v, _ in seen if _vkey(v) > vk]
    if later:
        return f"first in vLLM {later[0]}"
    return None


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


def _normalise_option(token: str) -> tuple[str, str | None]:
    """`--gpu_memory_utilization=0.9` -> (`--gpu-memory-utilization`, `0.9`), as FlexibleArgumentParser reads it."""
    value: str | None = None
    if token.startswith("-O") and len(token) > 2:
        return "-O", token[3:] if token[2] == "=" else token[2:]  # -O3, -O=3
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


def _typed(flag: Flag, word: str) -> Any:
    """A command-line word as the YAML value the loader turns back into the same word."""
    if flag.type == "json":
        try:
            return json.loads(word)
        except ValueError:
            return word
    for kind, conv in (("int", int), ("float", float)):
        if flag.type == kind:
            try:
                return conv(word)
            except ValueError:
                return word
    return word


def args_config(version: str, args: list[str]) -> dict[str, Any]:
    """`vllm serve` arguments (a profile's extra_args) as `--config` keys this release's loader honours.

    Switches become `x: true` or the release's way of saying false; JSON options become objects
    (`-O 3` is {level: 3} or {mode: 3}, as the release's command line reads it; `--x.key v` nests);
    lists become lists where the loader takes them. Unknown options are left out (check_args refuses
    them first).
    """
    fs = flag_set(version)
    loader = config_loader(version)
    out: dict[str, Any] = {}
    objects: dict[str, dict[str, Any]] = {}  # JSON options, merged over `--x.a 1 --x.b 2`
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not isinstance(token, str) or not is_option(token):
            continue
        raw_option, _, inline = token.partition("=")
        sub = raw_option[2:].split(".", 1)[1] if raw_option.startswith("--") and "." in raw_option else None
        option, joined = _normalise_option(token if token.startswith("-O") else raw_option)
        if joined is not None:
            inline = joined  # -O3 / -O=3
        flag = fs.lookup(option)
        if flag is None:
            continue
        if flag.is_bool:
            on = not flag.turns_off(option)
            item = Setting(flag, on, loader, version).config_item()
            if item is not None:
                out[item[0]] = item[1]
            continue
        words = [inline] if inline else []
        while not words or flag.nargs in ("+", "*"):
            if i >= len(args) or is_option(args[i]):
                break
            words.append(args[i])
            i += 1
        values = [_typed(flag, w) for w in words]
        value: Any = values if flag.nargs in ("+", "*") else (values[0] if values else "")
        if flag.type == "json" and sub:
            value = _nest(sub.split("."), value)
        elif flag.type == "json" and not isinstance(value, dict) and option != flag.name and loader.O_key:
            value = {loader.O_key: value}  # `-O N`: FlexibleArgumentParser reads it as the level/mode
        if isinstance(value, dict):
            objects[flag.name] = _merge(objects.get(flag.name, {}), value)
            continue
        item = Setting(flag, value, loader, version).config_item()
        if item is not None:
            out[item[0]] = item[1]
    for name, obj in objects.items():
        item = Setting(fs.flags[name], obj, loader, version).config_item()
        if item is not None:
            out[item[0]] = item[1]
    return out


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for k in reversed(keys):
        out = {k: out}
    return dict(out)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _unknown(fs: FlagSet, option: str) -> str:
    why = _explain_missing(option, fs.version)
    if why:
        return f"unknown flag {option} for vLLM {fs.version}: {why}"
    close = difflib.get_close_matches(option, [*fs.strings, *fs.maybe], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown flag {option} for vLLM {fs.version}{hint}"


def normalise_value(flag_name: str, value: Any) -> Any:
    """Turn common but refused spellings into vLLM's (`bf16` -> `bfloat16`, `fp8_e4m3fn` -> `fp8_e4m3`)."""
    if isinstance(value, str):
        return VALUE_ALIASES.get(flag_name, {}).get(value, value)
    return value


# Flags vLLM renamed (the newest spelling -> the older ones), for settings spelt in the newest form:
# vllm PR #26016 (0.11.1) renamed --cuda-graph-sizes to --cudagraph-capture-sizes.
RENAMED: dict[str, tuple[str, ...]] = {"--cudagraph-capture-sizes": ("--cuda-graph-sizes",)}


def resolve_flag(fs: FlagSet, name: str) -> Flag | None:
    """The flag `name` (newest spelling) is known as in this version, following renames backwards."""
    if name in fs.flags:
        return fs.flags[name]
    for old in RENAMED.get(name, ()):
        if old in fs.flags:
            return fs.flags[old]
    return None


@dataclass(frozen=True)
class Setting:
    """One decided setting, spelt for one vLLM version."""

    flag: Flag
    value: Any  # python value: bool, int, float, str, list, dict (a JSON option)
    loader: ConfigLoader = field(default_factory=ConfigLoader, compare=False)
    version: str = ""

    def argv(self) -> list[str]:
        """Command-line words for this setting ([] where the version has no way to say it)."""
        if self.flag.is_bool:
            if self.value:
                return [self.flag.name]
            off = self.flag.inverse or self.flag.negation
            return [off] if off else []
        if isinstance(self.value, dict):
            return [self.flag.name, json.dumps(self.value, sort_keys=True, separators=(",", ":"))]
        if isinstance(self.value, list | tuple):
            if self.flag.nargs in ("+", "*"):
                return [self.flag.name, *(_word(v) for v in self.value)]
            return [self.flag.name, ",".join(_word(v) for v in self.value)]
        return [self.flag.name, _word(self.value)]

    def config_item(self) -> tuple[str, Any] | None:
        """(`--config` YAML key, value) in the form this release's loader honours; None where it is
        vLLM's default and the loader has no way to say it.

        Raises FlagError where the loader cannot express the value at all (a list of several values
        before vLLM 0.10.2).
        """
        if self.flag.is_bool:
            if self.value:
                return self.flag.key, True
            if self.loader.bool_false:
                return self.flag.key, False
            # `x: false` is dropped by the loader: say it with the switch that turns x off.
            if self.flag.negation and self.loader.no_key:
                return self.flag.negation[2:], True
            if self.flag.inverse:
                return self.flag.inverse[2:], True
            return None
        if isinstance(self.value, list | tuple) and not self.loader.lists:
            # The loader writes `--key str(value)`: one scalar is one word, a list one refused word.
            if len(self.value) == 1:
                return self.flag.key, self.value[0]
            raise FlagError(
                f"vLLM {self.version}'s --config loader cannot pass a list to {self.flag.name} (it writes "
                f"str(list) as one word, which the parser refuses; lists work from vLLM 0.10.2): "
                f"{self.flag.name} {' '.join(_word(v) for v in self.value)} can only go on the command line"
            )
        if isinstance(self.value, dict) and not self.loader.objects:
            return self.flag.key, json.dumps(self.value, sort_keys=True)
        return self.flag.key, list(self.value) if isinstance(self.value, tuple) else self.value


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
            if flag.default is True:
                raise FlagError(
                    f"vLLM {version} has no switch that turns {flag.name} off (it is on by default)"
                )
            return None  # a store_true flag off is vLLM's default
    elif flag.choices is not None and value is not None:
        allowed = [c for c in flag.choices if c is not None]
        if value not in allowed and str(value) not in {str(c) for c in allowed}:
            raise FlagError(
                f"vLLM {version} {flag.name} accepts {', '.join(str(c) for c in allowed)}; got {value!r}"
            )
    return Setting(flag, value, config_loader(version), version)


# Decisions whose value reaches the command line; vLLM's own defaults are left to vLLM.
EMITTED_BY = frozenset({"user", "recommended"})
# Always written: the plan's numbers depend on them, and vLLM's default may differ (auto context length).
ALWAYS = ("max_model_len",)
# Written when they differ from vLLM's default of 1.
WHEN_PARALLEL = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
# Taken from the profile as given (no decision of their own): written whenever they differ from the
# release's EngineArgs default, because the plan's memory numbers depend on them.
DIRECT = ("kv_cache_memory_bytes", "num_gpu_blocks_override", "cpu_offload_gb")


def plan_settings(plan: Plan) -> list[Setting]:
    """The plan's engine settings as flags of the targeted version, in a stable order.

    Emitted: settings decided by the user or by a recommendation, max_model_len, parallel sizes > 1,
    the profile's offload / block override / KV memory when set, the served model name, the port,
    trust-remote-code and a pinned revision. A vLLM-default setting whose flag does not exist in the
    version is left out (vLLM's behaviour there is what the plan assumed); a user's setting the version
    has no flag for is a FlagError.
    """
    resolved = plan.resolved
    version = resolved.vllm.version
    engine = plan.engine
    profile = resolved.profile
    out: list[Setting] = []

    def add(name: str, value: Any, required: bool = False) -> None:
        s = setting(version, name, value)
        if s is not None:
            out.append(s)
        elif required and resolve_flag(flag_set(version), name) is None:
            raise FlagError(f"vLLM {version} has no {name}: the profile's {value!r} cannot be passed to it")

    add("--served-model-name", profile.model.served_model_name or profile.model.id)
    add("--port", profile.deploy.port)
    for field_name, flag_name in SETTING_FLAGS.items():
        value = getattr(engine, field_name)
        decision = plan.decisions.get(field_name)
        if field_name in WHEN_PARALLEL:
            wanted = value > 1
        elif field_name in DIRECT:
            default = engine_defaults(version).get(field_name)
            wanted = value is not None and value != default and not (default is None and value == 0)
            if wanted:
                add(flag_name, value, required=True)
            continue
        else:
            wanted = field_name in ALWAYS or (decision is not None and decision.by in EMITTED_BY)
        if wanted and value is not None:
            if field_name == "max_cudagraph_capture_size" and _cap_as_sizes(plan, version):
                # Before --max-cudagraph-capture-size (0.11.1), a single --cuda-graph-sizes value was the cap
                # from which vLLM filled in the sizes (config.py _set_cudagraph_sizes, len(sizes) == 1).
                add("--cudagraph-capture-sizes", [value])
                continue
            add(flag_name, value, required=decision is not None and decision.by == "user")
    if profile.model.trust_remote_code:
        add("--trust-remote-code", True)
    revision = profile.model.revision or resolved.model.revision
    if revision:
        add("--revision", revision)
    if spans_nodes(plan):
        add("--distributed-executor-backend", "ray")
    from .wide_ep import wide_ep_settings  # wide_ep reads this module's flag sets

    out += wide_ep_settings(plan)
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
