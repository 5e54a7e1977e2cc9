"""No setting is ignored silently: every leaf of the profile schema, set alone on the bundled bases of
tools/setting_effects.py, changes the lock or the artifacts, adds a warning, or is refused; the few that
only matter in another context are listed here with that context."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from vllm_compile.api import load_profile_dict, plan_profile

_SPEC = importlib.util.spec_from_file_location(
    "setting_effects", Path(__file__).resolve().parents[1] / "tools" / "setting_effects.py"
)
assert _SPEC is not None and _SPEC.loader is not None
setting_effects = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(setting_effects)

# Silent on the bases for a reason the base explains (the value is what the base already has, or a
# threshold the base does not reach); each is checked where it does act by the tests named.
CONTEXT_ONLY = {
    "deploy.gated": "true is the catalog's value for Llama-3.1-8B (false changes the artifacts)",
    "model.kv_cache_dtype": "auto is the default (fp8 changes the plan)",
    "model.quantization": "none is what the checkpoint is (fp8 changes the plan)",
    "policy.fail_on": "the exit code on a risk the LOW-risk bases do not reach (test_policy.py)",
    "policy.fail_on_unmodelled": "the exit code when extra_args hold an unmodelled flag (test_serving_features.py)",
    "policy.headroom_gb": "a threshold: 1 GB is below the bases' free memory (test_policy.py)",
    "policy.medium_kv_margin": "a threshold: 20% is below the bases' KV share (test_policy.py)",
    "roles.prefill.hardware.gpus_per_node": "a one-GPU pool fits a node of any size",
    "vllm.kv_transfer.kv_role": "kv_both is what the connector is given when the role is left out",
    "roles.prefill.vllm.kv_transfer.kv_role": "kv_both is what a NIXL pool runs as (kv_producer changes it)",
    "roles.decode.vllm.kv_transfer.kv_role": "kv_both is what a NIXL pool runs as (kv_consumer changes it)",
    "workload.mode": "balanced is the default (latency and throughput change the plan)",
    "workload.objective": "balanced is the default (the others change the plan)",
    "workload.preset": "custom with every length given is the bases' workload",
}


@cache
def _rows() -> list:
    return setting_effects.run(setting_effects.BASES)


def test_every_setting_changes_the_plan_warns_or_is_refused() -> None:
    silent = setting_effects.silent_settings(_rows())
    assert set(silent) == set(CONTEXT_ONLY), {
        "silent, not listed": sorted(set(silent) - set(CONTEXT_ONLY)),
        "listed, no longer silent": sorted(set(CONTEXT_ONLY) - set(silent)),
    }


def test_a_setting_is_never_refused_for_a_flag_the_user_did_not_write() -> None:
    # vllm.cudagraph_capture_sizes was refused as "vllm.extra_args sets --cudagraph-capture-sizes".
    wrong = [
        (".".join(path), value, detail)
        for _base, path, value, verdict, detail in _rows()
        if verdict == "invalid" and "extra_args" not in path and "extra_args" in detail
    ]
    assert wrong == []


BASE = setting_effects.BASES["dense"]


def _warnings(**sections: dict) -> list[str]:
    data = {**BASE, **{k: {**BASE.get(k, {}), **v} for k, v in sections.items()}}
    return plan_profile(load_profile_dict(data)).verdict.warnings


def test_inert_settings_say_so() -> None:
    assert any(
        "model.params_b 2 is not used" in w for w in _warnings(model={"params_b": 2})
    )  # a catalog model's config wins
    assert any(
        "workload.burstiness is not used: a closed-loop" in w for w in _warnings(workload={"burstiness": 2})
    )
    assert not any(
        "burstiness" in w
        for w in _warnings(workload={"burstiness": 2, "request_rate": 4, "concurrency": None})
    )
    assert any(
        w.startswith("workload.spec_acceptance_rate and policy.allow_speculative: not used")
        for w in _warnings(workload={"spec_acceptance_rate": 0.5}, policy={"allow_speculative": True})
    )
    assert any("policy.overhead_gb 2" in w for w in _warnings(policy={"overhead_gb": 2}))
    assert any(
        "hardware.interconnect pcie is not used" in w for w in _warnings(hardware={"interconnect": "pcie"})
    )


def test_the_policy_cap_bounds_the_default_utilization() -> None:
    data = {**BASE, "policy": {**BASE["policy"], "max_gpu_memory_utilization": 0.8}}
    plan = plan_profile(load_profile_dict(data))
    assert plan.engine.gpu_memory_utilization == 0.8
    assert "policy.max_gpu_memory_utilization 0.8" in plan.decisions["gpu_memory_utilization"].reason
    explicit = {**data, "vllm": {"gpu_memory_utilization": 0.85}}
    assert plan_profile(load_profile_dict(explicit)).engine.gpu_memory_utilization == 0.85


def test_what_the_model_facts_guessed_reaches_the_verdict() -> None:
    data = {**BASE, "model": {"id": "acme/unknown-7b", "params_b": 7, "max_model_len": 4096}}
    warnings = plan_profile(load_profile_dict(data)).verdict.warnings
    assert any("estimated as a Llama-shaped dense model of 7.0B" in w for w in warnings)


def test_a_length_given_only_by_its_p50_plans() -> None:
    # The policy's capacity check read the raw mean and crashed on a p50-only distribution.
    data = {**BASE, "workload": {**BASE["workload"], "gen_tokens": {"p50": 200}}}
    verdict = plan_profile(load_profile_dict(data)).verdict
    assert verdict.starts
    assert any("16 x 1,224 = 19,584 tokens fit" in n for n in verdict.capacity_notes)


def test_settings_an_explicit_value_or_the_layout_overrides_say_so() -> None:
    moe = setting_effects.BASES["moe"]
    assert any(
        "enable_expert_parallel (and all2all_backend) is not used" in w
        for w in _warnings(parallelism={"enable_expert_parallel": True})
    )  # a dense model has no experts
    both = _warnings(vllm={"gpu_memory_utilization": 0.9}, policy={"gpu_memory_utilization": 0.8})
    assert any("policy.gpu_memory_utilization 0.8 is not used" in w for w in both)
    above = _warnings(vllm={"gpu_memory_utilization": 0.9}, policy={"max_gpu_memory_utilization": 0.8})
    assert any("is above policy.max_gpu_memory_utilization 0.8" in w for w in above)
    eager = _warnings(vllm={"enforce_eager": True, "max_cudagraph_capture_size": 64})
    assert any("enforce_eager captures no CUDA graphs" in w for w in eager)
    wide = {"gpu_name": "H100", "gpus": 4}
    layout = {"tensor_parallel_size": 2, "pipeline_parallel_size": 1}  # PP left out would take the rest
    idle = plan_profile(load_profile_dict({**moe, "hardware": wide, "parallelism": layout}))
    assert any("hardware.gpus 4: the layout uses 2 of them" in w for w in idle.verdict.warnings)


def test_a_layout_wider_than_the_gpus_given_is_refused() -> None:
    import pytest

    from vllm_compile.passes.settings import SettingsError

    data = {**BASE, "hardware": {"gpu_name": "H100", "gpus": 2}, "parallelism": {"tensor_parallel_size": 4}}
    with pytest.raises(SettingsError, match="needs 4 GPUs .* hardware.gpus is 2") as caught:
        plan_profile(load_profile_dict(data))
    assert caught.value.path == ("hardware", "gpus")


def test_a_roles_profile_says_which_top_level_settings_both_pools_replace() -> None:
    data = {
        **BASE,
        "parallelism": {"tensor_parallel_size": 1},
        "roles": {
            "prefill": {"parallelism": {"tensor_parallel_size": 1}},
            "decode": {"parallelism": {"tensor_parallel_size": 1}},
        },
    }
    warnings = plan_profile(load_profile_dict(data)).verdict.warnings
    assert (
        "parallelism.tensor_parallel_size is not used: both pools set roles.<role>.parallelism.tensor_parallel_size"
        in warnings
    )
    wizard = _warnings(policy={"gpu_memory_utilization": 0.9, "max_gpu_memory_utilization": 0.8})
    assert any(
        "policy.gpu_memory_utilization 0.9 is above policy.max_gpu_memory_utilization 0.8" in w
        for w in wizard
    )


def test_the_profile_description_heads_its_report() -> None:
    from vllm_compile.render import render_artifacts

    data = {**BASE, "description": "Chat for the\nsupport team."}
    report = render_artifacts(plan_profile(load_profile_dict(data)), ["report"])["REPORT.md"]
    assert report.splitlines()[2] == "> Chat for the support team."
