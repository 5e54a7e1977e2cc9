"""Property: random and mutated profiles through compile_paths never raise, never hit an internal
error and finish in well under 2 s each (bounded: a few hundred cases; `.ci/run` runs 10,000)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz import documents, profiles, run_case

WORK = Path(tempfile.mkdtemp(prefix="vllm-compile-prop-"))


@pytest.fixture(autouse=True, scope="module")
def _remove_work() -> Iterator[None]:
    """The cases' scratch folder (hypothesis' @given cannot take pytest's tmp_path) goes with the module."""
    yield
    shutil.rmtree(WORK, ignore_errors=True)


BOUNDED = settings(
    max_examples=120,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


@BOUNDED
@given(documents(), st.booleans())
def test_any_document_is_a_plan_or_a_diagnostic(text: str, write: bool) -> None:
    failure, elapsed = run_case(text, WORK, write=write)
    assert failure is None, failure
    assert elapsed < 2.0


@BOUNDED
@given(profiles())
def test_in_memory_profiles_never_raise_past_the_boundary(data: dict) -> None:
    from vllm_compile import api
    from vllm_compile.diagnostics import DiagnosticError

    try:
        profile = api.load_profile_dict(data)
    except DiagnosticError:
        return
    try:
        api.plan_profile(profile)
    except ValueError as exc:  # an input error of a pass: it must be one of ours, with a message
        assert type(exc).__module__.startswith("vllm_compile.") and str(exc)
