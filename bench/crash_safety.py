"""out/ under kill -9 and under concurrent compiles (a script, not a test: it takes minutes).

    python bench/crash_safety.py                 # 20 kills during a 200-profile compile, 10 concurrent rounds
    python bench/crash_safety.py --kills 5 --rounds 3 --profiles 60

Inputs A and B are the same 200 profile names with different workloads, so every file differs between
them. Reference outputs refA/ and refB/ come from clean compiles.

Kill -9: each round compiles the other input into one out/ and kills the whole process group at a
random moment of the run. Then, with nothing else running:
  - no partial file: every file in out/ is byte-identical to the same path in refA/ or refB/;
  - the next (normal) compile finishes, leaves no temporary file, and out/ equals the reference;
  - `--check` exits 0.
Concurrent: two compiles of A and B into one out/ at once; afterwards every profile folder is one
reference's folder entirely (its lock and artifacts from the same inputs), never a mix.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROFILE = """profile_version: 1
model: {{id: {model}, max_model_len: {length}}}
hardware: {{gpu_name: "{gpu}", gpus: {gpus}}}
workload: {{prompt_tokens: {prompt}, gen_tokens: 256, concurrency: {concurrency}}}
policy: {{fail_on: never}}
"""
MODELS = ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-8B"]
GPUS = [("H100", 1), ("L40S", 1), ("A100 80GB", 2)]
LENGTHS = [4096, 8192, 16384]


def generate(directory: Path, count: int, prompt: int) -> None:
    directory.mkdir(parents=True)
    combos = itertools.cycle(itertools.product(MODELS, GPUS, LENGTHS, [8, 32, 128]))
    for index in range(count):
        model, (gpu, gpus), length, concurrency = next(combos)
        text = PROFILE.format(
            model=model, gpu=gpu, gpus=gpus, length=length, concurrency=concurrency, prompt=prompt
        )
        (directory / f"p{index:04d}.yaml").write_text(text)


def files_of(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def compile_cmd(exe: str, src: Path, out: Path, *extra: str) -> list[str]:
    return [exe, str(src), "--out", str(out), *extra]


def run(cmd: list[str]) -> int:
    return subprocess.run(cmd, capture_output=True, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profiles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    exe = shutil.which("vllm-compile") or sys.exit("install the project first: pip install -e .")
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = {"A": root / "A", "B": root / "B"}
        generate(src["A"], args.profiles, prompt=1024)
        generate(src["B"], args.profiles, prompt=2048)
        refs = {}
        for key in ("A", "B"):
            start = time.perf_counter()
            assert run(compile_cmd(exe, src[key], root / f"ref{key}")) == 0
            duration = time.perf_counter() - start
            refs[key] = files_of(root / f"ref{key}")
        print(f"reference compile of {args.profiles} profiles: {duration:.1f} s")

        # --- kill -9 at random moments ----------------------------------------------------------
        out = root / "out"
        assert run(compile_cmd(exe, src["A"], out)) == 0
        start = time.perf_counter()
        assert run(compile_cmd(exe, src["B"], out)) == 0  # how long a switch of every profile takes
        duration = time.perf_counter() - start
        print(
            f"compile switching all {args.profiles} profiles: {duration:.1f} s; kills land in (0.05, {0.9 * duration:.1f}) s"
        )
        current = "B"
        leftovers_seen = partial = kills = attempts = 0
        while kills < args.kills and attempts < 3 * args.kills:
            kill, attempts = kills, attempts + 1
            target = "B" if current == "A" else "A"
            proc = subprocess.Popen(
                compile_cmd(exe, src[target], out),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            time.sleep(rng.uniform(0.05, 0.9 * duration))
            killed = proc.poll() is None
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
            state = files_of(out)
            temp = [p for p in state if ".vllm-compile-tmp/" in p and not p.endswith(".gitignore")]
            leftovers_seen += bool(temp)
            bad = [
                p
                for p, data in state.items()
                if p not in temp
                and not p.endswith(".gitignore")
                and data not in (refs["A"].get(p), refs["B"].get(p))
            ]
            if bad:
                partial += 1
                failures.append(f"kill {kill}: {len(bad)} file(s) match neither input, e.g. {bad[0]}")
            rc = run(compile_cmd(exe, src[target], out))
            after = files_of(out)
            if rc != 0 or after != refs[target]:
                extra = sorted(set(after) ^ set(refs[target]))[:3]
                failures.append(f"kill {kill}: next compile rc={rc}, out/ differs from the reference {extra}")
            if run(compile_cmd(exe, src[target], out, "--check")) != 0:
                failures.append(f"kill {kill}: --check not clean after the next compile")
            current = target
            print(
                f"run {attempts:2d}: {'killed' if killed else 'finished first (not counted)'}, "
                f"temp files left {len(temp)}, files matching neither input {len(bad)}"
            )
        print(
            f"\nkill -9: {kills} kills in {attempts} runs, {partial} with a partial or foreign file, {leftovers_seen} left "
            "temp files (the next run must remove them: see FAIL lines otherwise)"
        )

        # --- two compiles of different inputs at once --------------------------------------------
        mixed_rounds = 0
        for round_ in range(args.rounds):
            out = root / f"race{round_}"
            procs = [
                subprocess.Popen(
                    compile_cmd(exe, src[k], out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                for k in ("A", "B")
            ]
            codes = [p.wait() for p in procs]
            state = files_of(out)
            folders = sorted({p.split("/")[0] for p in state})
            mixed = []
            for folder in folders:
                mine = {p: d for p, d in state.items() if p.split("/")[0] == folder}
                if not any(
                    mine == {p: d for p, d in ref.items() if p.split("/")[0] == folder}
                    for ref in refs.values()
                ):
                    mixed.append(folder)
            mixed_rounds += bool(mixed)
            if mixed or codes != [0, 0]:
                failures.append(f"race {round_}: exit codes {codes}, mixed profiles {mixed[:3]}")
            print(
                f"race {round_ + 1:2d}: exit codes {codes}, {len(folders)} profile folders, {len(mixed)} mixed"
            )
        print(f"\nconcurrent compiles: {args.rounds} rounds, {mixed_rounds} left a mixed profile")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
