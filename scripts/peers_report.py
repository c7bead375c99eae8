"""Turns `countersign-peers`' JSON into the table and plot in BENCHMARKS.md: the table
between the `<!-- peers:begin -->` and `<!-- peers:end -->` markers, the plot as
docs/bench/peers.png (p50 and p99 per system, per workload, one panel per upstream)."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
results = json.loads(Path(sys.argv[1]).read_text())
rows = results["rows"]
systems = list(dict.fromkeys(r["system"] for r in rows))
upstreams = list(dict.fromkeys(r["upstream"] for r in rows))
workloads = list(dict.fromkeys(r["workload"] for r in rows))

lines = [
    f"{results['calls']} calls per run, {results['concurrency']} concurrent clients, {results['lists']} `tools/list`;"
    f" {results['audit_records']} audit records committed for Countersign's calls.",
    "",
    "| upstream | workload | system | p50 µs | p99 µs | per s | added p50 µs | p50 ÷ Countersign HTTP | RSS MiB |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|",
]
for u in upstreams:
    for w in workloads:
        for r in (r for r in rows if r["upstream"] == u and r["workload"] == w):
            added = "-" if r["added_p50_us"] is None or r["system"].startswith("direct") else f"{r['added_p50_us']:.0f}"
            ratio = r["p50_vs_countersign_http"]
            rss = "-" if r["rss_mib"] is None else f"{r['rss_mib']:.1f}"
            lines.append(f"| {u} | {w} | {r['system']} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['per_s']:.0f} |"
                         f" {added} | {'-' if ratio is None else f'{ratio:.2f}'} | {rss} |")
table = "\n".join(lines)

fig, axes = plt.subplots(len(upstreams), len(workloads), figsize=(4.2 * len(workloads), 3.4 * len(upstreams)),
                         squeeze=False)
colors = ["#777777", "#1c3c6e", "#4f7cc0", "#c44828", "#e0a030"]
for i, u in enumerate(upstreams):
    for j, w in enumerate(workloads):
        ax = axes[i][j]
        found = {r["system"]: r for r in rows if r["upstream"] == u and r["workload"] == w}
        names = [s for s in systems if s in found]
        p50 = [found[s]["p50_us"] / 1000 for s in names]
        p99 = [found[s]["p99_us"] / 1000 for s in names]
        x = range(len(names))
        ax.bar([k - 0.2 for k in x], p50, 0.4, label="p50", color=[colors[systems.index(s) % 5] for s in names])
        ax.bar([k + 0.2 for k in x], p99, 0.4, label="p99", color=[colors[systems.index(s) % 5] for s in names],
               alpha=0.45)
        ax.set_xticks(list(x), [n.replace(" ", "\n", 1) for n in names], fontsize=7)
        ax.set_ylabel("ms")
        ax.set_title(f"{u}: {w}", fontsize=9)
fig.suptitle("Latency per call (solid p50, light p99), same machine, one run", fontsize=10)
fig.tight_layout()
out = ROOT / "docs" / "bench" / "peers.png"
out.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(out, dpi=110)

bench = ROOT / "BENCHMARKS.md"
text = bench.read_text()
begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
block = f"{begin}\n{table}\n\n![peers](docs/bench/peers.png)\n{end}"
if begin in text:
    text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text += f"\n## Countersign beside other MCP proxies (`make bench-peers`)\n\n{block}\n"
bench.write_text(text)
print(table)
