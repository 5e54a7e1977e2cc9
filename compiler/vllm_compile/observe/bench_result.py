"""`vllm bench serve` results read back: the `--save-result` JSON, or the summary it prints.

JSON keys are those of vLLM's benchmarks/serve.py `result_json` (also benchmarks/benchmark_serving.py):
completed, duration, total_input_tokens, total_output_tokens, request_throughput, output_throughput,
total_token_throughput, {mean,median,p99}_{ttft,tpot,itl,e2el}_ms, max_concurrency, request_rate,
num_prompts. The printed summary ("============ Serving Benchmark Result ============") carries the same
figures under their labels ("Median TPOT (ms):").
"""

from __future__ import annotations

import hashlib
import json
import math
import re

from pydantic import BaseModel, ConfigDict

_LABELS = {
    "Successful requests": "completed",
    "Benchmark duration (s)": "duration",
    "Total input tokens": "total_input_tokens",
    "Total generated tokens": "total_output_tokens",
    "Request throughput (req/s)": "request_throughput",
    "Output token throughput (tok/s)": "output_throughput",
    "Total Token throughput (tok/s)": "total_token_throughput",
    "Maximum request concurrency": "max_concurrency",
    "Mean TTFT (ms)": "mean_ttft_ms",
    "Median TTFT (ms)": "median_ttft_ms",
    "Mean TPOT (ms)": "mean_tpot_ms",
    "Median TPOT (ms)": "median_tpot_ms",
    "Mean ITL (ms)": "mean_itl_ms",
    "Median ITL (ms)": "median_itl_ms",
    "Mean E2EL (ms)": "mean_e2el_ms",
    "Median E2EL (ms)": "median_e2el_ms",
}


class BenchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str
    completed: int
    duration: float | None = None
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float | None = None
    output_throughput: float | None = None
    total_token_throughput: float | None = None
    mean_ttft_ms: float | None = None
    median_ttft_ms: float | None = None
    mean_tpot_ms: float | None = None
    median_tpot_ms: float | None = None
    mean_itl_ms: float | None = None
    median_itl_ms: float | None = None
    mean_e2el_ms: float | None = None
    median_e2el_ms: float | None = None
    max_concurrency: int | None = None  # the client's cap (--max-concurrency)
    request_rate: float | None = None  # inf = all at once
    num_prompts: int | None = None

    @property
    def prompt_tokens(self) -> int:
        return round(self.total_input_tokens / self.completed)

    @property
    def gen_tokens(self) -> int:
        return round(self.total_output_tokens / self.completed)

    def concurrency(self) -> tuple[int, str]:
        """Requests in flight during the run, and how that is known."""
        if self.max_concurrency:
            return self.max_concurrency, "the benchmark's --max-concurrency"
        if self.request_rate in (None, math.inf) and self.num_prompts:
            return self.num_prompts, "all requests sent at once (request rate inf)"
        if self.request_throughput and self.mean_e2el_ms:  # Little's law: L = lambda x W
            return max(1, round(self.request_throughput * self.mean_e2el_ms / 1000)), "Little's law"
        return self.completed, "all completed requests at once (assumed)"


class BenchError(ValueError):
    pass


def _numbers(data: dict) -> dict:
    fields = set(BenchResult.model_fields) - {"sha256"}
    out = {}
    for key in fields:
        value = data.get(key)
        if isinstance(value, str) and value.lower() in ("inf", "infinity"):
            value = math.inf
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            annotation = str(BenchResult.model_fields[key].annotation)
            out[key] = int(value) if annotation.startswith("int") and math.isfinite(value) else value
    return out


def parse_bench(text: str) -> BenchResult | None:
    """A benchmark result, or None when the text is neither a result JSON nor a printed summary."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    stripped = text.lstrip()
    data: dict = {}
    if stripped.startswith("{"):
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise BenchError(f"not a benchmark result: {exc}") from exc
        if not isinstance(loaded, dict):
            raise BenchError("not a benchmark result: a JSON object is expected")
        data = _numbers(loaded)
    elif "Serving Benchmark Result" in text:
        for label, key in _LABELS.items():
            match = re.search(rf"^{re.escape(label)}:\s+([\d.]+)", text, re.M)
            if match:
                data[key] = float(match.group(1))
        match = re.search(r"--num-prompts[ =](\d+)", text)
        if match:
            data["num_prompts"] = int(match.group(1))
        match = re.search(r"--request-rate[ =](\S+)", text)
        data["request_rate"] = math.inf if not match or match.group(1) == "inf" else float(match.group(1))
        match = re.search(r"--max-concurrency[ =](\d+)", text)
        if match:
            data["max_concurrency"] = int(match.group(1))
        data = _numbers(data)
    else:
        return None
    if not data.get("completed") or "total_input_tokens" not in data or "total_output_tokens" not in data:
        raise BenchError("not a benchmark result: completed requests and token totals are needed")
    return BenchResult(sha256=digest, **data)
