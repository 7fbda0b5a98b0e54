#!/usr/bin/env python3
"""Find file cycles inside Rust crates: source files of one crate that import each other.

    .ci/file-cycles.py crates/connectors crates/store ...   # exit 1 when any crate has a cycle

For each crate, the module tree is read from `src/lib.rs` (or `src/main.rs`) by following
`mod x;` declarations (`x.rs` or `x/mod.rs`; inline `mod x { … }` blocks belong to their file).
An edge A -> B means file A names an item of file B through a crate-local path:

  * a `use` of a `crate::…`, `super::…`, `self::…` path, or of a path starting at a module,
    or at a name imported into scope (`use super::models; … models::X`);
  * the same paths written in code (`crate::http::Call::new(…)`, `super::errors::classify`).

What is NOT an edge:

  * `mod x;`, and a parent using its own children's items: a parent declaring, dispatching to
    or re-exporting its children is fine (`lib.rs` calling `iterable::IterableConnector::new`).
    A child using its parent's items IS an edge, so a cycle needs two files neither of which
    contains the other;
  * `pub use` / `pub(crate) use` re-exports: a facade presenting other files' items does not
    depend on them, and a path through a re-export resolves to the file that defines the item
    (`crate::ConnectorError` -> `error.rs` when `lib.rs` says `pub use error::ConnectorError`);
  * `use super::*` inside an inline `mod tests { … }` (it names its own file);
  * comments, doc links, strings and `$crate` paths in macros.

Cycles are reported as strongly connected components of two or more files, with the lines
that make each edge, so the shared item to move is easy to find. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field

IDENT = r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*"


# ---------------------------------------------------------------------------------------------
# Lexing: blank out comments, strings and char literals (keeping offsets and newlines).


def strip_code(src: str) -> str:
    out = list(src)
    i, n = 0, len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (
            i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")
        ):
            end = '"' + m.group(1)
            j = src.find(end, m.end())
            j = n if j < 0 else j + len(end)
            blank(i, j)
            i = j
        elif c == '"' or (c == "b" and src.startswith('b"', i) and not _ident_before(src, i)):
            j = i + (2 if c == "b" else 1)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}', '\''), not a lifetime ('a, 'static).
            m = re.compile(r"'(?:\\(?:u\{[0-9A-Fa-f]+\}|x[0-9A-Fa-f]{2}|.)|[^\\'])'").match(src, i)
            if m:
                blank(i, m.end())
                i = m.end()
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def _ident_before(src: str, i: int) -> bool:
    return i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_")


# ---------------------------------------------------------------------------------------------
# Use trees: `crate::{a::B, c::{self, D as E}, f::*}` -> [(path, local name or None, is_glob)].


def parse_use_tree(text: str) -> list[tuple[list[str], str | None, bool]]:
    tokens = re.findall(r"::|[{},*]|" + IDENT, text)
    pos = 0
    out: list[tuple[list[str], str | None, bool]] = []

    def tree(prefix: list[str]) -> None:
        nonlocal pos
        path = list(prefix)
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "}":
                    tree(path)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1  # the closing brace
                return
            if t == "*":
                pos += 1
                out.append((path, None, True))
                return
            if t == "::":
                pos += 1
                continue
            if t in (",", "}"):
                break
            # An identifier segment.
            pos += 1
            seg = t[2:] if t.startswith("r#") else t
            if seg == "self" and prefix and path == prefix:
                # `a::{self, B}` names `a` itself.
                seg_path = path
                name = path[-1] if path else None
            else:
                seg_path = path + [seg]
                name = seg
            if pos < len(tokens) and tokens[pos] == "as":
                pos += 1
                alias = tokens[pos] if pos < len(tokens) else None
                pos += 1
                out.append((seg_path, None if alias == "_" else alias, False))
                return
            if pos < len(tokens) and tokens[pos] == "::":
                path = seg_path
                continue
            out.append((seg_path, name, False))
            return

    while pos < len(tokens):
        if tokens[pos] == ",":
            pos += 1
            continue
        before = pos
        tree([])
        if pos == before:
            pos += 1
    return out


# ---------------------------------------------------------------------------------------------
# Crate model.


@dataclass
class Module:
    path: tuple[str, ...]
    file: str
    dir: str  # where `mod x;` inside this module looks for x.rs / x/mod.rs
    children: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    # local name -> (absolute path or None when external, is pub re-export)
    imports: dict[str, list[str] | None] = field(default_factory=dict)
    globs: list[list[str]] = field(default_factory=list)
    raw_uses: list[tuple[list[str], str | None, bool, bool, int]] = field(default_factory=list)
    raw_paths: list[tuple[list[str], int]] = field(default_factory=list)


TOKEN = re.compile(
    r"(?P<pubin>\bpub\s*\(\s*in\s+[^)]*\))"
    r"|(?P<use>(?P<vis>\bpub\b(?:\s*\([^)]*\))?\s*)?\buse\s+(?P<tree>[^;]*);)"
    r"|(?P<moddecl>\bmod\s+(?P<declname>" + IDENT + r")\s*;)"
    r"|(?P<modopen>\bmod\s+(?P<openname>" + IDENT + r")\s*\{)"
    r"|(?P<item>\b(?:fn|struct|enum|trait|type|const|static|union)\s+(?P<itemname>" + IDENT + r"))"
    r"|(?P<macro>\bmacro_rules!\s*(?P<macroname>" + IDENT + r"))"
    r"|(?P<path>(?<![\w$:])" + IDENT + r"(?:\s*::\s*" + IDENT + r")+)"
    r"|(?P<open>\{)|(?P<close>\})"
)


class Crate:
    def __init__(self, root_dir: str):
        self.root_dir = root_dir
        self.modules: dict[tuple[str, ...], Module] = {}
        self.files: list[str] = []
        self.file_mod: dict[str, tuple[str, ...]] = {}
        src = os.path.join(root_dir, "src")
        root = next(
            (os.path.join(src, f) for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, f))),
            None,
        )
        if root is None:
            raise SystemExit(f"{root_dir}: no src/lib.rs or src/main.rs")
        self._load_file((), root, src)

    def rel(self, f: str) -> str:
        return os.path.relpath(f, os.path.join(self.root_dir, "src"))

    def _load_file(self, modpath: tuple[str, ...], path: str, dir_: str) -> None:
        self.files.append(path)
        with open(path, encoding="utf-8") as fh:
            code = strip_code(fh.read())
        stack: list[tuple[str, ...] | None] = []  # inline module path per open brace, or None

        def current() -> tuple[str, ...]:
            for entry in reversed(stack):
                if entry is not None:
                    return entry
            return modpath

        self.modules[modpath] = Module(modpath, path, dir_)
        self.file_mod[path] = modpath
        pending: list[tuple[tuple[str, ...], str]] = []
        for m in TOKEN.finditer(code):
            line = code.count("\n", 0, m.start()) + 1
            mod = self.modules[current()]
            if m.group("pubin"):
                continue
            if m.group("use"):
                vis = bool(m.group("vis"))
                for p, name, glob in parse_use_tree(m.group("tree")):
                    mod.raw_uses.append((p, name, glob, vis, line))
            elif m.group("moddecl"):
                name = _unraw(m.group("declname"))
                mod.children.add(name)
                pending.append((mod.path + (name,), mod.dir))
            elif m.group("modopen"):
                name = _unraw(m.group("openname"))
                mod.children.add(name)
                child = mod.path + (name,)
                self.modules[child] = Module(child, path, os.path.join(mod.dir, name))
                stack.append(child)
            elif m.group("item"):
                mod.items.add(_unraw(m.group("itemname")))
            elif m.group("macro"):
                mod.items.add(_unraw(m.group("macroname")))
            elif m.group("path"):
                segs = [_unraw(s.strip()) for s in m.group("path").split("::")]
                mod.raw_paths.append((segs, line))
            elif m.group("open"):
                stack.append(None)
            elif m.group("close"):
                if stack:
                    stack.pop()
        for child, parent_dir in pending:
            name = child[-1]
            flat = os.path.join(parent_dir, name + ".rs")
            nested = os.path.join(parent_dir, name, "mod.rs")
            if os.path.exists(flat):
                self._load_file(child, flat, os.path.join(parent_dir, name))
            elif os.path.exists(nested):
                self._load_file(child, nested, os.path.join(parent_dir, name))

    # -- name resolution ---------------------------------------------------------------------

    def absolutize(self, segs: list[str], at: tuple[str, ...]) -> list[str] | None:
        """A path as written in module `at` -> a path from the crate root, or None (external)."""
        if not segs:
            return None
        head = segs[0]
        if head == "crate":
            return segs[1:]
        if head in ("super", "self"):
            base = list(at)
            i = 0
            while i < len(segs) and segs[i] in ("super", "self"):
                if segs[i] == "super":
                    if not base:
                        return None
                    base.pop()
                i += 1
            return base + segs[i:]
        scope = self.modules.get(at)
        if scope is None:
            return None
        if head in scope.children:
            return list(at) + segs
        if head in scope.imports:
            target = scope.imports[head]
            return None if target is None else target + segs[1:]
        for g in scope.globs:
            gm = self.modules.get(tuple(g))
            if gm and (head in gm.children or head in gm.imports):
                return g + segs
        return None  # an external crate, a local type or variable

    def resolve(self, segs: list[str], seen: frozenset = frozenset()) -> str | None:
        """The file that defines the item an absolute path names."""
        mod = self.modules[()]
        rest = list(segs)
        while rest:
            name = rest[0]
            if name in mod.children and mod.path + (name,) in self.modules:
                mod = self.modules[mod.path + (name,)]
                rest = rest[1:]
                continue
            if name in mod.items:
                return mod.file
            key = (mod.path, name)
            if name in mod.imports and key not in seen:
                target = mod.imports[name]
                if target is None:
                    return mod.file  # re-export of an external item: stop here
                return self.resolve(target + rest[1:], seen | {key})
            for g in mod.globs:
                gk = (mod.path, "*", tuple(g))
                gm = self.modules.get(tuple(g))
                if gm and gk not in seen and (name in gm.children or name in gm.items or name in gm.imports):
                    return self.resolve(g + rest, seen | {gk})
            return mod.file
        return mod.file

    def is_descendant(self, target: str, source: str) -> bool:
        """Whether file `target` is a module below file `source` (a parent using its children)."""
        return len(self.file_mod[target]) > len(self.file_mod[source]) and (
            self.file_mod[target][: len(self.file_mod[source])] == self.file_mod[source]
        )

    def edges(self) -> dict[tuple[str, str], list[str]]:
        # First fill every module's imports, so that later lookups see all of them.
        for mod in self.modules.values():
            for p, name, glob, _vis, _line in mod.raw_uses:
                ab = self.absolutize(p, mod.path)
                if glob:
                    if ab is not None:
                        mod.globs.append(ab)
                elif name and name != "self":
                    mod.imports.setdefault(name, ab)
        found: dict[tuple[str, str], list[str]] = {}

        def add(mod: Module, segs: list[str], line: int, what: str) -> None:
            ab = self.absolutize(segs, mod.path)
            if ab is None:
                return
            target = self.resolve(ab)
            if target and target != mod.file and not self.is_descendant(target, mod.file):
                found.setdefault((mod.file, target), []).append(
                    f"{self.rel(mod.file)}:{line}: {what} {'::'.join(segs)}"
                )

        for mod in self.modules.values():
            for p, _name, glob, vis, line in mod.raw_uses:
                if vis:
                    continue  # a re-export, not a dependency of this file
                add(mod, p, line, "use" + ("::*" if glob else ""))
            for segs, line in mod.raw_paths:
                add(mod, segs, line, "path")
        return found


def _unraw(s: str) -> str:
    return s[2:] if s.startswith("r#") else s


# ---------------------------------------------------------------------------------------------
# Cycles.


def strongly_connected(nodes: list[str], succ: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def cycles_of(crate_dir: str) -> list[list[str]]:
    crate = Crate(crate_dir)
    succ: dict[str, set[str]] = {}
    for a, b in crate.edges():
        succ.setdefault(a, set()).add(b)
    return [[crate.rel(f) for f in comp] for comp in strongly_connected(crate.files, succ)]


# Each case: files of a crate's src/, and the cycles expected (sorted file lists).
SELF_TEST_CASES: list[tuple[str, dict[str, str], list[list[str]]]] = [
    (
        "siblings that use each other",
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use crate::b::B;\npub struct A;\n",
            "b.rs": "pub struct B;\nfn f() { let _ = crate::a::A; }\n",
        },
        [["a.rs", "b.rs"]],
    ),
    (
        "a chain through a use group, super:: and a module imported by name",
        {
            "lib.rs": "mod p;\n",
            "p/mod.rs": "mod a;\nmod b;\nmod c;\n",
            "p/a.rs": "use super::{b::{self, B as Bee}};\npub fn a() {}\n",
            "p/b.rs": "use super::c;\npub struct B;\nfn f() { c::c(); }\n",
            "p/c.rs": "pub fn c() { super::a::a(); }\n",
        },
        [["p/a.rs", "p/b.rs", "p/c.rs"]],
    ),
    (
        "a parent using its children, tests using super::*, re-exports",
        {
            "lib.rs": "mod a;\nmod b;\npub use a::A;\npub struct Root;\n"
            "fn f() { a::A::new(); b::g(); }\n",
            "a.rs": "use crate::Root;\npub struct A;\nimpl A { pub fn new() {} }\n"
            "#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
            # `crate::A` is a.rs's own item re-exported by lib.rs: b -> a, not b -> lib.
            "b.rs": "use crate::A;\npub fn g() {}\n// use crate::a; (a comment)\n"
            "const S: &str = \"crate::b::g\";\n",
        },
        [],
    ),
    (
        "a child using its parent, which uses a sibling that uses the child",
        {
            "lib.rs": "mod x;\nmod y;\n",
            "x/mod.rs": "mod k;\npub fn shared() {}\nfn f() { crate::y::y(); }\n",
            "x/k.rs": "use super::shared;\npub fn k() {}\n",
            "y.rs": "pub fn y() { crate::x::k::k(); }\n",
        },
        [["x/k.rs", "x/mod.rs", "y.rs"]],
    ),
    (
        "super:: inside an inline module names its own file",
        {
            "lib.rs": "mod p;\nmod q;\n",
            "p/mod.rs": "mod a;\npub fn helper() {}\nfn f() { let _ = crate::q::Q; }\n",
            "p/a.rs": "pub fn helper() {}\nmod tests {\n    use super::helper;\n}\n",
            "q.rs": "pub struct Q;\nfn f() { crate::p::a::helper(); }\n",
        },
        [],
    ),
    (
        "a re-export is not a dependency of the file that makes it",
        {
            "lib.rs": "mod c;\nmod d;\n",
            "c.rs": "pub use crate::d::D;\npub struct C;\n",
            "d.rs": "use crate::c::C;\npub struct D;\n",
        },
        [],
    ),
]


def self_test() -> int:
    import tempfile

    failed = 0
    for name, files, expected in SELF_TEST_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in files.items():
                path = os.path.join(tmp, "src", rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
            got = cycles_of(tmp)
        if sorted(got) != sorted(expected):
            failed += 1
            print(f"self-test FAILED: {name}: expected {expected}, got {got}")
    print(f"self-test: {len(SELF_TEST_CASES) - failed}/{len(SELF_TEST_CASES)} cases pass")
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("crates", nargs="*", help="crate directories (each with src/lib.rs or src/main.rs)")
    ap.add_argument("--edges", action="store_true", help="also print every edge of the file graph")
    ap.add_argument("--self-test", action="store_true", help="check the finder on small made-up crates")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.crates:
        ap.error("name at least one crate directory")
    total = 0
    for crate_dir in args.crates:
        crate = Crate(crate_dir)
        edges = crate.edges()
        succ: dict[str, set[str]] = {}
        for a, b in edges:
            succ.setdefault(a, set()).add(b)
        if args.edges:
            for (a, b), why in sorted(edges.items()):
                print(f"{crate_dir}: {crate.rel(a)} -> {crate.rel(b)}  ({why[0]})")
        cycles = strongly_connected(crate.files, succ)
        for comp in cycles:
            total += 1
            names = ", ".join(crate.rel(f) for f in comp)
            print(f"{crate_dir}: file cycle: {names}")
            members = set(comp)
            for (a, b), why in sorted(edges.items()):
                if a in members and b in members:
                    print(f"    {crate.rel(a)} -> {crate.rel(b)}")
                    for w in why[:3]:
                        print(f"        {w}")
                    if len(why) > 3:
                        print(f"        … and {len(why) - 3} more")
        if not cycles:
            print(f"{crate_dir}: no file cycles ({len(crate.files)} files)")
    if total:
        print(f"{total} file cycle(s): move the shared item into the lower file or its own module", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
