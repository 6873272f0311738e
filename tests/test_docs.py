"""The documentation never drifts from what the code generates: copied tables match their source, links resolve,
and the README stays a front door."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def table_block(text: str, header: str = "| run |") -> str:
    """The first Markdown table of a text whose header starts with `header` (header to last row)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def test_readme_headline_table_is_the_generated_one():
    generated = table_block((ROOT / "evaluation" / "cast20-mini.md").read_text(encoding="utf-8"))
    assert generated in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("generated, page", [
    ("cast20-mini-rewrites.md", "search.md"),
    ("cast20-mini-training.md", "training.md"),
    ("cast20-mini-nested.md", "training.md"),
    ("cast21.md", "cast21.md"),
    ("cast20-mini-rerank.md", "reranking.md"),
])
def test_experiment_tables_quoted_in_the_docs_are_the_generated_ones(generated, page):
    table = table_block((ROOT / "evaluation" / generated).read_text(encoding="utf-8"), "| condition |")
    assert table in (ROOT / "docs" / page).read_text(encoding="utf-8")


def test_no_placeholders_or_notes_about_who_measured():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "evaluation").glob("*"))]:
        if page.suffix in (".md", ".yaml"):
            text = page.read_text(encoding="utf-8")
            assert "PLACEHOLDER" not in text and not re.search(r"this\s+session", text, re.IGNORECASE), page


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
