"""Reports as tables, rendered as Markdown (pull-request comments, $GITHUB_STEP_SUMMARY) or with rich.

A report is a list of Sections; each format renders the same rows, so the human, Markdown and GitHub
outputs never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Section:
    title: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # bullet lines under the table
    folded: bool = False  # in Markdown: inside <details> (the summary table stays open)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(title: str, sections: list[Section]) -> str:
    out = [f"### {title}", ""]
    for section in sections:
        body: list[str] = []
        if section.headers:
            body.append("| " + " | ".join(_cell(h) for h in section.headers) + " |")
            body.append("|" + "|".join("---" for _ in section.headers) + "|")
            body.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in section.rows)
            body.append("")
        body.extend(f"- {_cell(line)}" for line in section.lines)
        if section.lines:
            body.append("")
        if section.folded:
            out.extend([f"<details><summary>{section.title}</summary>", "", *body, "</details>", ""])
        else:
            out.extend([f"**{section.title}**", "", *body])
    return "\n".join(out).rstrip() + "\n"


def print_rich(title: str, sections: list[Section]) -> None:
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    console.print(f"[bold]{escape(title)}[/bold]")
    for section in sections:
        if section.headers:
            table = Table(title=section.title, title_justify="left")
            for header in section.headers:
                table.add_column(header)
            for row in section.rows:
                table.add_row(*(escape(c) for c in row))
            console.print(table)
        elif section.lines:
            console.print(f"[bold]{escape(section.title)}[/bold]")
        for line in section.lines:
            console.print(f"  - {escape(line)}")
