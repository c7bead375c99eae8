#!/usr/bin/env python3
"""Checks that ARCHITECTURE.md tells the truth about the code: every source file of every
crate is in the file map (module roots `lib.rs` and `mod.rs` aside; tests and test kits
aside), the crate graph lists exactly each crate's dependencies on our own crates, and no
two files import each other (scripts/file_cycles.py). Exit 1 with what is wrong."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = sorted([p.parent for p in ROOT.glob("crates/*/Cargo.toml")] + [ROOT / "src-tauri"])


def package(crate: Path):
    text = (crate / "Cargo.toml").read_text()
    name = re.search(r'^name\s*=\s*"([^"]+)"', text, re.M).group(1)
    deps_section = re.search(r"^\[dependencies\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    deps = set(re.findall(r"^(countersign-[a-z-]+)\s*=", deps_section.group(1), re.M)) if deps_section else set()
    return name, deps


def is_test(path: Path) -> bool:
    return path.name in ("tests.rs", "testkit.rs") or path.name.endswith("_tests.rs") or "tests" in path.parts[:-1]


def main() -> int:
    doc = (ROOT / "ARCHITECTURE.md").read_text()
    problems = []
    graph_block = re.search(r"```crate-graph\n(.*?)```", doc, re.S)
    if not graph_block:
        problems.append("ARCHITECTURE.md has no ```crate-graph block")
        documented = {}
    else:
        documented = {}
        for line in graph_block.group(1).splitlines():
            if "->" in line:
                left, right = line.split("->", 1)
                documented[left.strip()] = {d.strip() for d in right.split(",") if d.strip()}
    file_map = doc[doc.index("## File map"):] if "## File map" in doc else ""
    lines = file_map.splitlines()
    for crate in CRATES:
        name, deps = package(crate)
        if name in documented and documented[name] != deps:
            problems.append(f"crate graph: {name} -> {sorted(documented[name])}, Cargo.toml says {sorted(deps)}")
        elif name not in documented:
            problems.append(f"crate graph: {name} is missing")
        rel = crate.relative_to(ROOT).as_posix()
        start = next((i for i, l in enumerate(lines) if l.startswith(rel + " ") or l.startswith(rel + "/")), None)
        if start is None:
            problems.append(f"file map: no section for {rel}")
            continue
        end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()), len(lines))
        section = "\n".join(lines[start:end])
        for f in sorted((crate / "src").rglob("*.rs")):
            if f.name in ("lib.rs", "mod.rs") or is_test(f.relative_to(crate / "src")):
                continue
            r = f.relative_to(crate / "src")
            if not re.search(rf"(?<![\w.]){re.escape(f.name)}\b", section):
                problems.append(f"file map: {rel}/src/{r} is not in {rel}'s section")
            for part in r.parts[:-1]:
                if f"{part}/" not in section:
                    problems.append(f"file map: folder {part}/ of {rel} is not in its section")
    cycles = subprocess.run([sys.executable, str(ROOT / "scripts" / "file_cycles.py"),
                             *[str(c / "src") for c in CRATES]], capture_output=True, text=True)
    problems += [f"files that import each other: {l}" for l in cycles.stdout.splitlines()]
    for p in sorted(set(problems)):
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
