"""Shared set-up for the benchmarks: Django on the bench database, and a few statistics helpers."""

import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A tiny run (`--tiny` on any script, or HANDOFF_BENCH_TINY=1, which run_all.py passes on): every benchmark
# at a size that takes seconds, so CI can run them all and none can rot. Its figures mean nothing.
if "--tiny" in sys.argv:
    sys.argv.remove("--tiny")
    os.environ["HANDOFF_BENCH_TINY"] = "1"
TINY = os.environ.get("HANDOFF_BENCH_TINY", "") not in ("", "0")


def sized(full, tiny):
    """A default: `full` for a real run, `tiny` for a tiny one."""
    return tiny if TINY else full


def _bench_database(url: str) -> str:
    """The bench database's URL: the script's own name (never a test database: pytest-django's are
    test_<name>), plus HANDOFF_BENCH_DB_SUFFIX (e.g. your name, on a machine shared with others running
    benchmarks) and _tiny for tiny runs, so a CI smoke run never drops a real run's database."""
    base, name = url.rsplit("/", 1)
    return f"{base}/{name}{os.environ.get('HANDOFF_BENCH_DB_SUFFIX', '')}{'_tiny' if TINY else ''}"


BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
    # Production settings need a key for the encrypted secrets, and the benches' fake targets live on loopback.
    "HANDOFF_SECRETS_KEY": "YmVuY2gtb25seS1zZWNyZXRzLWtleS0wMTIzNDU2Nzg=",
    "HANDOFF_OUTBOUND_ALLOW": "127.0.0.0/8",
    "DATABASE_URL": _bench_database(
        os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff_bench")
    ),
    # Benchmarks flush this Redis database: on a shared machine, give each person their own.
    "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"),
    "CELERY_TASK_DEFAULT_QUEUE": os.environ.get("BENCH_TASK_QUEUE", "handoff-bench"),
    "LOG_LEVEL": "WARNING",
}


def setup_django():
    os.environ.update(BENCH_ENV)
    import django

    django.setup()


def recreate_database() -> None:
    """Drop and create the bench database named by BENCH_ENV, migrate it, and set Django up on it."""
    db = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", db], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
    env = {**os.environ, **BENCH_ENV}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    setup_django()


def tiny_note() -> str:
    return "TINY RUN (a smoke run: the figures below mean nothing)" if TINY else ""


PG = ["-h", "127.0.0.1", "-U", "postgres"]


def demo_template(template: str, *statements: str) -> str:
    """Migrate the bench database, seed the demo's owners, queues with members, production rules and source
    (seed_demo), run `statements`, and keep it all as the database `template`; returns the source's token."""
    import io

    recreate_database()
    from django.core.management import call_command
    from django.db import connection, connections

    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    connections.close_all()
    database = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
    subprocess.run(["dropdb", *PG, "--if-exists", template], check=True)
    subprocess.run(["createdb", *PG, "-T", database, template], check=True)
    return token


def database_from_template(template: str) -> None:
    """The bench database again as `template` holds it (a fresh start for each run)."""
    from django.db import connections

    connections.close_all()
    database = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
    subprocess.run(["dropdb", *PG, "--force", "--if-exists", database], check=True)
    subprocess.run(["createdb", *PG, "-T", template, database], check=True)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    described = (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    )
    return f"{described}; {tiny_note()}" if TINY else described


def percentile(values, pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, cwd=ROOT, **kwargs)


def time_requests(client, url: str, requests: int, warmup: int = 2) -> tuple[list[float], int, dict, int]:
    """Wall times of `requests` GETs after a warm-up; then one more under query capture: (times, query count,
    the slowest query {"sql", "time"}, response bytes)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
    times = []
    for _ in range(requests):
        began = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - began)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    slowest = max(captured.captured_queries, key=lambda q: float(q["time"]), default={"sql": "", "time": "0"})
    return times, len(captured.captured_queries), slowest, len(response.content)


STAGES = ["lead", "mql", "sql"]
COUNTRIES = ["US", "GB", "DE", "FR", "NG", "IN", "JP", "BR", "CA", "SE"]


def synthetic_condition(i: int, rng: random.Random) -> dict:
    """A realistic rule condition: one to three leaves mixing equality, ranges, sets, strings and attributes,
    then a country leaf last, so "no match" leads pass many leaves before they fail."""
    leaves = [
        {"field": "lifecycle_stage", "op": "eq", "value": STAGES[i % 3]},
        {"field": "engagement_score", "op": "gt", "value": rng.randint(10, 60)},
        {"field": "attributes.utm.source", "op": "in", "value": rng.sample(["google", "linkedin", "direct"], 2)},
        {"field": "company_size", "op": "gte", "value": rng.choice([5, 20, 50])},
        {"field": "email", "op": "endswith", "value": ".example"},
    ]
    country = {"field": "country", "op": "in", "value": rng.sample(COUNTRIES, 5)}
    return {"all": [*rng.sample(leaves, rng.randint(1, 3)), country]}


def contention() -> str:
    """Load average and CPU pressure: the machine is shared, so say how busy it was."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        some = open("/proc/pressure/cpu").readline().split()
        pressure = "; CPU pressure " + ", ".join(f"{field.split('=')[0]} {field.split('=')[1]}%" for field in some[1:4])
    except OSError:
        pressure = ""
    return f"load average {load}{pressure}"


def use_plain_static_storage() -> None:
    """As in config/settings_test.py: the manifest storage needs `collectstatic`, which a bench should not run
    into the shared staticfiles/ folder; plain storage renders the same tags."""
    from django.test.utils import override_settings

    override_settings(
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
    ).enable()
