"""Run every benchmark in turn and print its figures (record them in docs/benchmarks.md).

`--tiny` (or HANDOFF_BENCH_TINY=1) runs each at a size that takes seconds, figures meaningless: what CI does
(`make bench-tiny`) so that none of them can rot."""

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "engine.py",
    "http_intake.py",
    "end_to_end.py",
    "routing_drain.py",
    "routing_lanes.py",
    "routing_edges.py",
    "exception_console.py",
    "routing_sla.py",
    "replay.py",
    "dashboard.py",
    "account_matching.py",
    "idle_clients.py",
    "availability.py",
    "intake_schema.py",
)

if "--tiny" in sys.argv:
    os.environ["HANDOFF_BENCH_TINY"] = "1"  # every script reads it through bench/_setup.py
for script in SCRIPTS:
    print(f"\n== {script}", flush=True)
    began = time.monotonic()
    subprocess.run([sys.executable, str(HERE / script)], cwd=HERE, check=True)
    print(f"== {script}: {time.monotonic() - began:.0f} s", flush=True)
