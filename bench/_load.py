"""Open-loop load for the end-to-end benchmark, run in its own process: leads posted over HTTP, or bench
tasks published to Celery, at a fixed arrival rate.

Open loop: item i is due at start + i / rate whatever happened to the items before it, so a slow response
never delays the next send (several threads each take the next due item). Each item's clock starts at its
due time, not when it was actually sent, so a late send counts against the latency rather than hiding it.
"""

import datetime as dt
import http.client
import itertools
import json
import random
import threading
import time

START_DELAY = 0.5  # seconds between "ready" and the first due item, so every sender thread is waiting


def synthetic_leads(seed: int, count: int) -> list[dict]:
    from routing.demo.leads import synthetic_lead

    rng = random.Random(seed)
    return [synthetic_lead(rng) for _ in range(count)]


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def post_leads(port: int, token: str, rate: float, seconds: float, threads: int, seed: int, out) -> None:
    """POST one lead per request to /api/v1/leads/ at `rate` per second for `seconds`; each lead's
    `occurred_at` (its conversion time) is its due time. Puts a result dict on `out`."""
    total = round(rate * seconds)
    leads = synthetic_leads(seed, total)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    counter = itertools.count()
    records: list[tuple[int, float, float, int, int | None]] = []  # (i, send lag, response time, status, id)
    start_wall = time.time() + START_DELAY
    start_mono = time.monotonic() + START_DELAY

    def sender():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while (i := next(counter)) < total:
            due = start_mono + i / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            body = json.dumps({**leads[i], "occurred_at": iso(start_wall + i / rate)})
            sent = time.monotonic()
            try:
                conn.request("POST", "/api/v1/leads/", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                status = response.status
                lead_pk = json.loads(answer).get("id") if status == 202 else None
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, lead_pk = 0, None
            records.append((i, sent - due, time.monotonic() - sent, status, lead_pk))
        conn.close()

    workers = [threading.Thread(target=sender) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put({"start": start_wall, "total": total, "records": records})


def publish_stamps(rate: float, seconds: float, task_name: str, queue: str, out) -> None:
    """Publish `task_name(due time)` to `queue` at `rate` per second for `seconds`, from one thread (a publish
    takes well under a millisecond). Needs Django settings in the environment, for the Celery app's."""
    import django

    django.setup()
    from config.celery import app

    total = round(rate * seconds)
    lags = []
    with app.producer_or_acquire() as producer:
        start_wall = time.time() + START_DELAY
        start_mono = time.monotonic() + START_DELAY
        for i in range(total):
            due = start_mono + i / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            lags.append(time.monotonic() - due)
            app.send_task(task_name, args=(start_wall + i / rate,), queue=queue, producer=producer)
    out.put({"start": start_wall, "total": total, "lags": lags})


def post_batches(port: int, token: str, leads: list[dict], batch_size: int = 500) -> list[int]:
    """POST leads to /api/v1/leads/batch/ in batches, one after another; returns the ids of those accepted."""
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    ids = []
    try:
        for start in range(0, len(leads), batch_size):
            body = json.dumps(leads[start : start + batch_size])
            conn.request("POST", "/api/v1/leads/batch/", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"batch intake answered {response.status}: {answer[:200]!r}")
            ids += [r["id"] for r in json.loads(answer)["results"] if r["status"] == "accepted"]
    finally:
        conn.close()
    return ids
