"""The chapters as a learner meets them: every fact-sheet citation and Xen changeset is a link
that lands somewhere, every exercise is a widget, every chapter asks for a prediction, nothing
prints a hint on Run All, and the stated times agree with the README's chapter table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hvmio_lab.checks import EXERCISES

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("0[0-7]-*.ipynb"))  # the chapters of this wave
FACTS = ROOT / "docs" / "IO_EXITS.md"
XENBITS = "https://xenbits.xen.org/gitweb/?p=xen.git;a=commit;h="


def _cells(path: Path, kind: str) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def _prose(markdown: str) -> str:
    """Markdown without fenced code, inline code and links: the text a reader sees unlinked."""
    markdown = re.sub(r"```.*?```", "", markdown, flags=re.S)
    markdown = re.sub(r"`[^`\n]*`", "", markdown)
    return re.sub(r"\[[^\]]*\]\([^)]*\)", "", markdown)


def _anchors() -> set[str]:
    return set(re.findall(r'<a id="([\w-]+)"></a>', FACTS.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_fact_sheet_citations_are_links_to_anchors_that_exist(path):
    anchors = _anchors()
    for md in _cells(path, "markdown"):
        bare = re.findall(r"IO_EXITS\.md §[\w.]+", _prose(md))
        assert not bare, f"{path.name}: citation(s) not linked: {bare}"
        for anchor in re.findall(r"\(\.\./docs/IO_EXITS\.md#([\w-]+)\)", md):
            assert anchor in anchors, f"{path.name}: no anchor #{anchor} in docs/IO_EXITS.md"


@pytest.mark.parametrize("path", [*CHAPTERS, FACTS], ids=lambda p: p.name)
def test_xen_changesets_link_to_xenbits(path):
    texts = _cells(path, "markdown") if path.suffix == ".ipynb" else [path.read_text()]
    for text in texts:
        prose = _prose(text)
        bare = [cs for cs in re.findall(r"\b[0-9a-f]{10}\b", prose) if not cs.isdigit()]
        assert not bare, f"{path.name}: changeset(s) not linked: {bare}"
        for cs in re.findall(r"\[([0-9a-f]{10})\]\(([^)]*)\)", text):
            assert cs[1] == XENBITS + cs[0], f"{path.name}: {cs[0]} links elsewhere: {cs[1]}"


def test_the_fact_sheet_has_an_anchor_per_section_and_no_notes_to_its_authors():
    text = FACTS.read_text(encoding="utf-8")
    assert {f"s{n}" for n in range(1, 8)} | {"s4b"} <= _anchors()
    for note in ("must say so", "exercise material", "shared/", "should say so"):
        assert note not in text, f"docs/IO_EXITS.md still talks to its authors: {note!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_is_a_widget_and_nothing_hints_on_run_all(path):
    chapter = path.name[:2]
    code = "\n".join(_cells(path, "code"))
    keys = [k for k in EXERCISES if k.startswith(f"{chapter}_")]
    assert len(keys) >= 2
    for key in keys:
        assert f'exercise("{key}")' in code, f"{path.name}: exercise {key} has no widget"
    assert not re.search(r"^\s*(hint|reveal)_\d\d_\d\(", code, flags=re.M), "a hint runs on Run All"
    assert "= None  #" not in code, "an old 'replace None' answer cell is left"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_asks_for_a_prediction_before_its_exercises(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    sources = ["".join(c["source"]) for c in nb["cells"]]
    first_exercise = next(i for i, s in enumerate(sources) if "## Exercises" in s)
    assert any("predict(" in s for s in sources[:first_exercise]), f"{path.name}: no predict"


def _stated_minutes(path: Path) -> str:
    first = _cells(path, "markdown")[0]
    found = re.search(r"\*About ([\d–]+) minutes\*", first)
    assert found, f"{path.name} states no time in its first cell"
    return found.group(1)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_stated_time_agrees_with_the_readme_and_chapter_00(path):
    minutes = _stated_minutes(path)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = re.search(rf"^\| `{path.stem}` \|.*\| ([\d–]+) min", readme, flags=re.M)
    said = row and row.group(1)
    assert said == minutes, f"README says {said} min, {path.name} says {minutes}"
    chapter_map = next(md for md in _cells(CHAPTERS[0], "markdown") if "## The chapter map" in md)
    line = next(ln for ln in chapter_map.splitlines() if ln.startswith(f"| {path.name[:2]} |"))
    assert f"| {minutes} min |" in line, f"chapter 00's map disagrees: {line}"


# Claims the corrected fact sheet retired (IO_EXITS.md §3, §4, §4b, §7), each as a pattern
# that matched the old wording, and the correct fact it gave way to.
RETIRED = {
    r"4609fc8eb0\S* from \*\*2020|4609fc8eb0, 2020\) so":
        "the PM-timer leak was fixed by c9e57594e1 (2015, XSA-121)",
    r"end of the (?:current|guest) page per exit|one guest page at a time":
        "bhyve batches at most 16 elements per exit; Xen clamps at the page boundary",
    r"no changeset (?:on record|that fixed)": "65f6837480 fixed the stash, RIP and re-emulation",
    r"only F3 for INS|F2: undocumented": "Intel documents F2 on INS/OUTS (SDM Vol. 2 §2.1.1)",
    r"without I/O privilege raises #GP": "#GP only if CPL > IOPL (or VM86) and the TSS denies",
    r"decoded with DS\s+instead of ES": "HAXM decoded `26 67 F3 6F` as a 32-bit instruction",
    r"Xen's HVM (?:ACPI )?layout": "0x1F48 is Xen's 2010 layout V0; V1 and QEMU use 0xB008",
}


def _texts() -> list[tuple[str, str]]:
    found = [(p.name, md) for p in CHAPTERS for md in _cells(p, "markdown")]
    found.append((FACTS.name, FACTS.read_text(encoding="utf-8")))
    found += [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
              for p in sorted((ROOT / "hvmio_lab").rglob("*.py"))]
    return found


@pytest.mark.parametrize("pattern", RETIRED, ids=list(RETIRED.values()))
def test_retired_claims_are_gone(pattern):
    for where, text in _texts():
        hit = re.search(pattern, text)
        assert not hit, f"{where} still says {hit.group(0)!r}: {RETIRED[pattern]}"
