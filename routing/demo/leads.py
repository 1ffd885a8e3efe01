"""Synthetic leads for the demo trickle and the benchmarks: plausible, varied, some deliberately broken."""

import random
import unicodedata
import uuid

FIRST = ["Ana", "Ben", "Chloé", "Dmitri", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi", "Lena"]
LAST = ["Ito", "Novak", "Okafor", "Silva", "Schmidt", "Haddad", "Kim", "Moreau", "Singh", "Larsen"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent"]
COUNTRIES = ["US", "GB", "DE", "FR", "NG", "IN", "JP", "BR", "CA", "SE"]
STAGES = ["lead", "mql", "mql", "sql", "customer"]
MESSAGES = ["Pricing for 200 seats?", "Need help, the export is broken", "Can I get a demo?", "Refund please", ""]


def synthetic_lead(rng: random.Random | None = None) -> dict:
    rng = rng or random.Random()
    first, last, company = rng.choice(FIRST), rng.choice(LAST), rng.choice(COMPANIES)
    lead = {
        "lead_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "first_name": first,
        "last_name": last,
        "company": f"{company} {rng.choice(['Inc', 'GmbH', 'Ltd', 'SA'])}",
        "company_size": rng.choice([5, 20, 49, 51, 120, 800, 6000]),
        "country": rng.choice(COUNTRIES),
        "lifecycle_stage": rng.choice(STAGES),
        "engagement_score": rng.randint(0, 100),
        "intent_score": round(rng.uniform(0, 100), 1),
        "attributes": {
            "form": rng.choice(["demo", "pricing", "support", "newsletter", "newsletter"]),
            "message": rng.choice(MESSAGES),
            "utm": {"source": rng.choice(["google", "linkedin", "direct"])},
        },
    }
    roll = rng.random()
    if roll > 0.12:  # some leads arrive with no email (and half of those with no phone either)
        local = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
        lead["email"] = f"{local}@{company}.example".lower()
    if roll < 0.5:
        lead["phone"] = f"+1 555 {rng.randint(1000000, 9999999)}"
    return lead
