"""The README and docs/ hold together: every relative link and #anchor resolves, the front page stays short, and the
reference pages name every setting the code has.

Anchors are made the way GitHub makes them from a heading: the text without its markdown, lowercased, every character
that is not a letter, digit, space, '-' or '_' dropped, each space made '-'; a repeated heading gets -1, -2, ….
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked out."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, re.sub(r"(`+)(?:(?!\1).)+\1", "", line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page's headings make (a repeated one numbered as GitHub numbers it)."""
    result = set()
    counts: dict[str, int] = {}
    for _, line in _heading_lines(page):
        base = slug(line)
        n = counts.get(base, 0)
        result.add(base if n == 0 else f"{base}-{n}")
        counts[base] = n + 1
    return result


def _heading_lines(page: Path) -> list[tuple[int, str]]:
    """The text of each ATX heading outside code blocks (inline code kept: it is part of the heading's text)."""
    headings, fenced = [], False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            headings.append((number, match.group(1)))
    return headings


def links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every markdown link and image in a page's prose."""
    return [(number, match.group(1)) for number, line in prose_lines(page.read_text(encoding="utf-8"))
            for match in LINK.finditer(line)]


def test_slug_matches_githubs():
    assert slug("TTA, SWA and ensembles — each gain measured on OOF") == "tta-swa-and-ensembles--each-gain-measured-on-oof"
    assert slug("CPU recipes: `make cpu-recipe`, `make cpu-quick`") == "cpu-recipes-make-cpu-recipe-make-cpu-quick"
    assert slug("2026-12-02: today's `cpu-recipe`") == "2026-12-02-todays-cpu-recipe"
    assert slug("`cpu_bf16` on a CPU with AMX") == "cpu_bf16-on-a-cpu-with-amx"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: — not ours to check
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"line {number}: {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"line {number}: {target}: {linked.relative_to(REPO)} has no heading #{anchor}")
        elif anchor and linked.suffix != ".md":
            broken.append(f"line {number}: {target}: an anchor into a file that is not markdown")
    assert not broken, f"{page.relative_to(REPO)}:\n" + "\n".join(broken)


def test_readme_is_short():
    lines = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference and studies to docs/"


def test_every_docs_page_is_reachable_from_the_readme():
    reached, todo = set(), [REPO / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for _, target in links(page):
            path_part = target.partition("#")[0]
            if path_part and not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                linked = (page.parent / path_part).resolve()
                if linked.suffix == ".md" and linked.is_file():
                    todo.append(linked)
    orphans = [str(p.relative_to(REPO)) for p in PAGES if p.resolve() not in reached]
    assert not orphans, f"no link leads to {orphans} from README.md"


def test_settings_page_names_every_setting():
    """docs/settings.md lists every make variable, preset and notebook setting the code defines."""
    import dataclasses

    from core.config import Config
    from core.ensemble import EnsembleSettings
    from core.inference import InferenceSettings
    from core.lr_scaling import AnalysisSettings
    from core.presets import PRESETS
    from core.sweep import SweepGrid
    from tools.cli import VARIABLES

    page = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    names = [*VARIABLES, *PRESETS, *(f.name for f in dataclasses.fields(Config)),
             *(f.name for f in dataclasses.fields(InferenceSettings)),
             *(f.name for f in dataclasses.fields(EnsembleSettings)), *SweepGrid.PARAMETERS,
             *(f.name for f in dataclasses.fields(AnalysisSettings))]
    missing = sorted({name for name in names if f"`{name}`" not in page})
    assert not missing, f"docs/settings.md does not name {missing}"
