"""One deterministic way to draw: matplotlib's object API and SVG backend, settings pinned.

- `svg.hashsalt` fixed: the ids of clip paths and glyphs are hashes of it, not of a random uuid;
- no `Date` metadata and a fixed `Creator` (matplotlib's default names its own version);
- DejaVu Sans, the font bundled inside matplotlib, so text is measured the same on every machine
  (no system font lookup); text stays text in the SVG (`svg.fonttype: none`), small and searchable;
- the "classic-free" default style reset, so a user's matplotlibrc cannot leak into the output;
- no pyplot: no global figure manager, no GUI backend, safe in the web server's threads.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

HASH_SALT = "vllm-compile"
PINNED_MINOR = "3.10"  # pyproject.toml pins it: other releases lay text out a fraction of a point apart
COLORS = {  # Okabe-Ito, readable with the common colour-vision deficiencies
    "weights": "#0072B2",
    "activation": "#E69F00",
    "non_torch": "#CC79A7",
    "cuda_graphs": "#D55E00",
    "kv": "#009E73",
    "baseline": "#999999",
    "free": "#E8E8E8",
    "ttft": "#0072B2",
    "itl": "#D55E00",
    "throughput": "#009E73",
    "slo": "#CC0000",
    "point": "#000000",
    "frontier": "#56B4E9",
}
RC = {
    "svg.hashsalt": HASH_SALT,
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "path.simplify": False,  # simplification depends on the figure's pixel size: keep every vertex
}
METADATA = {"Date": None, "Creator": "vllm-compile", "Format": None, "Type": None}


class ChartError(ValueError):
    """The charts cannot be drawn byte-identically here (render.RenderError reports it)."""


def check_version() -> None:
    """Loudly, not silently: another matplotlib draws other bytes, and `--check` would flap."""
    if not matplotlib.__version__.startswith(PINNED_MINOR + "."):
        raise ChartError(
            f"charts are drawn with matplotlib {PINNED_MINOR}.x (byte-identical output); this environment has "
            f"{matplotlib.__version__}: pip install 'matplotlib=={PINNED_MINOR}.*', or drop `charts` from deploy.targets"
        )


@contextmanager
def figure(
    width_in: float, height_in: float, margins: dict[str, float] | None = None, **subplots
) -> Iterator[tuple[Figure, object]]:
    """A figure with pinned settings; yields (figure, axes from `subplots`). Margins are fixed
    fractions (no constrained layout: it measures every label twice and costs ~4x the drawing)."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # the library's defaults, not the user's matplotlibrc
        matplotlib.rcParams.update(RC)
        fig = Figure(figsize=(width_in, height_in), dpi=72)
        FigureCanvasSVG(fig)
        fig.subplots_adjust(**{"left": 0.1, "right": 0.97, "top": 0.9, "bottom": 0.15, **(margins or {})})
        axes = fig.subplots(**subplots) if subplots else fig.add_subplot()
        yield fig, axes


_DECIMAL = re.compile(r"(?<![\w#.])(-?\d+\.\d{3,})(?![\w.])")


def _round(match: re.Match[str]) -> str:
    """Coordinates to 0.01 pt (invisible): matplotlib releases differ in the 4th decimal of text
    positions, and the output must not."""
    text = f"{float(match.group(1)):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def to_svg(fig: Figure) -> str:
    """The figure as SVG text, LF newlines, one trailing newline. Call inside `figure()`: the text is
    laid out when saved, under the pinned settings."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=METADATA)
    # Like every artifact: LF, no trailing blanks (matplotlib leaves some after path data, where a
    # newline separates the same), one final newline.
    text = _DECIMAL.sub(_round, buf.getvalue())
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).rstrip("\n") + "\n"


def gib(n: int) -> float:
    return n / 2**30
