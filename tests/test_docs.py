"""The documentation never drifts from what the code generates: copied tables match their source, links resolve,
and the README stays a front door."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table_block(text: str) -> str:
    """The first Markdown table of a text (header to last row)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| run |"))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def test_readme_headline_table_is_the_generated_one():
    generated = table_block((ROOT / "evaluation" / "cast20-mini.md").read_text(encoding="utf-8"))
    assert generated in (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_a_front_door():
    assert (ROOT / "README.md").stat().st_size <= 15_000


def test_relative_links_resolve():
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []
