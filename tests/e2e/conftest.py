"""Browser journeys: Debian's chromium, driven by pytest-playwright, against a live server seeded like the demo.

Each test seeds the demo (``seed_demo`` on a small customer count) in its live-server database, signs staff
in by their session cookie (the login page itself is tested in tests/backoffice), and checks every page it
visits with axe-core (vendored by the pinned ``axe-playwright-python``): no serious or critical violation.
A failing test leaves a full-page screenshot of each open page in ``E2E_ARTIFACTS`` (default
``test-results/e2e``).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from monetization.providers.base import reset_providers
from subscriptions.services.provider_sync import _SKU_CACHE

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", "test-results/e2e"))
DEMO_CUSTOMERS = "220"  # enough for the creators (50) and the first organizations
SERIOUS = {"serious", "critical"}

# Playwright's sync API keeps an event loop running on the main thread for the session, which Django's
# async-safety check takes for async code; everything here is synchronous (the pytest-playwright docs' advice).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _ensure_chromium() -> str:
    """Debian's chromium, installed with apt when missing (CI runs as root on a Debian image)."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        subprocess.run([apt, "update", "-qq"], check=False)
        subprocess.run([apt, "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments, pointed at the system chromium (no downloaded browser)."""
    return {**browser_type_launch_args, "executable_path": _ensure_chromium(), "args": ["--no-sandbox"]}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def demo(live_server, settings, transactional_db):
    """The demo's data in the live server's database, with the demo's provider doubles."""
    fake = "monetization.demo.providers.FakeProvider"
    settings.PAYMENT_PROVIDERS = {
        "stripe": "monetization.demo.providers.StripeBillingDouble",
        "app_store": fake,
        "google_play": fake,
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # the four demo logins, fast
    reset_providers()
    _SKU_CACHE.clear()
    call_command("seed_demo", "--customers", DEMO_CUSTOMERS, stdout=io.StringIO())
    yield live_server
    reset_providers()
    _SKU_CACHE.clear()


class Console:
    """One staff member's browser tab on the live server."""

    axe = Axe()

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.checked: set[str] = set()

    def go(self, path: str):
        self.page.goto(self.base_url + path)
        self.check()
        return self.page

    def check(self) -> None:
        """axe-core on the page as it is now, once per path: no serious or critical violation."""
        path = self.page.url.split("?")[0]
        if path in self.checked:
            return
        self.checked.add(path)
        results = self.axe.run(self.page)
        serious = [v for v in results.response["violations"] if v.get("impact") in SERIOUS]
        details = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}" for v in serious
        ]
        assert not details, f"accessibility on {self.page.url}:\n" + "\n".join(details)

    def message(self) -> str:
        return self.page.locator("ul.messagelist").inner_text()


@pytest.fixture
def console(request, demo, browser):
    """console("support") -> that demo login's tab, signed in by its session cookie."""
    contexts = []

    def open_as(username: str) -> Console:
        user = get_user_model().objects.get(username=username)
        client = Client()
        client.force_login(user)
        context = browser.new_context(base_url=demo.url, viewport={"width": 1440, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": demo.url}])
        context.set_default_timeout(15_000)
        contexts.append((username, context))
        return Console(context.new_page(), demo.url)

    yield open_as
    failed = getattr(request.node, "report_call", None) and request.node.report_call.failed
    for username, context in contexts:
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for i, page in enumerate(context.pages):
                page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{username}-{i}.png"), full_page=True)
        context.close()
