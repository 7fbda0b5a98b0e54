#!/usr/bin/env python3
"""Fail on a documentation link that leads nowhere.

Checks, from the repository root:

1. every relative link in the repository's markdown (README.md, docs/**/*.md and the crates'
   README.md files): `[text](path)`, `[text](path#anchor)`, `[text](#anchor)`, images and
   reference definitions (`[name]: path`). The file (or folder) must exist, and an `#anchor` must
   be a heading of the target markdown file (GitHub's anchor rules) or an explicit
   `<a id=…>`/`<a name=…>`. Links inside code spans and fenced code blocks are not links.
   External links (`https:`, `mailto:`, …) are not fetched.
2. every mention of a docs page in source, tests, templates and scripts, written as
   `docs/….md` or `docs/….md#anchor` (code comments and OpenAPI descriptions point readers
   there): the page, and the anchor when given, must exist.
3. every mention of a README section by name in those files (`README, "Section"`,
   `README ("Section")`, `README: "Section"`): the nearest README.md above the file must have
   that heading, so a section moved to docs/ cannot leave a dangling pointer behind.

Prints one line per broken link (`file:line: …`) and exits 1 when there is any.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); text may hold code spans and nested brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
# A docs page named in code or scripts: a docs/ path ending in .md, with an optional #anchor
SOURCE_MENTION = re.compile(r"(?<![\w/.-])(docs/[A-Za-z0-9_./-]+\.md)(#[A-Za-z0-9_-]+)?")
README_SECTION = re.compile(r'README(?:\.md)?(?:,|:)?\s*\(?\\?"([^"\\]+)\\?"')
SOURCE_SUFFIXES = {".rs", ".py", ".sh", ".html", ".js", ".css", ".toml", ".json", ".sql", ".yml", ""}
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def tracked_files() -> list[Path]:
    """Files git knows (tracked or new, not ignored), so target/ and data/ are never read."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if line and (ROOT / line).is_file()]


def strip_markup(text: str) -> str:
    """A heading's text as GitHub renders it: code spans, links and emphasis reduced to text."""
    text = CODE_SPAN.sub(lambda m: m.group(2), text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*\*|__|\*|_(?=\W)|(?<=\W)_)", "", text)
    return text


def slug(text: str) -> str:
    """GitHub's heading anchor: lower case; letters, digits, `_`, `-` and spaces kept; spaces to `-`."""
    out = []
    for ch in strip_markup(text).strip().lower():
        cat = unicodedata.category(ch)
        if ch in " -_" or cat[0] in "LNM":
            out.append("-" if ch == " " else ch)
    return "".join(out)


def markdown_lines(path: Path):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker
                continue
            if marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
                continue
        if fence is None:
            yield number, line


_anchor_cache: dict[Path, set[str]] = {}


def anchors(path: Path) -> set[str]:
    if path not in _anchor_cache:
        found: set[str] = set()
        seen: dict[str, int] = {}
        for _, line in markdown_lines(path):
            found.update(a for a in EXPLICIT_ANCHOR.findall(line))
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        _anchor_cache[path] = found
    return _anchor_cache[path]


def check_target(source: Path, target: str) -> str | None:
    """None when `target` (relative to `source`) resolves, else why not."""
    if SCHEME.match(target) or target.startswith("//"):
        return None
    path_part, _, anchor = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    if path_part:
        resolved = (ROOT / path_part.lstrip("/")) if path_part.startswith("/") else (source.parent / path_part)
        resolved = resolved.resolve()
        if not resolved.exists():
            return f"no such file: {path_part}"
    else:
        resolved = source
    if anchor:
        if resolved.is_dir() or resolved.suffix.lower() != ".md":
            return None
        if unquote(anchor).lower() not in anchors(resolved):
            rel = resolved.relative_to(ROOT)
            return f"no heading for #{anchor} in {rel}"
    return None


def check_markdown(path: Path) -> list[str]:
    problems = []
    for number, line in markdown_lines(path):
        ref = REF_DEF.match(line)
        targets = [ref.group(1)] if ref else []
        # Links in code spans are text, not links.
        plain = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        # ...but a code span may be a link's text: [`docs/x.md`](docs/x.md)
        for m in INLINE_LINK.finditer(line):
            start = m.start()
            if plain[start] == " " and line[start] not in " ":
                continue  # the bracket sits inside a code span
            targets.append(m.group(1))
        for target in targets:
            why = check_target(path, target)
            if why:
                problems.append(f"{path.relative_to(ROOT)}:{number}: [{target}]: {why}")
    return problems


def check_source_mentions(path: Path) -> list[str]:
    problems = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return problems
    for number, line in enumerate(text.splitlines(), 1):
        for m in SOURCE_MENTION.finditer(line):
            page, anchor = m.group(1), m.group(2) or ""
            why = check_target(ROOT / "README.md", page + anchor)
            if why:
                problems.append(f"{path.relative_to(ROOT)}:{number}: {page}{anchor}: {why}")
        for m in README_SECTION.finditer(line):
            readme = nearest_readme(path)
            if readme is None or slug(m.group(1)) not in anchors(readme):
                where = readme.relative_to(ROOT) if readme else "no README.md above it"
                problems.append(
                    f"{path.relative_to(ROOT)}:{number}: README section \"{m.group(1)}\": no such heading in {where}"
                )
    return problems


def nearest_readme(path: Path) -> Path | None:
    """The README a file means by "README": its crate's, else the top-level one (docs/README.md
    is an index, never what docs/openapi.json or a script means)."""
    for folder in path.parents:
        candidate = folder / "README.md"
        if folder == ROOT / "docs":
            continue
        if candidate.is_file():
            return candidate
        if folder == ROOT:
            break
    return None


def main() -> int:
    os.chdir(ROOT)
    files = tracked_files()
    markdown = [p for p in files if p.suffix.lower() == ".md"]
    this = Path(__file__).resolve()
    sources = [
        p for p in files if p.suffix.lower() in SOURCE_SUFFIXES and p.suffix.lower() != ".md" and p.resolve() != this
    ]
    problems: list[str] = []
    for path in markdown:
        problems += check_markdown(path)
    for path in sources:
        problems += check_source_mentions(path)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} broken documentation link(s)", file=sys.stderr)
        return 1
    print(f"documentation links: {len(markdown)} markdown files and {len(sources)} other files checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
