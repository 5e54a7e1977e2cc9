"""Disaggregated prefill/decode: a `roles:` profile planned as two ordinary engines plus this pass.

A role is the profile with the role's hardware, parallelism and vllm settings merged over it (deep
merge, as `extends` does), its replicas as deploy.replicas, and a KV connector: the profile's
`vllm.kv_transfer`, or NIXL (vLLM's P/D connector of choice: docs/features/disagg_prefill.md,
llm-d's guides). Each role runs the whole planning pipeline (settings, memory, verdict); this pass
combines the verdicts (both pools must start), and asks passes/disagg_perf.py for the latency of the
split layout, the prefill:decode ratio and the comparison with an aggregated layout on the same GPUs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..plan import Plan, Resolved, Verdict
from ..profile.v1 import Profile

ROLES = ("prefill", "decode")
# kv_role per role for connectors with a direction (P2pNcclConnector, LMCache P/D: kv_producer sends,
# kv_consumer receives; vllm/config/kv_transfer.py is_kv_producer / is_kv_consumer). vLLM's NIXL guide
# and llm-d run both NIXL pools as kv_both (the decode side pulls; the role is not used for direction).
DIRECTED = {"prefill": "kv_producer", "decode": "kv_consumer"}
RISK_ORDER = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def role_profile(profile: Profile, role: str) -> Profile:
    """The ordinary profile one pool of a `roles:` profile is planned as."""
    assert profile.roles is not None
    spec = getattr(profile.roles, role)
    data = profile.model_dump(mode="json", exclude_unset=True, by_alias=True)
    data.pop("roles", None)
    data.pop("extends", None)
    for section in ("hardware", "parallelism", "vllm"):
        over = getattr(spec, section).model_dump(mode="json", exclude_unset=True, by_alias=True)
        if section == "hardware":  # a role's hardware field given as null is the profile's, as one left out
            over = {key: value for key, value in over.items() if value is not None}
        data[section] = _merge(data.get(section, {}), over)
    data.setdefault("deploy", {})["replicas"] = spec.replicas
    # The SLO is judged on the split layout (passes/disagg_perf.py), not on each pool as if it served whole
    # requests alone: a pool's own plan would advise against a miss that is not its own.
    if isinstance(data.get("workload"), dict):
        data["workload"].pop("slo", None)
    vllm = data["vllm"]
    if vllm.get("kv_transfer") is None:
        vllm["kv_transfer"] = {"connector": "NixlConnector", "kv_role": "kv_both"}
    elif vllm["kv_transfer"].get("kv_role") is None:
        connector = vllm["kv_transfer"]["connector"]
        vllm["kv_transfer"]["kv_role"] = "kv_both" if connector == "NixlConnector" else DIRECTED[role]
    if profile.name:
        data["name"] = f"{profile.name}-{role}"[:63].rstrip("-")
    from pydantic import ValidationError

    try:
        return Profile.model_validate(data)
    except ValidationError as exc:  # the role's settings over the profile's make an invalid pool
        from ..resolve import ResolveError

        error = exc.errors()[0]
        where = tuple(str(part) for part in error["loc"])
        raise ResolveError(
            role_path(profile, role, where),
            f"the {role} pool ({'.'.join(where) or 'profile'} after merging roles.{role} over the profile): "
            f"{error['msg']}",
        ) from None


def role_profiles(profile: Profile) -> dict[str, Profile]:
    return {role: role_profile(profile, role) for role in ROLES}


def role_path(profile: Profile, role: str, path: tuple[str, ...]) -> tuple[str, ...]:
    """The profile field a role's error is about: inside the role where the role sets that section
    (diagnostics walk up to the nearest field the file has), else the profile's own field."""
    assert profile.roles is not None
    given = getattr(profile.roles, role).model_dump(exclude_unset=True)
    if path[:2] == ("deploy", "replicas"):
        return ("roles", role, "replicas")
    if path and path[0] in given:
        return ("roles", role, *path)
    return path


def in_role(exc: Exception, profile: Profile, role: str) -> Exception:
    """`exc` (a ResolveError / SettingsError with a `path`) pointed at the role's field where it has one."""
    path = getattr(exc, "path", None)
    if isinstance(path, tuple):
        exc.path = role_path(profile, role, path)  # type: ignore[attr-defined]
    return exc


def combined_verdict(plans: dict[str, Plan]) -> Verdict:
    """Both pools must start; every reason and warning says which pool it is about."""
    verdicts = {role: p.verdict for role, p in plans.items()}
    risk = max((v.oom_risk for v in verdicts.values()), key=RISK_ORDER.__getitem__)
    return Verdict(
        starts=all(v.starts for v in verdicts.values()),
        oom_risk=risk,
        reasons=[f"{role}: {r}" for role, v in verdicts.items() for r in v.reasons],
        capacity_ok=all(v.capacity_ok for v in verdicts.values()),
        capacity_notes=[f"{role}: {n}" for role, v in verdicts.items() for n in v.capacity_notes],
        warnings=[f"{role}: {w}" for role, v in verdicts.items() for w in v.warnings],
        fails_policy=any(v.fails_policy for v in verdicts.values()),
    )


def plan_disaggregated(resolved: Resolved, plan_one: Callable[[Resolved], Plan]) -> Plan:
    """The roles profile's plan: the decode pool's engine, memory and settings at the top (the pool
    that holds each request for its whole generation), both pools under `roles`, and the
    disaggregation section (transfer, ratio, aggregated vs disaggregated)."""
    from .disagg_perf import disaggregated_estimate
    from .workload import workload_of

    assert resolved.roles is not None
    plans: dict[str, Plan] = {}
    for role in ROLES:
        # A pool's own estimate would treat it as an aggregated engine: the split layout is estimated below.
        try:
            plan = plan_one(resolved.roles[role])
        except ValueError as exc:  # SettingsError: at the role's field where the role sets it
            raise in_role(exc, resolved.profile, role) from None
        plans[role] = plan.model_copy(
            update={"performance": None, "cluster": None, "cost": None, "layouts": []}
        )
    verdict = combined_verdict(plans)
    # Settings a `roles:` profile gives that no pool uses, said out loud (passes/inert.py for one engine).
    profile, roles = resolved.profile, resolved.profile.roles
    assert roles is not None
    inert = [
        f"roles.{role}.hardware.interconnect is not used: the KV fabric between the pools is the profile's "
        "hardware.interconnect, and this pool's one-GPU engines have no collectives"
        for role in ROLES
        if "interconnect" in getattr(roles, role).hardware.model_fields_set
        and plans[role].engine.total_gpus == 1
    ]
    for section in ("hardware", "parallelism", "vllm"):
        both = (
            getattr(roles.prefill, section).model_fields_set & getattr(roles.decode, section).model_fields_set
        )
        inert.extend(
            f"{section}.{key} is not used: both pools set roles.<role>.{section}.{key}"
            for key in sorted(getattr(profile, section).model_fields_set & both)
        )
    if "replicas" in profile.deploy.model_fields_set:
        inert.append("deploy.replicas is not used by a `roles:` profile: each pool has roles.<role>.replicas")
    if profile.cost is not None and profile.cost.model_fields_set:
        inert.append(
            "not-modelled: cost: a `roles:` profile gets no cost estimate; the pools' GPUs are in the lock"
        )
    if inert:
        verdict = verdict.model_copy(update={"warnings": [*verdict.warnings, *inert]})
    decode = plans["decode"]
    disaggregation: dict[str, Any] = {
        "connector": (decode.kv_connector or {}).get("kv_transfer_config", {}).get("kv_connector"),
        "router": roles.router,  # what the `helm` target writes values for (render.py)
        "pools": {
            role: {
                "gpu": p.resolved.gpu.name,
                "gpus_per_replica": p.engine.total_gpus,
                "replicas": p.resolved.profile.deploy.replicas,
                "starts": p.verdict.starts,
                "oom_risk": p.verdict.oom_risk,
                "kv_tokens": p.memory.kv.tokens,
                "host_pinned_gib_per_pod": (p.kv_connector or {}).get("host_pinned_gib_per_pod", 0.0),
            }
            for role, p in plans.items()
        },
    }
    workload = workload_of(resolved)  # the profile's workload, SLO included
    if verdict.starts and workload is not None:
        estimate = disaggregated_estimate(plans, workload, resolved.profile)
        disaggregation.update(estimate)
        pools = disaggregation["pools"]
        for role in ROLES:
            pools[role]["replicas"] = estimate["replicas"][role]
    top_resolved = decode.resolved.model_copy(update={"name": resolved.name})
    return decode.model_copy(
        update={
            "resolved": top_resolved,
            "verdict": verdict,
            "roles": plans,
            "disaggregation": disaggregation,
        }
    )
