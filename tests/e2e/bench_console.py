"""The IT console's figures (`make bench-console`): a release hub on PostgreSQL holding
1,000,000 audit records of 100 devices over 7 days (seeded with SQL, as a year of a
fleet's ingestion would leave them), measured through the hub's HTTP API as the console
calls it: audit search newest first (the first page, a filtered page, a page 50 pages
deep by cursor) and the impact preview of a draft over the 7 days. Medians and p95 of
repeated runs, side by side in one run; prints a Markdown table for BENCHMARKS.md.

Usage: COUNTERSIGN_TEST_POSTGRES=$(scripts/postgres.sh) fixtures/.venv/bin/python tests/e2e/bench_console.py [RECORDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("COUNTERSIGN_HUB_BIN", str(HERE.parents[1] / "target" / "release" / "countersign-hub"))

import httpx2 as httpx  # noqa: E402

from test_hub import Hub  # noqa: E402

SEED = """
INSERT INTO records (id, device_id, seq, time, kind, user_name, device, client, server, tool, arguments,
                     decision, rule, reason, class, received_at, approver)
SELECT 'r' || g, 'dev-' || (g % 100), g / 100,
       to_char(now() AT TIME ZONE 'UTC' - (g * interval '1 second' * 604800 / {n}), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       'call', 'person' || (g % 300) || '@example.com', 'laptop-' || (g % 100), 'cursor',
       (ARRAY['fs', 'git', 'memory', 'github'])[1 + g % 4],
       (ARRAY['read_text_file', 'write_file', 'edit_file', 'git_commit', 'create_entities', 'create_issue'])[1 + g % 6],
       '{{"path": "/home/u/work/site/file' || (g % 1000) || '.txt"}}',
       (ARRAY['allow', 'allow', 'allow', 'ask', 'deny'])[1 + g % 5], 'default:read', 'seeded',
       (ARRAY['read', 'write', 'write'])[1 + g % 3],
       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       CASE WHEN g % 5 = 3 THEN 'self' END
FROM generate_series(1, {n}) AS g;
ANALYZE records;
"""


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    admin = os.environ.get("COUNTERSIGN_TEST_POSTGRES")
    assert admin, "COUNTERSIGN_TEST_POSTGRES names a PostgreSQL role that may create databases"
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    hub = Hub(tmp, "postgres").start()
    try:
        url = hub.env["COUNTERSIGN_HUB_DATABASE"]
        started = time.perf_counter()
        subprocess.run(["psql", url, "-q", "-c", SEED.format(n=n)], check=True, capture_output=True)
        seeded = time.perf_counter() - started
        client = httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {hub.admin}"}, timeout=600)

        def page(**params):
            r = client.get("/v1/audit", params={"order": "newest", "limit": 100, **params})
            r.raise_for_status()
            return r

        cursor = None
        for _ in range(50):
            cursor = page(**({"before": cursor} if cursor else {})).headers["x-next-cursor"]
        rows = [
            ("first page, newest first", timed(lambda: page(), 30)),
            ("one person's calls", timed(lambda: page(user="person7@example.com"), 30)),
            ("one tool's calls", timed(lambda: page(tool="git_commit"), 30)),
            ("denied calls", timed(lambda: page(decision="deny"), 30)),
            ("50 pages deep (cursor)", timed(lambda: page(before=cursor), 30)),
        ]
        draft = '[policy]\ndeny = ["mcp__github__create_issue"]\n'
        preview = []
        for _ in range(3):
            start = time.perf_counter()
            r = client.post("/v1/policy/preview", params={"days": 7}, content=draft, headers={"Origin": hub.url})
            r.raise_for_status()
            preview.append((time.perf_counter() - start) * 1000)
            report = r.json()["impact"]
        print(f"{n} records of 100 devices over 7 days, seeded in {seeded:.0f} s; release hub, PostgreSQL 15, "
              f"this 2-core machine; 30 runs each (preview: 3)\n")
        print("| request | median ms | p95 ms |")
        print("|---|---:|---:|")
        for name, values in rows:
            print(f"| audit: {name} (100 records) | {statistics.median(values):.1f} | {p(values, 0.95):.1f} |")
        print(f"| impact preview, 7 days ({report['calls']} calls, {report['changed']} change) | "
              f"{statistics.median(preview):.0f} | {max(preview):.0f} (max) |")
    finally:
        hub.kill()
        name = hub.env["COUNTERSIGN_HUB_DATABASE"].rsplit("/", 1)[-1]
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name}"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
