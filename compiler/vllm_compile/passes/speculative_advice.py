"""The recommender's speculative-decoding proposal.

Where the workload is latency-bound (objective `latency`) and the model has a known draft (a catalog
EAGLE head made for it, or its own MTP layers), the planner plans the same deployment with speculative
decoding and reports what it would change: ITL, and the KV cache it costs. It only proposes: it turns
speculative decoding on by itself only with `policy.allow_speculative: true`, and then records the
plan without it as the runner-up.
"""

from __future__ import annotations

from collections.abc import Callable

from ..facts.drafts import MTP_METHODS, drafts_for, resolve_draft
from ..plan import Decision, Plan, Resolved
from ..profile.v1 import SpeculativeSpec
from .extra_args import with_feature_flags
from .workload import resolve_workload

DEFAULT_K = 3  # num_speculative_tokens proposed: the value vLLM's EAGLE examples and benchmarks use


def candidate(resolved: Resolved) -> SpeculativeSpec | None:
    """The speculative config the recommender would try for this model, or None."""
    rows = drafts_for(resolved.model.id)
    if rows:
        row = rows[0]
        return SpeculativeSpec(method=row["method"], model=row["id"], num_speculative_tokens=DEFAULT_K)
    if resolved.model.params_mtp:
        return SpeculativeSpec(method="mtp", num_speculative_tokens=1)  # one MTP layer, one token
    return None


def _latency_bound(resolved: Resolved) -> bool:
    workload = resolve_workload(resolved.profile.workload)
    return workload is not None and workload.objective == "latency"


def with_speculative(resolved: Resolved, spec: SpeculativeSpec) -> Resolved:
    profile = resolved.profile
    vllm = profile.vllm.model_copy(update={"speculative": spec})
    profile = with_feature_flags(
        profile.model_copy(update={"vllm": vllm}), resolved.vllm.version, only=("speculative",)
    )
    draft = resolve_draft(spec.method, spec.model, resolved.model)
    return resolved.model_copy(update={"profile": profile, "draft": draft})


def advise(plan: Plan, replan: Callable[[Resolved], Plan]) -> Plan:
    """`plan`, with the proposal in its performance notes, or the speculative plan when the policy allows.
    Without a proposal, the settings that only serve one (an acceptance rate, allow_speculative) say so."""
    advised = _advise(plan, replan)
    profile = plan.resolved.profile
    if advised is not plan or profile.vllm.speculative is not None:
        return advised
    inert = []
    if profile.workload.spec_acceptance_rate is not None:
        inert.append("workload.spec_acceptance_rate")
    if profile.policy.allow_speculative:
        inert.append("policy.allow_speculative")
    if not inert:
        return plan
    warning = (
        f"{' and '.join(inert)}: not used, no speculative decoding is planned or proposed (set "
        "vllm.speculative; the recommender proposes it for a latency objective on a model with a known "
        "draft or MTP layers)"
    )
    verdict = plan.verdict.model_copy(update={"warnings": [*plan.verdict.warnings, warning]})
    return plan.model_copy(update={"verdict": verdict})


def _advise(plan: Plan, replan: Callable[[Resolved], Plan]) -> Plan:
    resolved = plan.resolved
    if (
        resolved.profile.vllm.speculative is not None
        or plan.performance is None
        or not _latency_bound(resolved)
        or (spec := candidate(resolved)) is None
    ):
        return plan
    try:
        other = replan(with_speculative(resolved, spec))
    except ValueError:
        return plan  # the draft cannot be planned here: nothing to propose
    if other.performance is None or not other.verdict.starts:
        return plan
    itl, itl_spec = plan.performance.itl_ms.value, other.performance.itl_ms.value
    if itl_spec >= itl:
        return plan
    what = (
        f"{spec.method}"
        + (f" with {spec.model}" if spec.model else "")
        + f", K={spec.num_speculative_tokens}"
    )
    lost = plan.memory.kv.tokens - other.memory.kv.tokens
    reason = (
        f"latency-bound workload: speculative decoding ({what}) cuts ITL from {itl:.2f} to {itl_spec:.2f} ms "
        f"at the assumed acceptance rate, for {lost:,} fewer KV tokens ({other.memory.kv.tokens:,})"
    )
    value = spec.model_dump(exclude_none=True)
    if resolved.profile.policy.allow_speculative:
        decisions = {
            **other.decisions,
            "speculative": Decision(value=value, by="recommended", reason=reason, runner_up="off"),
        }
        notes = [
            *other.performance.notes,
            f"recommended (policy.allow_speculative): {reason}; runner-up: off",
        ]
        return other.model_copy(
            update={
                "decisions": decisions,
                "performance": other.performance.model_copy(update={"notes": notes}),
            }
        )
    proposal = (
        f"proposal: {reason}. Set vllm.speculative: {value} to use it (or policy.allow_speculative: true to let "
        "the recommender); the plan above is without it"
    )
    notes = [*plan.performance.notes, proposal]
    return plan.model_copy(update={"performance": plan.performance.model_copy(update={"notes": notes})})


__all__ = ["MTP_METHODS", "advise", "candidate"]
