#!/usr/bin/env python3
"""Lists pairs of Rust files in one crate that import each other (`crate::` and `super::`
paths resolved to files). Exit 1 when there is any: `make test` keeps the codemap's
promise that dependencies between files run one way."""
import re, sys
from pathlib import Path

def module_file(src: Path, parts):
    """The file that defines module path `parts` (longest prefix that exists)."""
    for n in range(len(parts), 0, -1):
        p = src.joinpath(*parts[:n])
        for cand in (p.with_suffix(".rs"), p / "mod.rs"):
            if cand.is_file():
                return cand
    return None

def module_path(src: Path, f: Path):
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts

def is_test(f: Path, text: str):
    return f.name in ("tests.rs", "testkit.rs") or f.name.endswith("_tests.rs")

def imports(src: Path, f: Path):
    text = f.read_text()
    # Code under #[cfg(test)] modules inside the file is not a dependency of the file.
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]
    # Comments (doc links included) are not imports.
    text = "\n".join(l.split("//")[0] for l in text.splitlines())
    here = module_path(src, f)
    out = set()
    for m in re.finditer(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)", text):
        parts = m.group(2).strip(":").split("::")
        if m.group(1) == "crate":
            target = module_file(src, parts)
        else:
            base = here[:-1] if f.name != "mod.rs" else here[:-1]
            if f.name != "mod.rs" and f.name not in ("lib.rs", "main.rs"):
                base = here[:-1]
            target = module_file(src, base + parts) or module_file(src, base)
        if target and target != f:
            out.add(target)
    return out

def main(roots):
    bad = []
    for root in roots:
        src = Path(root)
        files = [f for f in src.rglob("*.rs") if not is_test(f, "")]
        graph = {f: imports(src, f) for f in files}
        for a in files:
            for b in graph[a]:
                if a in graph.get(b, ()) and str(a) < str(b):
                    bad.append((a, b))
    for a, b in bad:
        print(f"{a} <-> {b}")
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
