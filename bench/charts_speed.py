"""What the charts cost (a script, not a test): importing the drawing library in a fresh process, and
drawing the three charts of every bundled profile (plans made first, not timed).

    python bench/charts_speed.py          # median of 3 runs each
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = (  # the compiler's own modules first (not timed): what the charts add on top of a compile
    "import time; import vllm_compile.api, vllm_compile.render, vllm_compile.passes.workload; "
    "t = time.perf_counter(); from vllm_compile.charts import render_charts, layouts, memory, "
    "performance; from vllm_compile.charts.svg import check_version; check_version(); "
    "print(time.perf_counter() - t)"
)


def cold_import() -> float:
    """Seconds to import the chart modules and their drawing library in a new interpreter."""
    done = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> None:
    from vllm_compile import api
    from vllm_compile.charts import render_charts
    from vllm_compile.profile.loader import load_profile

    plans = []
    for path in sorted((ROOT / "profiles").glob("*.yaml")):
        loaded = load_profile(path, path.name)
        if loaded.profile is not None:
            plans.append(
                (path.stem, api.plan_profile(loaded.profile, name=loaded.name, base_dir=path.parent))
            )
    render_charts(plans[0][1])  # the library imported and warm
    imports = [cold_import() for _ in range(3)]
    rounds = []
    per_profile: dict[str, list[float]] = {}
    for _ in range(3):
        start = time.perf_counter()
        for name, plan in plans:
            t = time.perf_counter()
            files = render_charts(plan)
            per_profile.setdefault(name, []).append(time.perf_counter() - t)
            assert files, name
        rounds.append(time.perf_counter() - start)
    print(f"import of the chart modules, cold process: {statistics.median(imports):.3f} s (median of 3)")
    print(
        f"draw every chart of {len(plans)} bundled profiles: {statistics.median(rounds):.3f} s (median of 3)"
    )
    for name, times in per_profile.items():
        print(f"  {name:32s} {statistics.median(times) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
