"""Front end: positions, did-you-mean, ranges, duplicate keys, extends overlays and cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_compile.api import discover
from vllm_compile.diagnostics import DiagnosticError
from vllm_compile.profile.loader import load_profile, profile_from_dict

from .conftest import write

WIZARD = """profile_version: 1
model: {id: meta-llama/Llama-2-7b-hf, dtype: auto, quantization: none, max_model_len: 4096}
hardware: {gpu_name: "A100 80GB", gpus: 1, interconnect: unknown}
workload: {prompt_tokens: 512, gen_tokens: 256, concurrency: 4, mode: balanced}
policy: {gpu_memory_utilization: 0.90, fragmentation_factor: 1.15, headroom_gb: 1.0}
"""


def diagnostics_of(path: Path) -> list[str]:
    with pytest.raises(DiagnosticError) as info:
        load_profile(path, path.name)
    return [d.format() for d in info.value.diagnostics]


def test_wizard_profile_loads_as_is(tmp_path: Path) -> None:
    loaded = load_profile(write(tmp_path / "wiz.yaml", WIZARD))
    profile = loaded.profile
    assert loaded.name == "wiz"
    assert profile.model.id == "meta-llama/Llama-2-7b-hf"
    assert profile.model.max_model_len == 4096
    assert profile.policy.gpu_memory_utilization == 0.90
    assert profile.workload.mode == "balanced"


def test_misspelt_key_points_at_its_line_with_a_suggestion(tmp_path: Path) -> None:
    text = "profile_version: 1\nhardware: {gpu_name: H100}\nmodel:\n  max_modle_len: 4096\n  id: x/y\n"
    (message,) = diagnostics_of(write(tmp_path / "p.yaml", text))
    assert message.startswith("p.yaml:4:3: unknown-key:")
    assert "did you mean 'max_model_len'?" in message


def test_value_out_of_range_and_wrong_type(tmp_path: Path) -> None:
    text = WIZARD.replace("gpu_memory_utilization: 0.90", "gpu_memory_utilization: 1.5").replace(
        "gpus: 1", "gpus: two"
    )
    messages = diagnostics_of(write(tmp_path / "p.yaml", text))
    assert any(m.startswith("p.yaml:3:") and "hardware.gpus" in m and "type" in m for m in messages)
    assert any(m.startswith("p.yaml:5:") and "range" in m and "maximum of 1" in m for m in messages)


def test_duplicate_key_is_reported_with_its_position(tmp_path: Path) -> None:
    text = "profile_version: 1\nmodel:\n  id: a/b\n  id: c/d\nhardware: {gpu_name: H100}\n"
    (message,) = diagnostics_of(write(tmp_path / "p.yaml", text))
    assert message.startswith("p.yaml:4:") and "duplicate-key" in message and "'id'" in message


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    (message,) = diagnostics_of(write(tmp_path / "p.yaml", "profile_version: 1\nmodel: [unclosed\n"))
    assert message.startswith("p.yaml:") and ": yaml:" in message


def test_missing_required_section(tmp_path: Path) -> None:
    messages = diagnostics_of(write(tmp_path / "p.yaml", "profile_version: 1\nmodel: {id: a/b}\n"))
    assert any("missing-key" in m and "hardware" in m for m in messages)


def test_extends_deep_merges_and_lists_replace(tmp_path: Path) -> None:
    write(
        tmp_path / "_base.yaml",
        "profile_version: 1\nmodel: {id: a/b, max_model_len: 4096}\nhardware: {gpu_name: H100, gpus: 2}\n"
        "deploy: {targets: [command, k8s], env: {A: '1'}}\n",
    )
    overlay = write(
        tmp_path / "prod.yaml",
        "profile_version: 1\nextends: _base.yaml\nname: prod\nhardware: {gpus: 4}\ndeploy: {targets: [helm], env: {B: '2'}}\n",
    )
    loaded = load_profile(overlay)
    assert loaded.name == "prod"
    assert loaded.profile.hardware.gpu_name == "H100" and loaded.profile.hardware.gpus == 4
    assert loaded.profile.model.max_model_len == 4096
    assert loaded.profile.deploy.targets == ["helm"]
    assert loaded.profile.deploy.env == {"A": "1", "B": "2"}


def test_error_in_base_points_at_the_base_file(tmp_path: Path) -> None:
    write(
        tmp_path / "_base.yaml", "profile_version: 1\nmodel: {id: a/b}\nhardware: {gpu_name: H100, gpuz: 2}\n"
    )
    overlay = write(tmp_path / "o.yaml", "profile_version: 1\nextends: _base.yaml\n")
    with pytest.raises(DiagnosticError) as info:
        load_profile(overlay, "o.yaml")
    (diagnostic,) = info.value.diagnostics
    assert (
        diagnostic.file == "_base.yaml"
        and diagnostic.line == 3
        and "did you mean 'gpus'" in diagnostic.message
    )


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "profile_version: 1\nextends: b.yaml\n")
    write(tmp_path / "b.yaml", "profile_version: 1\nextends: a.yaml\n")
    messages = diagnostics_of(tmp_path / "a.yaml")
    assert any("extends-cycle" in m and "a.yaml -> b.yaml -> a.yaml" in m for m in messages)


def test_extends_missing_base(tmp_path: Path) -> None:
    (message,) = diagnostics_of(write(tmp_path / "o.yaml", "profile_version: 1\nextends: nope.yaml\n"))
    assert message.startswith("o.yaml:2:") and "not found" in message


def test_bases_are_not_discovered(tmp_path: Path) -> None:
    write(tmp_path / "p" / "_base.yaml", WIZARD)
    write(tmp_path / "p" / "_shared" / "h100.yaml", WIZARD)
    write(tmp_path / "p" / "a.yaml", WIZARD)
    write(tmp_path / "p" / "sub" / "b.yml", WIZARD)
    write(tmp_path / "p" / "notes.txt", "x")
    assert [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path / "p"])] == [
        "p/a.yaml",
        "p/sub/b.yml",
    ]


def test_in_memory_profiles_are_validated_like_files() -> None:
    with pytest.raises(DiagnosticError) as info:
        profile_from_dict(
            {"profile_version": 1, "model": {"id": "a/b"}, "hardware": {"gpu_name": "H100", "gpus": 0}}
        )
    assert "hardware.gpus" in str(info.value)


TRICKY_SCALARS = [
    "yes", "no", "on", "off", "true", "False", "TRUE", "null", "~", "", "010", "0o10", "0x1F", "1_000", "1:20",
    "1e3", "1.5", "-2", "+3", ".5", "-.inf", ".NaN", "2024-01-01", "0.33.0", "abc", "'quoted'", '"7"', "[1, 2]",
]  # fmt: skip


POSITION_TEXTS = [
    'a: {x: "\u00e9\u20ac", y: [1, {q: 2}]}\nb:\n  - c: 1\n    d: |\n      two\n      lines\n  -   e\n  - [f, g]\n',
    "\ufeffprofile_version: 1\r\nmodel:\r\n  id: x  # note\r\n  max_model_len: 4096\r\n",
    "base: &b\n  x: 1\nother: *b\nlist:\n  - &i {k: v}\n  - *i\n",
    "m:\n  <<: {x: 1}\n  z: 3\n",  # a merge: ruamel's positions
    "1.5: a\nwhen: 2024-01-01\n2024-01-01: b\n",  # keys ruamel types its own way: ruamel's positions
]


@pytest.mark.parametrize("text", POSITION_TEXTS)
def test_positions_from_the_fast_reader_are_ruamels(tmp_path: Path, text: str) -> None:
    """A diagnostic's line and column come from libyaml's nodes where ruamel.yaml would say the same."""
    from vllm_compile.profile.loader import _file_positions, _read_yaml, _ruamel_positions

    path = tmp_path / "p.yaml"
    path.write_bytes(text.encode("utf-8"))
    _data, node = _read_yaml(path, "p.yaml")
    assert node is not None
    assert _file_positions(path, "p.yaml", node) == _ruamel_positions(path, "p.yaml")


@pytest.mark.parametrize("scalar", TRICKY_SCALARS)
def test_fast_reader_reads_every_value_as_ruamel_does(tmp_path: Path, scalar: str) -> None:
    """Profiles are read with libyaml for speed; ruamel.yaml (YAML 1.2) stays the reference for values."""
    import math

    from vllm_compile.profile.loader import _read_yaml, _ruamel_load

    text = f"a: {scalar}\nb:\n  - {scalar}\n"
    path = write(tmp_path / "p.yaml", text)
    fast, reference = _read_yaml(path, "p.yaml")[0], _ruamel_load(text, "p.yaml")
    for key in ("a",):
        if isinstance(reference[key], float) and math.isnan(reference[key]):
            assert math.isnan(fast[key])
        else:
            assert fast == reference and type(fast[key]) is type(reference[key])


def test_yes_is_not_a_boolean_in_profiles(tmp_path: Path) -> None:
    messages = diagnostics_of(write(tmp_path / "p.yaml", WIZARD + "vllm: {enforce_eager: yes}\n"))
    assert any("vllm.enforce_eager" in m for m in messages)
