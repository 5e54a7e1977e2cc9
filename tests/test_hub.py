"""The Hub path against a local HTTP server standing in for huggingface.co (HF_ENDPOINT)."""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vllm_compile.facts.hub import HubError, facts_from_hub
from vllm_compile.facts.models import ModelResolutionError, resolve_model
from vllm_compile.profile.v1 import ModelSpec

from .fixtures.tiny_config import TINY_LLAMA_CONFIG

SHA_MAIN = "1" * 40
SHA_OLD = "2" * 40
CONFIG = dict(TINY_LLAMA_CONFIG)
OLD_CONFIG = {**CONFIG, "max_position_embeddings": 2048}


def _safetensors_header() -> bytes:
    header = {"w": {"dtype": "BF16", "shape": [1000, 256], "data_offsets": [0, 512000]}}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw


class _Hub(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, str | None]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self) -> None:
        _Hub.requests.append((self.command, self.path, self.headers.get("authorization")))
        path = self.path.split("?")[0]
        if path.startswith("/api/models/org/gated") or path.startswith("/org/gated/"):
            return self._send(
                401, b'{"error":"Access to model org/gated is restricted."}', {"X-Error-Code": "GatedRepo"}
            )
        if path.startswith("/api/models/org/tiny-no-summary") or path.startswith("/org/tiny-no-summary/"):
            repo = "org/tiny-no-summary"
        elif path.startswith("/api/models/org/tiny") or path.startswith("/org/tiny/"):
            repo = "org/tiny"
        else:
            return self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
        if path.startswith("/api/models/"):
            rev = path.split("/revision/")[1] if "/revision/" in path else "main"
            sha = {"main": SHA_MAIN, SHA_OLD: SHA_OLD, SHA_MAIN: SHA_MAIN}.get(rev)
            if sha is None:
                return self._send(404, b'{"error":"Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"})
            info = {
                "id": repo,
                "sha": sha,
                "gated": "manual" if repo == "org/tiny" else False,
                "siblings": [{"rfilename": "config.json"}, {"rfilename": "model.safetensors"}],
            }
            if repo == "org/tiny":
                info["safetensors"] = {"parameters": {"BF16": 768_000}, "total": 768_000}
            return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
        # /{repo}/resolve/{sha}/{file}
        rest = path[len("/" + repo + "/resolve/") :]
        sha, _, filename = rest.partition("/")
        common = {"X-Repo-Commit": sha, "ETag": f'"{sha[:8]}-{filename}"'}
        if filename == "config.json":
            body = json.dumps(OLD_CONFIG if sha == SHA_OLD else CONFIG).encode()
            return self._send(200, body, {**common, "Content-Type": "application/json"})
        if filename == "model.safetensors":
            return self._send(200 if self.command == "HEAD" else 206, _safetensors_header(), common)
        return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})

    do_GET = _route
    do_HEAD = _route


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, str | None]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    _Hub.requests = []
    try:
        yield _Hub.requests
    finally:
        server.shutdown()
        server.server_close()


def test_happy_path_pins_the_commit_sha(hub: list[tuple[str, str, str | None]]) -> None:
    facts = resolve_model(ModelSpec(id="org/tiny"))
    assert facts.source == "hub" and facts.revision == SHA_MAIN and facts.gated
    assert facts.max_model_len == 4096 and facts.hidden_size == 256
    assert facts.checkpoint_params == {"BF16": 768_000}
    paths = [p for _, p, _ in hub]
    assert "/api/models/org/tiny" in paths
    assert f"/org/tiny/resolve/{SHA_MAIN}/config.json" in paths  # read at the sha, not at "main"


def test_revision_pinned_to_a_sha(hub: list[tuple[str, str, str | None]]) -> None:
    facts = resolve_model(ModelSpec(id="org/tiny", revision=SHA_OLD))
    assert facts.revision == SHA_OLD and facts.max_model_len == 2048
    assert f"/api/models/org/tiny/revision/{SHA_OLD}" in [p for _, p, _ in hub]


def test_safetensors_headers_when_the_info_has_no_summary(hub: list[tuple[str, str, str | None]]) -> None:
    facts = facts_from_hub("org/tiny-no-summary")
    assert facts.checkpoint_params == {"BF16": 256_000}
    assert any(m == "GET" and p.endswith("/model.safetensors") for m, p, _ in hub)


def test_token_is_sent(hub: list[tuple[str, str, str | None]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    facts_from_hub("org/tiny")
    assert all(auth == "Bearer hf_test_token" for _, _, auth in hub)


def test_gated_401_says_accept_license_and_set_token(hub: list[tuple[str, str, str | None]]) -> None:
    with pytest.raises(HubError) as err:
        resolve_model(ModelSpec(id="org/gated"))
    msg = str(err.value)
    assert "gated" in msg and "accept the license" in msg and "HF_TOKEN" in msg and "not set" in msg
    assert isinstance(err.value, ModelResolutionError)


def test_missing_model_404(hub: list[tuple[str, str, str | None]]) -> None:
    with pytest.raises(HubError, match="not found on the Hugging Face Hub"):
        resolve_model(ModelSpec(id="org/missing"))


def test_missing_revision(hub: list[tuple[str, str, str | None]]) -> None:
    with pytest.raises(HubError, match="no revision"):
        resolve_model(ModelSpec(id="org/tiny", revision="v9"))


def test_offline_compile_from_the_lock(
    hub: list[tuple[str, str, str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ModelSpec(id="org/tiny", revision="main")
    locked = resolve_model(spec)  # online once: the lock records these facts
    lock_json = locked.model_dump(mode="json")
    hub.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from vllm_compile.facts.model_facts import ModelFacts

    again = resolve_model(spec, locked=ModelFacts.model_validate(lock_json))
    assert again == locked and again.revision == SHA_MAIN
    assert hub == []  # no request at all
    # Without the lock, offline and not in the catalog: a clear error, still no request.
    with pytest.raises(ModelResolutionError, match="HF_HUB_OFFLINE"):
        resolve_model(spec)
    assert hub == []


def test_unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(HubError, match="cannot reach the Hugging Face Hub"):
        facts_from_hub("org/tiny")
