"""Run every benchmark in turn and print its figures (record them in docs/benchmarks.md)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPTS = (
    "engine.py",
    "http_intake.py",
    "end_to_end.py",
    "exceptions.py",
    "replay.py",
    "dashboard.py",
    "account_matching.py",
)
for script in SCRIPTS:
    print(f"\n== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], cwd=HERE, check=True)
