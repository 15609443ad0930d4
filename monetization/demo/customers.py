"""Demo customers with their provider identities, and one staff login per role.

Idempotent: customer ``i`` is always the same person (its own seeded RNG),
rows are inserted with ``ignore_conflicts`` on their natural keys, so a re-run
adds nothing and ``--customers N`` only ever extends the same list.

Staff logins: ``support``, ``finance``, ``compliance`` (in their groups) and
``admin`` (superuser). Passwords are ``demo-<username>-2026`` unless the
``DEMO_PASSWORD`` environment variable sets one password for all four.
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password

from monetization import clock
from monetization.models import Customer, Provider, ProviderIdentity
from monetization.roles import COMPLIANCE, FINANCE, SUPPORT

FIRST = [
    "alex",
    "sam",
    "maria",
    "lena",
    "jonas",
    "emma",
    "noah",
    "mia",
    "lucas",
    "sofia",
    "liam",
    "olivia",
    "yuki",
    "haruto",
    "aarav",
    "priya",
    "ana",
    "joao",
    "chloe",
    "hugo",
    "elena",
    "marco",
    "lucia",
    "pablo",
    "oliver",
    "amelia",
    "jack",
    "isla",
    "kenji",
    "sakura",
    "rohan",
    "diya",
    "pedro",
    "beatriz",
    "liam",
    "ethan",
    "ava",
    "zoe",
    "leo",
    "nina",
    "omar",
    "sara",
    "felix",
    "ida",
    "max",
    "clara",
    "tom",
    "julia",
    "ben",
    "lea",
]
LAST = [
    "smith",
    "mueller",
    "martin",
    "garcia",
    "rossi",
    "tanaka",
    "sato",
    "sharma",
    "patel",
    "silva",
    "santos",
    "brown",
    "wilson",
    "dubois",
    "moreau",
    "fernandez",
    "lopez",
    "bianchi",
    "romano",
    "schmidt",
    "fischer",
    "weber",
    "kumar",
    "singh",
    "costa",
    "oliveira",
    "taylor",
    "thomas",
    "roy",
    "nguyen",
    "kim",
    "lee",
    "walker",
    "young",
    "king",
    "wright",
    "scott",
    "green",
    "baker",
]
HANDLE_STYLES = ("{f}{l}", "{f}.{l}", "{f}{n}", "the{f}{l}", "{l}{f}", "{f}_{n}", "real{f}")
# Country mix of a global consumer app: country -> (weight, email domains)
COUNTRIES = {
    "US": (34, ("gmail.com", "outlook.com", "icloud.com", "yahoo.com")),
    "GB": (8, ("gmail.com", "outlook.com", "btinternet.com")),
    "DE": (7, ("gmx.de", "web.de", "gmail.com")),
    "FR": (6, ("orange.fr", "gmail.com", "free.fr")),
    "ES": (4, ("gmail.com", "hotmail.es")),
    "IT": (4, ("gmail.com", "libero.it")),
    "JP": (10, ("gmail.com", "yahoo.co.jp", "docomo.ne.jp")),
    "IN": (10, ("gmail.com", "rediffmail.com")),
    "BR": (8, ("gmail.com", "uol.com.br", "hotmail.com")),
    "CA": (5, ("gmail.com", "outlook.com")),
    "AU": (4, ("gmail.com", "bigpond.com")),
}
STAFF = (
    ("support", SUPPORT, "Sam", "Support"),
    ("finance", FINANCE, "Fran", "Finance"),
    ("compliance", COMPLIANCE, "Cory", "Compliance"),
    ("admin", None, "Ada", "Admin"),
)
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def demo_password(username: str) -> str:
    return os.environ.get("DEMO_PASSWORD") or f"demo-{username}-2026"


def demo_customer(index: int, seed: int) -> tuple[dict, list[tuple[str, str, str]]]:
    """Customer ``index``'s fields and identities (provider, kind, value); the same for the same seed."""
    rng = random.Random(f"{seed}:customer:{index}")
    first, last = rng.choice(FIRST), rng.choice(LAST)
    handle = rng.choice(HANDLE_STYLES).format(f=first, l=last, n=rng.randint(1, 9999))[:40] + f"{index:x}"
    countries = list(COUNTRIES)
    country = rng.choices(countries, weights=[COUNTRIES[c][0] for c in countries])[0]
    domain = rng.choice(COUNTRIES[country][1])
    # Snowflake-like 19-digit account ids, unique per index.
    external_id = str(1_400_000_000_000_000_000 + index * 7_919_000_003 + rng.randint(0, 7_919_000_000))
    fields = {
        "external_id": external_id,
        "handle": handle,
        "email": f"{handle.replace('_', '.')}@{domain}",
        "country": country,
        "created_at": clock.now() - timedelta(days=rng.randint(1, 5 * 365), seconds=rng.randint(0, 86_399)),
    }
    identities = []
    roll = rng.random()
    if roll < 0.45:  # iPhone users
        identities.append(
            (Provider.APP_STORE, ProviderIdentity.Kind.ORIGINAL_TRANSACTION_ID, str(2_000_000_000_000_000 + index))
        )
        identities.append(
            (Provider.APP_STORE, ProviderIdentity.Kind.APP_ACCOUNT_TOKEN, str(uuid.UUID(int=rng.getrandbits(128))))
        )
    elif roll < 0.75:  # Android users
        obfuscated = hashlib.sha256(f"x-account:{external_id}".encode()).hexdigest()
        identities.append((Provider.GOOGLE_PLAY, ProviderIdentity.Kind.OBFUSCATED_ACCOUNT_ID, obfuscated))
    if roll >= 0.6:  # web buyers (some Android users too)
        identities.append(
            (Provider.STRIPE, ProviderIdentity.Kind.CUSTOMER_ID, "cus_" + "".join(rng.choices(BASE62, k=14)))
        )
    return fields, identities


def seed_customers(*, count: int, seed: int, batch: int = 2000) -> int:
    """Create demo customers 0..count-1 that do not exist yet; returns how many exist afterwards."""
    for start in range(0, count, batch):
        people = [demo_customer(i, seed) for i in range(start, min(count, start + batch))]
        Customer.objects.bulk_create([Customer(**fields) for fields, _ in people], ignore_conflicts=True)
        ids = dict(
            Customer.objects.filter(external_id__in=[f["external_id"] for f, _ in people]).values_list(
                "external_id", "id"
            )
        )
        ProviderIdentity.objects.bulk_create(
            [
                ProviderIdentity(customer_id=ids[fields["external_id"]], provider=p, kind=k, value=v)
                for fields, identities in people
                for p, k, v in identities
            ],
            ignore_conflicts=True,
        )
    return Customer.objects.count()


def seed_staff() -> list[tuple[str, str, str]]:
    """One login per role (plus a superuser); returns (username, role, password) rows."""
    User = get_user_model()
    rows = []
    for username, role, first, last in STAFF:
        password = demo_password(username)
        user, _ = User.objects.get_or_create(username=username)
        user.first_name, user.last_name = first, last
        user.email = f"{username}@backoffice.example"
        user.is_staff = True
        user.is_superuser = role is None
        user.is_active = True
        validate_password(password, user)
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        if role is not None:
            user.groups.set([Group.objects.get_or_create(name=role)[0]])
        rows.append((username, role or "Superuser", password))
    return rows


def seed(*, rng, out, options) -> None:
    total = seed_customers(count=options.get("customers", 3000), seed=options.get("seed", 0))
    out.write(f"  customers: {total} (with App Store / Google Play / Stripe identities)")
    options["staff_logins"] = seed_staff()


def format_logins(rows: list[tuple[str, str, str]]) -> str:
    lines = ["Staff logins (http://127.0.0.1:8000/admin/):", f"  {'username':<12} {'role':<12} password"]
    lines += [f"  {u:<12} {r:<12} {p}" for u, r, p in rows]
    return "\n".join(lines)
