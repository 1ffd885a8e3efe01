"""Builds bench/data/account_matching.json: the labelled set for account matching (tests/accounts and
bench/account_matching.py read the JSON; run this only to change the set).

Each account has leads written the ways real form fills arrive: the corporate address (upper case, a
subdomain, a multi-part suffix), a free-mail address with the company name in another spelling (legal form,
case, accents, "The", a typo) and the country, the phone alone. Then the traps, labelled "no account":
lookalike domains (`acme.com.evil.io`, `notacme.com`, `acme.co`), lookalike names ("Acme Dental", "Acme
Plumbing"), generic names ("Inc.", "N/A"), free mail without a company, companies that are not accounts, and
real ties (two accounts of one name, no country). `expect` is the account the lead belongs to, or null when
nothing in the lead can tell (a tie) or it belongs to none.

    python bench/data/build_account_matching.py
"""

import json
from pathlib import Path

# account_id, name, domains, phone, country
ACCOUNTS = [
    ("A001", "Acme Corporation", ["acme.com"], "+1 415 555 0100", "US"),
    ("A002", "Globex GmbH", ["globex.de"], "+49 30 1234 5670", "DE"),
    ("A003", "Initech Ltd", ["initech.co.uk"], "+44 20 7946 0001", "GB"),
    ("A004", "Société Générale S.A.", ["societegenerale.fr", "socgen.com"], "+33 1 42 14 20 00", "FR"),
    ("A005", "Müller Maschinenbau GmbH", ["mueller-maschinenbau.de"], "+49 89 5555 0101", "DE"),
    ("A006", "Hoshino Kogyo K.K.", ["hoshino.co.jp"], "+81 3 5555 0102", "JP"),
    ("A007", "Banco Horizonte S.A.", ["bancohorizonte.com.br"], "+55 11 5555 0103", "BR"),
    ("A008", "Kangaroo Logistics Pty Ltd", ["kangaroologistics.com.au"], "+61 2 5555 0104", "AU"),
    ("A009", "Northwind Traders", ["northwind.com"], "+1 206 555 0105", "US"),
    ("A010", "Contoso Ltd", ["contoso.com", "contoso.co.uk"], "+44 161 555 0106", "GB"),
    ("A011", "Fabrikam, Inc.", ["fabrikam.com"], "+1 312 555 0107", "US"),
    ("A012", "Tailspin Toys", ["tailspintoys.com"], "+1 503 555 0108", "US"),
    ("A013", "Wingtip Toys LLC", ["wingtiptoys.com"], "+1 617 555 0109", "US"),
    ("A014", "Litware Inc.", ["litware.com"], "+1 425 555 0110", "US"),
    ("A015", "Adventure Works Cycles", ["adventure-works.com"], "+1 858 555 0111", "US"),
    ("A016", "Blue Yonder Airlines", ["blueyonderairlines.com"], "+1 972 555 0112", "US"),
    ("A017", "Coho Winery", ["cohowinery.com"], "+1 707 555 0113", "US"),
    ("A018", "Fourth Coffee", ["fourthcoffee.com"], "+1 206 555 0114", "US"),
    ("A019", "Graphic Design Institute", ["graphicdesigninstitute.com"], "+1 212 555 0115", "US"),
    ("A020", "Humongous Insurance", ["humongousinsurance.com"], "+1 860 555 0116", "US"),
    ("A021", "Lucerne Publishing", ["lucernepublishing.com"], "+41 41 555 0117", "CH"),
    ("A022", "Margie's Travel", ["margiestravel.com"], "+1 305 555 0118", "US"),
    ("A023", "Proseware, Inc.", ["proseware.com"], "+1 408 555 0119", "US"),
    ("A024", "Southridge Video", ["southridgevideo.com"], "+1 323 555 0120", "US"),
    ("A025", "Trey Research", ["treyresearch.net"], "+1 919 555 0121", "US"),
    ("A026", "Wide World Importers", ["wideworldimporters.com"], "+1 704 555 0122", "US"),
    ("A027", "Woodgrove Bank", ["woodgrovebank.com"], "+1 646 555 0123", "US"),
    ("A028", "Alpine Ski House", ["alpineskihouse.com"], "+43 512 555 0124", "AT"),
    ("A029", "City Power & Light", ["cpandl.com"], "+1 214 555 0125", "US"),
    ("A030", "The Phone Company", ["thephone-company.com"], "+1 202 555 0126", "US"),
    ("A031", "Nordlicht AB", ["nordlicht.se"], "+46 8 555 0127", "SE"),
    ("A032", "Ørsted Vind A/S", ["orstedvind.dk"], "+45 33 55 01 28", "DK"),
    ("A033", "Café Olé SARL", ["cafeole.fr"], "+33 4 91 55 01 29", "FR"),
    ("A034", "Zürich Rückversicherung AG", ["zurichre.ch"], "+41 44 555 0130", "CH"),
    ("A035", "São Paulo Têxtil Ltda", ["sptextil.com.br"], "+55 11 5555 0131", "BR"),
    ("A036", "Mumbai Spices Pvt Ltd", ["mumbaispices.co.in"], "+91 22 5555 0132", "IN"),
    ("A037", "Kiwi Orchards Limited", ["kiwiorchards.co.nz"], "+64 9 555 0133", "NZ"),
    ("A038", "Maple Leaf Outfitters Inc.", ["mapleleafoutfitters.ca"], "+1 416 555 0134", "CA"),
    ("A039", "Tanaka Shoji Kabushiki Kaisha", ["tanaka-shoji.co.jp"], "+81 6 5555 0135", "JP"),
    ("A040", "Van der Berg B.V.", ["vanderberg.nl"], "+31 20 555 0136", "NL"),
    ("A041", "Rossi & Figli S.p.A.", ["rossiefigli.it"], "+39 02 5555 0137", "IT"),
    ("A042", "Dupont Frères SAS", ["dupontfreres.fr"], "+33 1 55 55 01 38", "FR"),
    ("A043", "Papadopoulos Shipping S.A.", ["papadopoulos-shipping.gr"], "+30 21 0555 0139", "GR"),
    ("A044", "Helsinki Data Oy", ["helsinkidata.fi"], "+358 9 555 0140", "FI"),
    ("A045", "Warszawa Tech Sp. z o.o.", ["warszawatech.pl"], "+48 22 555 0141", "PL"),
    ("A046", "Summit Health", ["summithealth.org"], "+1 303 555 0142", "US"),
    ("A047", "Summit Health Partners", ["summithealthpartners.com"], "+1 303 555 0143", "US"),
    ("A048", "Pioneer Analytics LLC", ["pioneeranalytics.io"], "+1 512 555 0144", "US"),
    ("A049", "Delta Freight Inc.", ["deltafreight.com"], "+1 404 555 0145", "US"),
    ("A050", "Delta Freight GmbH", ["deltafreight.de"], "+49 40 5555 0146", "DE"),
    ("A051", "Apex Holdings", ["apex-group.com"], "+1 702 555 0147", "US"),
    ("A052", "Apex Logistics", ["apex-group.com", "logistics.apex-group.com"], "+1 702 555 0148", "US"),
    ("A053", "Q2 Ltd", ["q2.com"], "+44 117 555 0149", "GB"),
    ("A054", "Oceanic Ventures plc", ["oceanicventures.co.uk"], "+44 131 555 0150", "GB"),
    ("A055", "Brightstar Solar", ["brightstarsolar.com", "brightstar.energy"], "+1 480 555 0151", "US"),
    ("A056", "Hanseatic Trading KG", ["hanseatic-trading.de"], "+49 40 5555 0152", "DE"),
    ("A057", "Lakeside Dental Clinic", ["lakesidedental.com"], "+1 608 555 0153", "US"),
    ("A058", "Redwood Capital Partners LP", ["redwoodcap.com"], "+1 650 555 0154", "US"),
]

FREE = ["gmail.com", "outlook.com", "yahoo.com", "hotmail.co.uk", "icloud.com", "gmx.de", "googlemail.com"]
FIRST = ["jo", "ana", "li", "sam", "kim", "raj", "eva", "tom", "mia", "ola", "ben", "zoe"]
LAST = ["smith", "garcia", "chen", "novak", "okafor", "silva", "muller", "tanaka", "rossi", "dubois", "khan"]

# A second spelling of each name, as people type it into a form: another legal form, case, no accents, "The",
# an ampersand written out. Keys of ACCOUNTS by id.
SPELLINGS = {
    "A001": ["ACME, Inc.", "The Acme Company", "acme corp"],
    "A002": ["Globex AG", "GLOBEX"],
    "A003": ["Initech Limited", "initech plc"],
    "A004": ["Societe Generale", "SOCIÉTÉ GÉNÉRALE SA"],
    "A005": ["Muller Maschinenbau", "Müller Maschinenbau GmbH & Co. KG"],
    "A006": ["Hoshino Kogyo", "K.K. Hoshino Kogyo"],
    "A007": ["Banco Horizonte", "BANCO HORIZONTE SA"],
    "A008": ["Kangaroo Logistics", "Kangaroo Logistics Pty. Ltd."],
    "A009": ["Northwind Traders Inc", "northwind traders"],
    "A010": ["Contoso", "Contoso Limited"],
    "A011": ["Fabrikam", "FABRIKAM INC"],
    "A012": ["Tailspin Toys Inc.", "TailSpin Toys"],
    "A013": ["Wingtip Toys", "Wingtip Toys, L.L.C."],
    "A014": ["Litware", "Litware, Incorporated"],
    "A015": ["Adventure Works Cycles Ltd", "adventure works cycles"],
    "A016": ["Blue Yonder Airlines Inc.", "BLUE YONDER AIRLINES"],
    "A017": ["The Coho Winery", "Coho Winery LLC"],
    "A018": ["Fourth Coffee Co.", "fourth coffee"],
    "A019": ["The Graphic Design Institute", "Graphic Design Institute Inc"],
    "A020": ["Humongous Insurance Co", "Humongous Insurance Company"],
    "A021": ["Lucerne Publishing AG", "lucerne publishing"],
    "A022": ["Margies Travel", "Margie’s Travel Ltd"],
    "A023": ["Proseware", "PROSEWARE INC."],
    "A024": ["Southridge Video LLC", "southridge video"],
    "A025": ["Trey Research Inc", "TREY RESEARCH"],
    "A026": ["Wide World Importers Ltd.", "wide world importers"],
    "A027": ["Woodgrove Bank plc", "The Woodgrove Bank"],
    "A028": ["Alpine Ski House GmbH", "ALPINE SKI HOUSE"],
    "A029": ["City Power and Light", "City Power & Light Co."],
    "A030": ["Phone Company", "The Phone Co."],
    "A031": ["Nordlicht", "NORDLICHT AB"],
    "A032": ["Orsted Vind", "Ørsted Vind AS"],
    "A033": ["Cafe Ole", "CAFÉ OLÉ S.A.R.L."],
    "A034": ["Zurich Ruckversicherung", "Zürich Rückversicherung"],
    "A035": ["Sao Paulo Textil", "SÃO PAULO TÊXTIL LTDA."],
    "A036": ["Mumbai Spices", "Mumbai Spices Pvt. Ltd."],
    "A037": ["Kiwi Orchards Ltd", "kiwi orchards"],
    "A038": ["Maple Leaf Outfitters", "Maple Leaf Outfitters Incorporated"],
    "A039": ["Tanaka Shoji K.K.", "Tanaka Shoji"],
    "A040": ["Van der Berg BV", "van der berg"],
    "A041": ["Rossi e Figli SpA", "Rossi & Figli"],
    "A042": ["Dupont Freres", "DUPONT FRÈRES S.A.S."],
    "A043": ["Papadopoulos Shipping", "Papadopoulos Shipping SA"],
    "A044": ["Helsinki Data", "Helsinki Data Oy Ab"],
    "A045": ["Warszawa Tech", "Warszawa Tech sp. z o.o."],
    "A046": ["Summit Health Inc.", "summit health"],
    "A047": ["Summit Health Partners LLC", "summit health partners"],
    "A048": ["Pioneer Analytics", "Pioneer Analytics, LLC"],
    "A049": ["Delta Freight", "DELTA FREIGHT INC"],
    "A050": ["Delta Freight", "Delta Freight GmbH"],
    "A051": ["Apex Holdings Inc.", "apex holdings"],
    "A052": ["Apex Logistics LLC", "apex logistics"],
    "A053": ["Q2", "Q2 Limited"],
    "A054": ["Oceanic Ventures", "Oceanic Ventures PLC"],
    "A055": ["Brightstar Solar Inc", "BrightStar Solar"],
    "A056": ["Hanseatic Trading", "Hanseatic Trading GmbH & Co. KG"],
    "A057": ["Lakeside Dental", "Lakeside Dental Clinic LLC"],
    "A058": ["Redwood Capital Partners", "Redwood Capital Partners, L.P."],
}
# One typo per name, matched only with the country or the phone.
TYPOS = {
    "A001": "Acme Coporation",
    "A005": "Mueller Maschinenbau",
    "A009": "Northwnd Traders",
    "A011": "Fabrikan",
    "A015": "Adventure Wroks Cycles",
    "A019": "Graphic Desgin Institute",
    "A026": "Wide World Importrs",
    "A034": "Zuerich Rueckversicherung",
    "A038": "Maple Leaf Outfiters",
    "A046": "Sumit Health",
    "A055": "Brightstar Solr",
}
# Accounts whose name also belongs to another (Delta Freight, US and DE): a free-mail lead needs its country.
SHARED_NAMES = {"A049", "A050"}
SHARED_DOMAIN = {"A051", "A052"}


def person(i: int) -> tuple[str, str]:
    return FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]


def build() -> dict:
    leads = []

    def add(kind, expect, **lead):
        leads.append({"kind": kind, "expect": expect, "lead": {k: v for k, v in lead.items() if v is not None}})

    for i, (account_id, _name, domains, phone, country) in enumerate(ACCOUNTS):
        first, last = person(i)
        domain = domains[i % len(domains)]
        spellings = SPELLINGS[account_id]
        # 1. The corporate address, with the name spelled another way; every third in upper case.
        email = f"{first}.{last}@{domain}"
        if account_id in SHARED_DOMAIN:
            company = spellings[0]  # the name tells the two accounts on one domain apart
        else:
            company = spellings[0] if i % 2 else None
        add("corporate domain", account_id, email=email.upper() if i % 3 == 0 else email, company=company)
        # 2. A subdomain of it (mail hosts, regional offices).
        sub = ["eu", "mail", "sales", "us.mail", "uk"][i % 5]
        if account_id not in SHARED_DOMAIN:
            add("subdomain", account_id, email=f"{last}@{sub}.{domain}", company=None, country=None)
        # 3. Free mail with the company name in another spelling, and the country.
        free = FREE[i % len(FREE)]
        add(
            "free mail with company",
            account_id,
            email=f"{first}{last}{i}@{free}",
            company=spellings[-1],
            country=country,
        )
        # 4. Every other account: free mail, the other spelling, no country (an exact name alone).
        if i % 2 == 0 and account_id not in SHARED_NAMES:
            add(
                "free mail, name only",
                account_id,
                email=f"{last}.{first}@{FREE[(i + 3) % len(FREE)]}",
                company=spellings[0],
            )
        # 5. A typo in the name with the country or the phone.
        if account_id in TYPOS:
            if i % 2:
                add("typo with phone", account_id, email=f"{first}@{free}", company=TYPOS[account_id], phone=phone)
            else:
                add(
                    "typo with country", account_id, email=f"{first}@{free}", company=TYPOS[account_id], country=country
                )
        # 6. Every fourth: the phone alone (dialled another way), no company, free mail.
        if i % 4 == 1:
            digits = "".join(ch for ch in phone if ch.isdigit())
            local = "0" + digits[-9:] if country != "US" else f"({digits[-10:-7]}) {digits[-7:-4]}-{digits[-4:]}"
            add("phone only", account_id, email=f"{first}.{i}@{free}", phone=local)

    # Lookalike domains: a company name of a real account does not rescue them.
    for email, company in [
        ("jo@acme.com.evil.io", "Acme Corporation"),
        ("jo@notacme.com", "Acme"),
        ("billing@acme.co", "Acme Corp"),
        ("it@acme-corp.net", "ACME Corp."),
        ("ceo@acmecorp.com", None),
        ("jo@globex.de.example.ru", "Globex GmbH"),
        ("a@northwind.com.co", None),
        ("x@contoso.co.uk.phish.net", "Contoso"),
        ("jo@litware.com-secure.io", "Litware"),
        ("hr@fabrikam.co", "Fabrikam"),
        ("info@initech.co.uk.attacker.com", None),
        ("pay@woodgrovebank.com.verify-account.net", "Woodgrove Bank"),
    ]:
        add("lookalike domain", None, email=email, company=company, country="US")
    # Lookalike names: another company whose name starts the same.
    for email, company, country in [
        ("jo@acmedental.com", "Acme Dental", "US"),
        ("jo@gmail.com", "Acme Dental", "US"),
        ("joe@acmeplumbing.com", "Acme Plumbing", "US"),
        ("joe@outlook.com", "Acme Plumbing LLC", "US"),
        ("k@globexlogistics.de", "Globex Logistics", "DE"),
        ("k@gmx.de", "Globex Logistik GmbH", "DE"),
        ("t@northwindtrading.com", "Northwind Trading", "US"),
        ("t@gmail.com", "Northwind Trading Co", "US"),
        ("p@gmail.com", "Summit Healthcare", "US"),
        ("q@gmail.com", "Summit Wealth", "US"),
        ("p@summitdental.com", "Summit Dental", "US"),
        ("z@yahoo.com", "Contoso Pharmaceuticals", "GB"),
        ("m@fourthcoffeeroasters.com", "Fourth Coffee Roasters", "US"),
        ("r@gmail.com", "Lakeside Dental Lab", "US"),
        ("r@lakeside.com", "Lakeside", "US"),
        ("s@pioneer.com", "Pioneer", "US"),
        ("s@gmail.com", "Pioneer Analytica Group", "US"),
        ("d@deltafreightlines.com", "Delta Freight Lines", "US"),
        ("v@gmail.com", "Apex", "US"),
        ("w@outlook.com", "Woodgrove", "US"),
        ("b@gmail.com", "Blue Yonder", "US"),
    ]:
        add("lookalike name", None, email=email, company=company, country=country)
    # Generic or empty names from free mail: nothing to go on.
    for i, company in enumerate(
        ["Inc.", "N/A", "Self-employed", "The Company", "LLC", "-", "none", "", "Test", "Ltd."]
    ):
        add("generic name", None, email=f"{FIRST[i]}{i}@{FREE[i % len(FREE)]}", company=company or None, country="US")
    # Companies that are not accounts, from their own domains.
    for email, company in [
        ("jo@starkindustries.com", "Stark Industries"),
        ("jo@waynetech.co.uk", "Wayne Technologies Ltd"),
        ("jo@umbrella-corp.com.br", "Umbrella Corporação"),
        ("jo@cyberdyne.io", None),
        ("jo@tyrell.co.jp", "Tyrell K.K."),
        ("jo@soylent.com.au", "Soylent Pty Ltd"),
    ]:
        add("not an account", None, email=email, company=company)
    # Real ties: one name, two accounts, nothing to choose by.
    add("tie", None, email="d@gmail.com", company="Delta Freight")
    add("tie", None, email="d@outlook.com", company="DELTA FREIGHT")
    add("tie", None, email="ops@apex-group.com")
    # ...and the same with what breaks the tie.
    add("tie broken by country", "A049", email="d@gmail.com", company="Delta Freight", country="US")
    add("tie broken by country", "A050", email="d@gmx.de", company="Delta Freight", country="DE")
    add("tie broken by name", "A051", email="cfo@apex-group.com", company="Apex Holdings")
    add("tie broken by subdomain", "A052", email="ops@logistics.apex-group.com")
    # Free mail with no company at all.
    for i in range(5):
        add("free mail only", None, email=f"{FIRST[i]}.{LAST[i]}@{FREE[i]}")
    accounts = [{"account_id": a, "name": n, "domains": d, "phone": p, "country": c} for a, n, d, p, c in ACCOUNTS]
    for index, lead in enumerate(leads):
        lead["lead"]["lead_id"] = f"bench-{index:04d}"
    return {"accounts": accounts, "leads": leads}


if __name__ == "__main__":
    out = Path(__file__).with_name("account_matching.json")
    data = build()
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    matched = sum(1 for lead in data["leads"] if lead["expect"])
    print(f"{out}: {len(data['accounts'])} accounts, {len(data['leads'])} leads ({matched} with an account)")
