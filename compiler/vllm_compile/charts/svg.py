"""One deterministic way to draw: pygal (pure-Python SVG), its settings and its output pinned.

- a fixed chart id (`chart.uuid`: pygal's default is a random uuid4, which also scopes its CSS);
- no JavaScript, and pygal's config dump (`<script>`) and its comments (one carries today's date and
  whether lxml was used) removed;
- the standard library's xml.etree, never lxml even where it is installed: one serializer, one output;
- one `Style` (the Okabe-Ito colours below); text widths are estimated by pygal from character counts,
  never measured with a system font;
- coordinates rounded to 0.01 px (invisible), so a last-ulp difference in a libm `log10` cannot move
  a byte; LF newlines and one final newline like every artifact.

pygal is imported inside the functions below, never at module import of render.py or api.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any
from xml.etree import ElementTree as ET

PINNED_MINOR = "3.1"  # pyproject.toml pins it: another minor lays out and styles the SVG differently
SVG_NS = "http://www.w3.org/2000/svg"
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
FONT = "'DejaVu Sans', Verdana, Arial, sans-serif"  # the browser's choice; layout does not depend on it
WIDTH = 720  # px, every chart
MARGIN = 8
LEGEND_FONT = 10
LEGEND_BOX = 10
LABEL_FONT = 10


class ChartError(ValueError):
    """The charts cannot be drawn byte-identically here (render.RenderError reports it)."""


def check_version() -> None:
    """Loudly, not silently: another pygal draws other bytes, and `--check` would flap."""
    import pygal

    if not pygal.__version__.startswith(PINNED_MINOR + "."):
        raise ChartError(
            f"charts are drawn with pygal {PINNED_MINOR}.x (byte-identical output); this environment has "
            f"{pygal.__version__}: pip install 'pygal=={PINNED_MINOR}.*', or drop `charts` from deploy.targets"
        )


def new_chart(kind: str, uuid: str, colors: Iterable[str], **config: Any) -> Any:
    """A pygal chart of `kind` ("XY", "HorizontalStackedBar") with the pinned style and settings."""
    import pygal
    from pygal.etree import etree
    from pygal.style import Style

    etree.to_etree()  # xml.etree whether or not lxml is installed: one serializer
    style = Style(
        background="#FFFFFF",
        plot_background="#FFFFFF",
        foreground="#333333",
        foreground_strong="#000000",
        foreground_subtle="#666666",
        opacity="0.9",
        opacity_hover="0.9",
        transition="0ms",
        colors=tuple(colors),
        font_family=FONT,
        title_font_size=13,
        label_font_size=LABEL_FONT,
        major_label_font_size=LABEL_FONT,
        legend_font_size=LEGEND_FONT,
        value_font_size=10,
        tooltip_font_size=10,
        guide_stroke_color="#DDDDDD",
        major_guide_stroke_color="#DDDDDD",
    )
    settings: dict[str, Any] = {
        "width": WIDTH,
        "explicit_size": True,  # width and height on <svg>: drawn at its size, not stretched to a page
        "js": [],
        "style": style,
        "pretty_print": False,
        "legend_box_size": LEGEND_BOX,
        "margin": MARGIN,
        "spacing": 8,
        "truncate_label": -1,
        "truncate_legend": -1,
    }
    chart = getattr(pygal, kind)(**{**settings, **config})
    chart.uuid = uuid
    return chart


def bottom_legend(series: int, titled: int, columns: int) -> dict[str, Any]:
    """pygal settings for a legend under the plot in `columns`: pygal reserves `series // columns`
    rows (floor, counting untitled series), so the rows it misses are added to the bottom margin."""
    reserved = series // columns
    rows = -(-titled // columns)
    row = 1.5 * max(LEGEND_FONT, LEGEND_BOX)  # pygal.graph.graph: h_max * 1.5 per row
    return {
        "legend_at_bottom": True,
        "legend_at_bottom_columns": columns,
        "margin_bottom": MARGIN + max(rows - reserved, 0) * row,
    }


def plot_group(root: ET.Element, layer: str = "plot") -> ET.Element:
    """The chart's plot area (`plot`: lines and bars; `plot overlay`: dots), in view coordinates."""
    return next(g for g in root.iter("g") if g.get("class") == layer)


def name_series(root: ET.Element, ids: list[str | None]) -> None:
    """Stable SVG ids the tests and the web page find a series by: pygal's `serie-N` class gets
    ids[N] on the group that holds its lines or bars, and `ids[N]-dots` on its dots (a scatter
    series has dots only: the id goes there)."""
    layers = [plot_group(root, "plot"), plot_group(root, "plot overlay")]
    for index, name in enumerate(ids):
        if name is None:
            continue
        groups = [
            g
            for layer in layers
            for g in layer.findall("g")
            if f"serie-{index}" in (g.get("class") or "").split() and len(g)
        ]
        for k, g in enumerate(groups):
            g.set("id", name if k == 0 else f"{name}-dots")


def element(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    """An SVG element: attribute names with `_` for `-` (stroke_width), `class_` for class."""
    node = ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attrs.items()})
    if text is not None:
        node.text = text
    return node


def rule(
    parent: ET.Element, gid: str, start: tuple[float, float], end: tuple[float, float], color: str, dash: str
) -> ET.Element:
    """A straight reference line (a budget, an SLO, a marker) in pixel coordinates: drawn here, not
    as a pygal series (each series costs pygal a few ms of configuration)."""
    return element(
        parent,
        "path",
        id=gid,
        d=f"M{start[0]:.2f} {start[1]:.2f} L{end[0]:.2f} {end[1]:.2f}",
        stroke=color,
        stroke_width="1.2",
        stroke_dasharray=dash,
        fill="none",
    )


_DROP = ("script",)  # pygal builds plain tags, the namespace an `xmlns` attribute


def _strip(root: ET.Element) -> None:
    """pygal's comments (the date, lxml or not), its config dump and its empty <script>."""
    for parent in root.iter():
        for child in list(parent):
            if child.tag is ET.Comment or child.tag in _DROP:
                parent.remove(child)


_DECIMAL = re.compile(r"(?<![\d.])(-?\d+\.\d{3,})(?![\d.])")


def _round(match: re.Match[str]) -> str:
    return _rounded(match.group(1))


@lru_cache(maxsize=8192)  # pure; gridlines, axes and bar edges repeat the same numbers
def _rounded(number: str) -> str:
    text = f"{float(number):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def tree(chart: Any, decorate: Callable[[ET.Element], None] | None = None) -> ET.Element:
    """The chart drawn, as an element tree; `decorate(root)` runs while pygal's view (its data ->
    pixel mapping, `chart.view((x, y))`) is still set, to add lines and notes pygal cannot draw."""

    def finish(root: ET.Element) -> ET.Element:
        _strip(root)
        for node in root.iter():  # legend ids unique across the charts one web page inlines
            if (node.get("id") or "").startswith("activate-serie-"):
                node.set("id", node.get("id", "").replace("activate-serie", root.get("id", "") + "-legend"))
        if decorate is not None:
            decorate(root)
        return root

    chart.add_xml_filter(finish)
    return chart.render_tree()


_LONG_ATTRIBUTE = re.compile(r'="([^"<>]*\d\.\d{3}[^"<>]*)"')


def to_svg(root: ET.Element) -> str:
    """SVG text: an XML declaration, the <svg> element, LF newlines, one trailing newline.
    Numbers in attribute values (coordinates) are rounded; text (labels, values) is left as written."""
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    body = _LONG_ATTRIBUTE.sub(lambda m: '="' + _DECIMAL.sub(_round, m.group(1)) + '"', body)
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    return "<?xml version='1.0' encoding='utf-8'?>\n" + text.rstrip("\n") + "\n"


def stack(parts: list[ET.Element], title: str) -> ET.Element:
    """Charts one above the other in one <svg>: each chart's root becomes a translated <g> that
    keeps its id, so its id-scoped CSS still applies (one <svg> per chart file, as the page counts)."""
    y = 0
    outer = ET.Element("svg", {"xmlns": SVG_NS, "id": "chart-stack", "class": "pygal-chart pygal-stack"})
    element(outer, "title", title)
    for part in parts:
        height = int(part.get("viewBox", "0 0 0 0").split()[3])
        group = element(
            outer, "g", id=part.get("id", ""), class_="pygal-chart", transform=f"translate(0, {y})"
        )
        group.extend(part)
        y += height
    outer.set("viewBox", f"0 0 {WIDTH} {y}")
    outer.set("width", str(WIDTH))
    outer.set("height", str(y))
    return outer


def number(v: float) -> str:
    """An axis or tooltip number: 12,500 / 72.9 / 0.25 (never 1.2e+04)."""
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def label_width(texts: Iterable[str], font_size: float) -> float:
    """The width pygal reserves for the widest of `texts` (its estimate from character counts)."""
    from pygal.util import text_len

    return max(float(text_len(max((len(t) for t in texts), default=0), font_size)), float(font_size))


def gib(n: int) -> float:
    return n / 2**30
