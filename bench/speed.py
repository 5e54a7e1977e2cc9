"""Compile speed, as the pre-commit hook and CI see it (a script, not a test).

    python bench/speed.py            # cold single-profile compile and 1,000 generated profiles

Targets (issue #11): <= 0.30 s wall for one profile from a cold process, <= 8 s for 1,000 generated
profiles from scratch, on 2 cores. Each case also prints the CPU seconds it used (user + system, the
process and its workers): on a machine shared with other work the wall time grows with the load, the
CPU time much less, and the load average is printed beside them.

The compiler runs as a user's hook runs it: with Python's bytecode cache (a venv's site-packages are
compiled at install; an editable install's own modules on their first run). A PYTHONDONTWRITEBYTECODE
in this shell is removed for the measured commands, and one untimed run writes the cache first.
"""

from __future__ import annotations

import itertools
import os
import resource
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
# The same profiles without the `charts` target: what drawing the SVG charts (pygal) costs on top.
NO_CHARTS = "deploy: {targets: [command, vllm-config, compose, helm, k8s, report]}\n"


def generate(directory: Path, count: int, *, charts: bool = True) -> None:
    combos = itertools.cycle(itertools.product(MODELS, GPUS, LENGTHS, CONCURRENCY))
    for index in range(count):
        model, (gpu, gpus), length, concurrency = next(combos)
        text = PROFILE.format(model=model, gpu=gpu, gpus=gpus, length=length, concurrency=concurrency)
        (directory / f"p{index:04d}.yaml").write_text(text + ("" if charts else NO_CHARTS))


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=ENV)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    exe = shutil.which("vllm-compile") or sys.exit("install the project first: pip install -e .")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        single = root / "single"
        single.mkdir()
        generate(single, 1)
        timed([exe, str(single), "--out", str(root / "out-warmup")])  # writes the bytecode cache
        cold = [timed([exe, str(single), "--out", str(root / f"out-single-{i}")]) for i in range(7)]
        warm = [timed([exe, str(single), "--out", str(root / "out-single-0")]) for _ in range(5)]
        many = root / "many"
        many.mkdir()
        generate(many, 1000)
        thousand = timed([exe, str(many), "--out", str(root / "out-many")])
        thousand_reused = timed([exe, str(many), "--out", str(root / "out-many")])
        bare = root / "bare"
        bare.mkdir()
        generate(bare, 1, charts=False)
        cold_bare = [timed([exe, str(bare), "--out", str(root / f"out-bare-{i}")]) for i in range(7)]
        many_bare = root / "many-bare"
        many_bare.mkdir()
        generate(many_bare, 1000, charts=False)
        thousand_bare = timed([exe, str(many_bare), "--out", str(root / "out-many-bare")])
    rows = [
        ("one profile, cold process, fresh out/ (median of 7)", _median(cold), "<= 0.30"),
        ("one profile, lock current (median of 5)", _median(warm), ""),
        ("1,000 generated profiles, fresh out/", thousand, "<= 8"),
        ("1,000 generated profiles, locks current", thousand_reused, ""),
        ("one profile, cold, fresh out/, no charts target", _median(cold_bare), ""),
        ("1,000 generated profiles, fresh out/, no charts", thousand_bare, ""),
    ]
    print(f"{'case':52} {'wall s':>7} {'CPU s':>7}  target (wall)")
    for name, (wall, cpu), target in rows:
        print(f"{name:52} {wall:7.3f} {cpu:7.3f}  {target}")
    load = os.getloadavg()
    print(f"load average while measured: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
