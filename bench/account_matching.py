"""Account matching: precision and recall on the labelled set, and what matching costs per lead at 100,000 accounts.

The 58 accounts of bench/data/account_matching.json plus N synthetic ones (default 100,000: two-word names
with a legal form, one or two domains, some with a subdomain entry, a phone and a country; names drawn from a
vocabulary the labelled set does not use, and 1% of them sharing a name with another account) are imported
through `accounts_import`, as `manage.py import_accounts` would (its time is printed too). Then:

- precision and recall over the 287 labelled leads, matched against all of them (so the 100,000 others may
  steal or tie a match);
- the time to match one lead as routing does (`account_match_for`: the candidate query on PostgreSQL, then
  the pure matcher), over the labelled leads repeated to --calls calls, with median, P95 and mean;
- the same, plus recording the match as `lead_route` does (`lead_match_account`: one upsert of the lead's
  match row) inside one open transaction, as in routing (the commit is routing's, not timed), over 287
  stored leads;
- the pure matcher alone over the same candidates (no database);
- the floor, alternating with the matching call by call: one indexed primary-key lookup of an account on a
  raw cursor (`SELECT id, name … WHERE id = %s`), the cheapest database round trip a lookup can cost here.
  Ratio = matching / floor.

Goal: matching adds < 1 ms per lead at 100,000 accounts.

Everything runs in a database of its own (handoff_bench_accounts), recreated on each run.

    python bench/account_matching.py [--accounts 100000] [--calls 3000]    (HANDOFF_BENCH_TINY=1: 1,000 and 100)
"""

import os

TINY = os.environ.get("HANDOFF_BENCH_TINY", "") not in ("", "0")  # a smoke run: seconds, figures meaningless
# A database of its own (a tiny run's apart, so a smoke run never drops a real run's).
os.environ.setdefault(
    "BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/handoff_bench_accounts{'_tiny' if TINY else ''}"
)

import argparse  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

from _setup import ROOT, contention, machine, median, percentile, recreate_database  # noqa: E402

LABELLED = ROOT / "bench" / "data" / "account_matching.json"
WORDS_A = (
    "amber arctic aurora basalt beacon birch bolt cedar cinder cobalt coral crest delta ember falcon fern fjord "
    "flint garnet glacier granite harbor hazel helix indigo iris ivory jade juniper kestrel lagoon lark lumen "
    "magnet maple marble meadow mesa mica nimbus nova oak onyx orbit osprey pebble pine prism quartz quill raven "
    "reef ridge river robin saffron sage sierra slate sparrow spruce stone summit tango terra thistle timber "
    "topaz tundra umber valley vector velvet violet willow zephyr zinc"
).split()
WORDS_B = (
    "analytics systems labs works foods motors media health energy logistics capital partners ventures "
    "robotics textiles outfitters studios consulting networks pharma biotech minerals foods farms airlines "
    "shipping insurance payments security software devices optics metals plastics dynamics solutions"
).split()
SUFFIXES = ["Inc.", "LLC", "Ltd", "GmbH", "S.A.", "plc", "K.K.", "Corp.", "Co.", "AG", "B.V.", "Pty Ltd", ""]
TLDS = ["com", "co.uk", "de", "fr", "com.br", "co.jp", "io", "net", "com.au", "ca", "nl", "se"]
COUNTRIES = ["US", "GB", "DE", "FR", "BR", "JP", "AU", "CA", "NL", "SE", "IN", "ES"]


def synthetic_csv(n: int, rng: random.Random) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["account_id", "name", "domains", "phone", "country", "owner", "territory", "tier"])
    for i in range(n):
        a, b = rng.choice(WORDS_A), rng.choice(WORDS_B)
        base = f"{a}{b}{i}"  # unique registrable names: a CRM's accounts rarely share a domain
        name = f"{a.title()} {b.title()} {i}" if rng.random() > 0.01 else f"{a.title()} {b.title()}"
        suffix = rng.choice(SUFFIXES)
        domains = [f"{base}.{rng.choice(TLDS)}"]
        if rng.random() < 0.2:
            domains.append(f"{base}-{rng.choice(['group', 'intl', 'global'])}.com")
        if rng.random() < 0.05:
            domains.append(f"eu.{domains[0]}")
        phone = f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(1000000, 9999999)}"
        writer.writerow(
            [f"S{i:06d}", f"{name} {suffix}".strip(), ";".join(domains), phone, rng.choice(COUNTRIES), "", "", "x"]
        )
    return out.getvalue().encode()


def labelled_csv(accounts: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["account_id", "name", "domains", "phone", "country", "owner"])
    for a in accounts:
        writer.writerow([a["account_id"], a["name"], ";".join(a["domains"]), a["phone"], a["country"], ""])
    return out.getvalue().encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, default=1_000 if TINY else 100_000)
    parser.add_argument("--calls", type=int, default=100 if TINY else 3000)
    args = parser.parse_args()
    # Celery puts the working directory on sys.path when Django starts: from bench/, bench/exceptions.py would
    # shadow the exceptions app.
    os.chdir(ROOT)
    print(f"# Account matching, {args.accounts:,} synthetic accounts + the labelled set; {machine()}")
    recreate_database()

    from django.db import connection, transaction
    from django.utils import timezone

    from routing.accounts.leads import lead_match_account, leads_match_accounts
    from routing.accounts.matching import lead_signals, match_account
    from routing.accounts.models import Account
    from routing.accounts.selectors import account_match_for, match_candidates
    from routing.accounts.services import accounts_import
    from routing.models import Lead, Source

    data = json.loads(LABELLED.read_text())
    rng = random.Random(13)
    began = time.perf_counter()
    summary = accounts_import(raw=synthetic_csv(args.accounts, rng))
    imported = time.perf_counter() - began
    accounts_import(raw=labelled_csv(data["accounts"]))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    total = Account.objects.count()
    each = imported / summary.created * 1e3
    print(f"import_accounts of {summary.created:,} accounts: {imported:.1f} s ({each:.2f} ms each)")

    right = wrong = missed = 0
    for case in data["leads"]:
        lead = case["lead"]
        result = account_match_for(
            email=lead.get("email"), company=lead.get("company"), phone=lead.get("phone"), country=lead.get("country")
        )
        got = result.account.account_id if result.account else None
        if got is not None:
            right += got == case["expect"]
            wrong += got != case["expect"]
            if got != case["expect"]:
                print(f"  false match: {case['kind']} {lead} → {got}")
        if case["expect"] is not None and got != case["expect"]:
            missed += 1
    labelled = sum(1 for case in data["leads"] if case["expect"])
    precision, recall = right / (right + wrong), right / (right + missed)
    print(
        f"labelled set: {len(data['leads'])} leads ({labelled} with an account) over {len(data['accounts'])} accounts, "
        f"matched among {total:,}: precision {precision:.2%} ({right} right, {wrong} wrong), "
        f"recall {recall:.2%} ({missed} missed)"
    )

    leads = [case["lead"] for case in data["leads"]]
    pks = list(Account.objects.order_by("?").values_list("pk", flat=True)[: len(leads)])
    source = Source(name="bench")
    source.set_new_token()
    source.save()
    now = timezone.now()
    rows = Lead.objects.bulk_create(
        Lead(origin=source, occurred_at=now, received_at=now, **{k: v for k, v in lead.items()}) for lead in leads
    )
    floor_sql = f"SELECT id, name FROM {Account._meta.db_table} WHERE id = %s"
    for lead in leads[:50]:  # warm-up
        account_match_for(email=lead.get("email"), company=lead.get("company"), phone=lead.get("phone"))
    matching, recorded, floor, pure = [], [], [], []
    # One transaction around the loop, as lead_route's: the upsert is timed without a commit of its own.
    with transaction.atomic(), connection.cursor() as cursor:
        for i in range(args.calls):
            lead = leads[i % len(leads)]
            began = time.perf_counter()
            cursor.execute(floor_sql, [pks[i % len(pks)]])
            cursor.fetchall()
            floor.append(time.perf_counter() - began)
            began = time.perf_counter()
            account_match_for(
                email=lead.get("email"),
                company=lead.get("company"),
                phone=lead.get("phone"),
                country=lead.get("country"),
            )
            matching.append(time.perf_counter() - began)
            began = time.perf_counter()
            lead_match_account(lead=rows[i % len(rows)], at=now)
            recorded.append(time.perf_counter() - began)
    # As routing does it: a task's batch of leads matched in two queries in all and recorded in one statement.
    batched = []
    batch = 250
    for _ in range(max(1, args.calls // batch)):
        chosen = [rows[rng.randrange(len(rows))] for _ in range(batch)]
        chosen = list({lead.pk: lead for lead in chosen}.values())
        with transaction.atomic():
            began = time.perf_counter()
            leads_match_accounts(leads=chosen, at=now)
            batched.append((time.perf_counter() - began) / len(chosen))
    for lead in leads:
        signals = lead_signals(
            email=lead.get("email"), company=lead.get("company"), phone=lead.get("phone"), country=lead.get("country")
        )
        candidates = match_candidates(signals)
        began = time.perf_counter()
        for _ in range(20):
            match_account(signals, candidates)
        pure.append((time.perf_counter() - began) / 20)

    def row(label, values):
        ms = [v * 1e3 for v in values]
        return f"| {label} | {median(ms):.3f} | {percentile(ms, 95):.3f} | {sum(ms) / len(ms):.3f} |"

    print(f"\n{args.calls:,} calls, alternating with the floor; {contention()}\n")
    print("| per lead (ms) | median | P95 | mean |\n|---|---:|---:|---:|")
    print(row("match (candidate query + matcher)", matching))
    print(row("match and record it, as lead_route does (+ upsert of the match row)", recorded))
    print(row(f"match and record, a routing batch of up to {batch} leads (per lead)", batched))
    print(row("floor: one primary-key lookup (raw cursor)", floor))
    print(row("matcher alone (no database)", pure))
    print(f"\nratio match / floor (medians): {median(matching) / median(floor):.1f}×")


if __name__ == "__main__":
    main()
