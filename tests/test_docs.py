"""The README and the docs pages: links that resolve, every page in the site's nav, results tables in one
place, `pix2pix` commands the CLI accepts. The pages' own links and anchors are checked by `mkdocs build
--strict` (.ci/run); the README is outside the site, so its links are checked here."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)\s]+)\)")
RESULTS_TABLE_HEADER = "| row | seed | flags |"  # the first columns of every table experiments/studies.py writes


def slugify(heading: str) -> str:
    """The anchor Python-Markdown's toc (MkDocs) and GitHub give a heading, for the headings used here."""
    text = re.sub(r"`|\*", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # no headings inside code blocks
    return {slugify(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def test_readme_links_resolve():
    broken = []
    for target in LINK.findall((ROOT / "README.md").read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.exists() or (anchor and anchor not in anchors(file)):
            broken.append(target)
    assert not broken, f"README.md links to missing files or anchors: {broken}"


def test_readme_stays_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 250, f"README.md has {lines} lines: move the detail to docs/"


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/-]+\.md)\s*$", nav, flags=re.MULTILINE))
    pages = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert pages == listed, f"pages not in mkdocs.yml: {pages - listed}; listed but missing: {listed - pages}"


def test_results_tables_are_written_in_one_place():
    assert RESULTS_TABLE_HEADER in (DOCS / "studies" / "objectives.md").read_text()
    copies = [
        str(page.relative_to(ROOT))
        for page in [ROOT / "README.md", *DOCS.glob("*.md")]  # every page outside docs/studies/
        if RESULTS_TABLE_HEADER in page.read_text()
    ]
    assert not copies, f"results tables copied by hand (link to the study's page instead): {copies}"


def shell_blocks(page: Path) -> list[str]:
    """The text of each ```bash (or bare ```) fenced block of `page`, line continuations joined."""
    blocks, lines, language = [], [], None  # language: None outside a fenced block
    for line in page.read_text().splitlines():
        fence = re.match(r"\s*```(\w*)", line)
        if fence and language is None:
            language, lines = fence.group(1), []
        elif fence:
            if language in ("", "bash", "sh"):
                blocks.append("\n".join(lines).replace("\\\n", " "))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def documented_commands() -> list[tuple[str, str]]:
    """(page, `pix2pix ...` command) for every command in the README's and the docs' shell blocks."""
    commands = []
    for page in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for block in shell_blocks(page):
            for line in block.splitlines():
                for part in re.split(r"&&|\|\||;|\|", line.split(" #")[0]):
                    # `pix2pix ...`, `.venv/bin/pix2pix ...`, `python -m pix2pix ...`, `torchrun ... -m pix2pix ...`
                    if command := re.match(
                        r"\s*(?:\S*/)?(?:pix2pix|\S*(?:python3?|torchrun)\b.*?-m pix2pix)\s+(.*\S)", part
                    ):
                        commands.append((page.name, command.group(1)))
    return commands


def test_every_documented_command_parses_with_the_real_parser(capsys):
    """A renamed or removed flag fails here, not in a reader's terminal."""
    import shlex

    from pix2pix.cli import build_parser

    commands = documented_commands()
    assert len(commands) >= 40  # the extraction itself works: the docs hold about fifty
    refused = []
    for page, command in commands:
        try:
            build_parser().parse_args(shlex.split(command))
        except SystemExit as stop:
            if stop.code:
                refused.append(f"{page}: pix2pix {command}: {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert not refused, "\n".join(refused)
