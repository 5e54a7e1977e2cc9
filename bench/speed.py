"""Compile speed, as the pre-commit hook and CI see it (a script, not a test).

    python bench/speed.py            # cold single-profile compile and 1,000 generated profiles

Targets (issue #2): <= 0.25 s for one profile from a cold process, <= 4 s for 1,000 profiles, on 2 cores.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "meta-llama/Llama-3.1-70B-Instruct",
    "Qwen/Qwen3-8B",
]
GPUS = [("H100", 1), ("H100", 2), ("A100 80GB", 4), ("L40S", 2), ("H200", 8)]
LENGTHS = [4096, 8192, 16384, 32768]
CONCURRENCY = [1, 8, 32, 64, 128, 256, 512, 1024]

PROFILE = """profile_version: 1
model: {{id: {model}, max_model_len: {length}}}
hardware: {{gpu_name: "{gpu}", gpus: {gpus}}}
workload: {{prompt_tokens: 1024, gen_tokens: 256, concurrency: {concurrency}}}
policy: {{fail_on: never}}
"""


def generate(directory: Path, count: int) -> None:
    combos = itertools.cycle(itertools.product(MODELS, GPUS, LENGTHS, CONCURRENCY))
    for index in range(count):
        model, (gpu, gpus), length, concurrency = next(combos)
        text = PROFILE.format(model=model, gpu=gpu, gpus=gpus, length=length, concurrency=concurrency)
        (directory / f"p{index:04d}.yaml").write_text(text)


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return elapsed


def main() -> None:
    exe = shutil.which("vllm-compile") or sys.exit("install the project first: pip install -e .")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        single = root / "single"
        single.mkdir()
        generate(single, 1)
        cold = [timed([exe, str(single), "--out", str(root / f"out-single-{i}")]) for i in range(7)]
        warm = [timed([exe, str(single), "--out", str(root / "out-single-0")]) for _ in range(5)]
        many = root / "many"
        many.mkdir()
        generate(many, 1000)
        thousand = timed([exe, str(many), "--out", str(root / "out-many")])
        thousand_reused = timed([exe, str(many), "--out", str(root / "out-many")])
    print(f"{'case':44} {'seconds':>8}  target")
    print(
        f"{'one profile, cold process, fresh out/ (median of 7)':44} {statistics.median(cold):8.3f}  <= 0.25"
    )
    print(f"{'one profile, lock current (median of 5)':44} {statistics.median(warm):8.3f}")
    print(f"{'1,000 generated profiles, fresh out/':44} {thousand:8.3f}  <= 4")
    print(f"{'1,000 generated profiles, locks current':44} {thousand_reused:8.3f}")


if __name__ == "__main__":
    main()
