"""Draft models for speculative decoding: the facts the planner needs about a draft / EAGLE head.

A draft resolves like a model (built-in draft catalog, local folder with config.json; the Hub is
not reached for drafts yet, so a Hub-only draft is an error that says what to do). `mtp` drafts are
the target's own multi-token-prediction layers and come from the target's facts. ngram and suffix
decoding have no draft model.

What vLLM builds from the config (sources in vLLM):
- EAGLE-3 (`model_executor/models/llama_eagle3.py`): one or more decoder layers whose qkv_proj reads
  [embeds, hidden] (2 x hidden), `fc` combining three target hidden states (3 x target hidden -> hidden),
  a final norm, its own lm_head over `draft_vocab_size` and the d2t map (int64, draft vocab).
- EAGLE-1 (`llama_eagle.py`): decoder layers with `fc` (2 x hidden -> hidden); lm_head shared.
- `draft_model`: an ordinary small model, every weight its own.
- embed_tokens / lm_head are shared with the target when the checkpoint has none or identical ones
  (`v1/spec_decode/eagle.py: EagleProposer.load_model`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .model_facts import ModelFacts

_DATA = "draft_catalog.json"
NO_DRAFT_METHODS = frozenset({"ngram", "suffix"})
MTP_METHODS = frozenset(
    {"mtp", "deepseek_mtp", "qwen3_next_mtp", "glm4_moe_mtp", "mimo_mtp", "ernie_mtp", "longcat_flash_mtp"}
)


class DraftError(ValueError):
    """The draft cannot be resolved or does not fit the method; the message says what to do."""


class DraftFacts(BaseModel):
    """The draft's architecture numbers, as vLLM builds the proposer's model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    method: str
    source: str  # catalog | local | mtp
    source_note: str = ""
    architecture: str
    num_layers: int  # decoder layers of the draft (each has its own KV cache)
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int  # the target vocabulary
    draft_vocab_size: int  # the draft's lm_head rows (EAGLE-3 reduced vocabulary)
    target_hidden_size: int
    own_embed_tokens: bool
    own_lm_head: bool
    mla: bool = False  # MTP layers of an MLA model keep MLA pages
    params_per_layer: int = 0  # MTP: one MTP block as the target's facts count it

    def params(self, tp: int = 1) -> int:
        """Parameters on one GPU at tensor parallel `tp` (the layer's linears split, norms and fc whole)."""
        h, inter = self.hidden_size, self.intermediate_size
        if self.params_per_layer:
            per_layer = self.params_per_layer // tp
        else:
            qkv_in = 2 * h if self.method == "eagle3" else h
            kv = self.num_key_value_heads * self.head_dim
            q = self.num_attention_heads * self.head_dim
            attn = qkv_in * (q + 2 * kv) // tp + q * h // tp
            mlp = 3 * h * inter // tp
            per_layer = attn + mlp + (3 if self.method == "eagle3" else 2) * h
        total = self.num_layers * per_layer + h  # final norm
        if self.method == "eagle3":
            total += 3 * self.target_hidden_size * h  # fc: replicated
        elif self.method == "eagle":
            total += 2 * h * h
        if self.own_lm_head:
            total += self.draft_vocab_size * h // tp
        if self.own_embed_tokens:
            total += self.vocab_size * h // tp
        return total

    def extra_bytes(self) -> int:
        """Buffers loaded with the weights: EAGLE-3's d2t map (int64 per draft-vocab entry)."""
        if self.method == "eagle3" and self.draft_vocab_size != self.vocab_size:
            return 8 * self.draft_vocab_size
        return 0


@lru_cache(maxsize=1)
def _rows() -> dict[str, dict[str, Any]]:
    from importlib import resources

    text = resources.files("vllm_compile.facts").joinpath("data", _DATA).read_text(encoding="utf-8")
    return {row["id"].lower(): row for row in json.loads(text)["drafts"]}


def draft_catalog_ids() -> list[str]:
    return sorted((row["id"] for row in _rows().values()), key=str.lower)


def drafts_for(target_id: str) -> list[dict[str, Any]]:
    """Catalog drafts made for `target_id` (what the recommender may propose)."""
    return [r for r in _rows().values() if r.get("target", "").lower() == target_id.strip().lower()]


def _from_config(
    config: dict[str, Any],
    *,
    draft_id: str,
    method: str,
    target: ModelFacts,
    source: str,
    note: str,
    own_embed: bool | None,
    own_head: bool | None,
) -> DraftFacts:
    def need(key: str) -> int:
        value = config.get(key)
        if not isinstance(value, int) or value <= 0:
            raise DraftError(f"draft {draft_id!r}: config.json has no positive integer {key!r}")
        return value

    heads = need("num_attention_heads")
    hidden = need("hidden_size")
    vocab = int(config.get("vocab_size") or target.vocab_size)
    draft_vocab = int(config.get("draft_vocab_size") or vocab)
    if method == "eagle3":
        # Checkpoints without embed_tokens share the target's; EAGLE-3 heads carry their own lm_head.
        embed = False if own_embed is None else own_embed
        head = True if own_head is None else own_head
    elif method == "eagle":
        embed = False if own_embed is None else own_embed
        head = False if own_head is None else own_head
    else:
        embed = True if own_embed is None else own_embed
        head = not config.get("tie_word_embeddings", False) if own_head is None else own_head
    return DraftFacts(
        id=draft_id,
        method=method,
        source=source,
        source_note=note,
        architecture=(config.get("architectures") or ["unknown"])[0],
        num_layers=need("num_hidden_layers"),
        hidden_size=hidden,
        intermediate_size=need("intermediate_size"),
        num_attention_heads=heads,
        num_key_value_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        vocab_size=vocab,
        draft_vocab_size=draft_vocab,
        target_hidden_size=int(config.get("target_hidden_size") or target.hidden_size),
        own_embed_tokens=embed,
        own_lm_head=head,
    )


def _mtp(method: str, target: ModelFacts) -> DraftFacts:
    """The target's own MTP layers (DeepSeek-V3 num_nextn_predict_layers, Qwen3-Next, GLM-4.5 ...)."""
    if not target.params_mtp:
        raise DraftError(
            f"speculative method {method!r} needs multi-token-prediction layers in the checkpoint; "
            f"{target.id} has none (its config has no num_nextn_predict_layers / mtp layers)"
        )
    h, vocab = target.hidden_size, target.vocab_size
    # model_config counts per MTP layer: block + eh_proj + norms + embed + head; vLLM shares both the
    # embedding and the lm_head with the target (eagle.py load_model: "Detected MTP model. Sharing target
    # model embedding weights" / "... lm_head weights").
    # One MTP layer in the checkpoints of these families (num_nextn_predict_layers: 1); vLLM reuses it
    # for every speculative token.
    n_layers = 1
    per_layer = target.params_mtp - 2 * vocab * h
    return DraftFacts(
        id=f"{target.id} (MTP layers)",
        method=method,
        source="mtp",
        source_note="the target checkpoint's multi-token-prediction layers",
        architecture=target.architecture,
        num_layers=n_layers,
        hidden_size=h,
        intermediate_size=target.intermediate_size,
        num_attention_heads=target.num_attention_heads,
        num_key_value_heads=target.num_key_value_heads,
        head_dim=target.head_dim,
        vocab_size=vocab,
        draft_vocab_size=vocab,
        target_hidden_size=h,
        own_embed_tokens=False,
        own_lm_head=False,
        mla=target.is_mla,
        params_per_layer=per_layer,
    )


def resolve_draft(method: str, model: str | None, target: ModelFacts) -> DraftFacts | None:
    """DraftFacts of a speculative config, None for methods without a draft model (ngram, suffix)."""
    if method in NO_DRAFT_METHODS:
        if model:
            raise DraftError(f"speculative method {method!r} has no draft model; remove speculative.model")
        return None
    if method in MTP_METHODS:
        return _mtp(method, target)
    if not model:
        raise DraftError(f"speculative method {method!r} needs speculative.model (the draft or EAGLE head)")
    row = _rows().get(model.strip().lower())
    if row is not None:
        if (
            row.get("method")
            and row["method"] != method
            and not (method == "eagle" and row["method"] == "eagle3")
        ):
            raise DraftError(
                f"draft {row['id']} is an {row['method']} head; set speculative.method: {row['method']}"
            )
        return _from_config(
            row["config"],
            draft_id=row["id"],
            method=method,
            target=target,
            source="catalog",
            note=row.get("source", ""),
            own_embed=row.get("own_embed_tokens"),
            own_head=row.get("own_lm_head"),
        )
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DraftError(f"{path / 'config.json'}: not readable JSON ({exc})") from exc
        if not isinstance(config, dict):
            raise DraftError(f"{path / 'config.json'}: expected a JSON object")
        return _from_config(
            config,
            draft_id=model,
            method=method,
            target=target,
            source="local",
            note=f"local directory {path}",
            own_embed=None,
            own_head=None,
        )
    known = ", ".join(draft_catalog_ids())
    raise DraftError(
        f"draft model {model!r} is not in the built-in draft catalog ({known}) and is not a local folder "
        "with config.json: download it (huggingface-cli download) and point speculative.model at the folder"
    )
