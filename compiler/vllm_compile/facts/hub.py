"""Model facts from the Hugging Face Hub, without downloading weights.

Through huggingface_hub (imported here only): the revision resolved to a commit sha
(`GET /api/models/{id}/revision/{rev}`), `config.json` and any quantization file listed in the
repo, read at that sha (`GET /{id}/resolve/{sha}/{file}`), and parameter counts by dtype from the
safetensors headers (`get_safetensors_metadata`: the index file plus ranged header reads).
`HF_TOKEN` and `HF_ENDPOINT` come from the environment.
"""

from __future__ import annotations

import json
import os
from typing import Any

from vllm_compile.facts.model_config import ModelConfigError, facts_from_config
from vllm_compile.facts.model_facts import ModelFacts
from vllm_compile.facts.models import QUANT_FILES, ModelResolutionError, hub_offline

_TIMEOUT_S = 20.0


class HubError(ModelResolutionError):
    """The Hub refused or could not answer; the message says what to do."""


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _token() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def _translate(exc: Exception, model_id: str, revision: str | None) -> HubError:
    """huggingface_hub's errors -> a message a user can act on."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = getattr(getattr(exc, "response", None), "status_code", None)
    token_state = "HF_TOKEN is set but does not grant access" if _token() else "HF_TOKEN is not set"
    if isinstance(exc, GatedRepoError) or (status == 403 and not isinstance(exc, RevisionNotFoundError)):
        return HubError(
            f"model {model_id!r} is gated on the Hugging Face Hub (HTTP {status or 401}) and {token_state}: "
            f"accept the license on https://huggingface.co/{model_id} and export HF_TOKEN with a token that "
            "can read it (or use a catalog id or a local folder)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"model {model_id!r} has no revision {revision!r} on the Hub (check model.revision)")
    if status == 401:
        # The Hub answers 401 (not 404) for a private repo *and* for a missing one without a token.
        return HubError(
            f"model {model_id!r} was not found on the Hugging Face Hub or is private (HTTP 401) and {token_state}: "
            "check the id's spelling (owner/name); for a private or gated repo, accept its license and "
            "export HF_TOKEN"
        )
    if isinstance(exc, RepositoryNotFoundError) or status == 404:
        return HubError(
            f"model {model_id!r} was not found on the Hugging Face Hub (HTTP 404): check the id's spelling "
            "(owner/name), or point model.id at a local folder with config.json"
        )
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(
            f"model {model_id!r}: HF_HUB_OFFLINE is set and the model is not in the lock or catalog"
        )
    if isinstance(exc, HfHubHTTPError):
        return HubError(f"model {model_id!r}: the Hub answered HTTP {status}: {exc}")
    return HubError(
        f"model {model_id!r}: cannot reach the Hugging Face Hub ({type(exc).__name__}: {exc}). Work offline "
        "from the lock or the catalog (HF_HUB_OFFLINE=1), or use a local folder with config.json"
    )


def _get_json(repo_id: str, filename: str, sha: str) -> dict[str, Any]:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo_id, filename, revision=sha, endpoint=_endpoint())
    resp = get_session().get(
        url, headers=build_hf_headers(token=_token()), timeout=_TIMEOUT_S, follow_redirects=True
    )
    hf_raise_for_status(resp)
    data = json.loads(resp.content)
    if not isinstance(data, dict):
        raise HubError(f"{repo_id}/{filename}: expected a JSON object")
    return data


def facts_from_hub(model_id: str, *, revision: str | None = None) -> ModelFacts:
    """ModelFacts of a Hub model at `revision` (default: main), pinned to its commit sha."""
    if hub_offline():
        raise HubError(
            f"model {model_id!r} is not in the lock or the built-in catalog and HF_HUB_OFFLINE=1: compile "
            "once online to lock it, or use a local folder with config.json"
        )
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_endpoint(), token=_token())
    try:
        info = api.model_info(model_id, revision=revision, timeout=_TIMEOUT_S)
    except Exception as exc:  # every failure becomes a HubError with advice
        raise _translate(exc, model_id, revision) from exc
    sha = info.sha or revision
    if not sha:
        raise HubError(f"model {model_id!r}: the Hub gave no commit sha for revision {revision or 'main'}")
    files = {s.rfilename for s in (info.siblings or [])}
    try:
        config = _get_json(model_id, "config.json", sha)
        quant = None
        for name in QUANT_FILES:
            if name in files:
                quant = _get_json(model_id, name, sha)
                break
    except HubError:
        raise
    except Exception as exc:
        raise _translate(exc, model_id, revision) from exc

    counts = _param_counts(api, info, model_id, sha, files)
    gated = bool(getattr(info, "gated", False))
    try:
        return facts_from_config(
            config,
            model_id=model_id,
            source="hub",
            source_note=f"Hugging Face Hub {model_id}@{sha}",
            revision=sha,
            quant_config=quant,
            safetensors_params=counts or None,
            gated=gated,
        )
    except ModelConfigError as exc:
        raise HubError(f"{model_id}@{sha} config.json: {exc}") from exc


def _param_counts(api: Any, info: Any, model_id: str, sha: str, files: set[str]) -> dict[str, int]:
    """Parameter counts by dtype: the model info's safetensors summary, else the file headers."""
    st = getattr(info, "safetensors", None)
    params = getattr(st, "parameters", None) if st is not None else None
    if isinstance(params, dict) and params:
        return {str(k): int(v) for k, v in sorted(params.items())}
    if not any(f.endswith(".safetensors") for f in files):
        return {}
    try:
        meta = api.get_safetensors_metadata(model_id, revision=sha)
    except Exception:  # counts are a cross-check; the config alone sizes the model
        return {}
    return {str(k): int(v) for k, v in sorted(meta.parameter_count.items())}
