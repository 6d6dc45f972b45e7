"""The README stays a short user's manual without measured numbers, and its links lead somewhere.

Every measured figure (scores, times, ratios) lives in `docs/`; the README links to it in plain
words, so that a new measurement changes `docs/` alone.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_LINES = 200
# a decimal number, a "mean ± std", or a ratio such as "27x"
MEASURED = re.compile(r"±|[0-9]\.[0-9]|[0-9]+x\b")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text):
    """(line number, line) of every line outside fenced code blocks (the fences included)."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield number, line


def github_anchor(heading):
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"<[^>]+>", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    for _, line in prose_lines(path.read_text()):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            anchor = github_anchor(match.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def broken_links(path):
    """Every relative link of a markdown file whose file or heading does not exist."""
    broken = []
    for number, line in prose_lines(path.read_text()):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}:{number}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.name}:{number}: {target} (no such heading in {linked.name})")
    return broken


def test_readme_is_at_most_200_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move details into docs/"


def test_readme_states_no_measured_number_outside_code_blocks():
    found = [f"{number}: {line}" for number, line in prose_lines(README.read_text()) if MEASURED.search(line)]
    assert found == [], "link measured figures into docs/ instead:\n" + "\n".join(found)


def test_readme_keeps_the_two_set_up_commands_first():
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(), re.S)
    assert blocks[0].startswith("python3 -m venv .venv") and "snakemake --cores 8 results/table2.csv" in blocks[0]
    assert blocks[1] == ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" '
                         "&& pytest -q -n 2 --dist worksteal --durations=20")


@pytest.mark.parametrize("path", [README] + sorted((REPO / "docs").glob("*.md")), ids=lambda p: p.name)
def test_relative_links_point_to_existing_files_and_headings(path):
    assert broken_links(path) == []


def test_the_link_checker_catches_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "page.md").write_text("# A page\n\n## Learning the mixture (`aggregation: learned`)\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](page.md#learning-the-mixture-aggregation-learned) [self](#top)\n\n# Top\n"
                   "[gone](missing.md) [bad](page.md#nowhere)\n```\n[in code](missing.md)\n```\n")
    assert broken_links(doc) == ["doc.md:4: missing.md (no such file)",
                                 "doc.md:4: page.md#nowhere (no such heading in page.md)"]
