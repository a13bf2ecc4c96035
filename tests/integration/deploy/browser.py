"""The dashboard in a real browser: Debian's headless chromium driven through Selenium by Debian's chromedriver
(nothing downloaded). Each page it opens can be kept as a screenshot (SHOTS, kept after the run)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

SHOTS = REPO / "test-artifacts" / "dashboard"  # gitignored; CI keeps the folder
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 60.0  # seconds for any one thing to appear on a page


def chromium():
    """A headless chromium (skips when Debian's chromium-driver or selenium is missing)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium")
    if not (browser and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--lang=en-US"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    return driver


class Dashboard:
    """The pages and actions a user of the dashboard goes through, by what the user sees."""

    def __init__(self, driver, base: str):
        self.driver, self.base = driver, base
        SHOTS.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> Path:
        path = SHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def wait(self, what: str, cond, timeout: float = WAIT, reload_every: float | None = None):
        """Poll cond() until truthy; optionally reloading the page (tables that refresh themselves slowly)."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        deadline = time.monotonic() + timeout
        last_reload = time.monotonic()
        while True:
            try:
                got = cond()
                if got:
                    return got
            except (StaleElementReferenceException, WebDriverException):
                pass
            if time.monotonic() > deadline:
                self.shot("timeout-" + "".join(c if c.isalnum() else "-" for c in what)[:60])
                raise AssertionError(f"dashboard: {what}: not within {timeout:.0f}s (at {self.driver.current_url})")
            if reload_every and time.monotonic() - last_reload > reload_every:
                self.driver.refresh()
                last_reload = time.monotonic()
            time.sleep(0.5)

    def xpath(self, expr: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.XPATH, expr)

    def visible(self, expr: str):
        return [e for e in self.xpath(expr) if e.is_displayed()]

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def login(self, user: str, password: str) -> None:
        self.open("auth/login/")
        self.wait("the login form", lambda: self.visible("//input[@id='id_username']"))
        self.xpath("//input[@id='id_username']")[0].send_keys(user)
        self.xpath("//input[@id='id_password']")[0].send_keys(password)
        self.xpath("//button[@id='loginBtn']")[0].click()

    def text(self) -> str:
        return self.xpath("//body")[0].text

    def row_with(self, name: str):
        return self.visible(f"//table//tr[.//*[normalize-space()='{name}'] or .//a[normalize-space()='{name}']]")

    def launch_instance(self, name: str, image: str, flavor: str, network: str) -> None:
        """The Launch Instance wizard: details, source (the image), flavor, network; then Launch."""
        self.open("project/instances/")
        button = self.wait("the Launch Instance button",
                           lambda: self.visible("//*[self::a or self::button][contains(normalize-space(), "
                                                "'Launch Instance')]"))
        button[0].click()
        field = self.wait("the wizard's instance name", lambda: self.visible("//input[@id='name']"))
        field[0].send_keys(name)
        for step, item in (("Source", image), ("Flavor", flavor), ("Networks", network)):
            self.visible(f"//div[contains(@class, 'wizard-nav')]//*[normalize-space()='{step}']")[0].click()
            self._allocate(step, item)
        self.shot("launch-instance-networks")
        finish = self.wait("the wizard's Launch Instance button enabled",
                           lambda: [b for b in self.visible("//button[contains(@class, 'finish')]") if b.is_enabled()])
        finish[0].click()

    def _allocate(self, step: str, item: str) -> None:
        """Move `item` from the step's table of available ones to its allocated ones (unless it already is)."""
        allocated = f"//div[contains(@class, 'transfer-allocated')]//tr[.//td[normalize-space()='{item}']]"
        available = (f"//div[contains(@class, 'transfer-available')]//tr[.//td[normalize-space()='{item}']]"
                     "//button")

        def done_or_button():
            if self.visible(allocated):
                return "allocated"
            buttons = self.visible(available)
            return buttons[-1] if buttons else None

        got = self.wait(f"{item} in the {step} step's table", done_or_button)
        if got != "allocated":
            got.click()
            self.wait(f"{item} allocated in the {step} step", lambda: self.visible(allocated))

    def logout(self) -> None:
        """The user menu (top right), then its Sign Out button."""
        menu = "//form[contains(@action, '/auth/logout')]/ancestor::li[contains(@class, 'dropdown')]/a"
        self.wait("the user menu", lambda: self.visible(menu))[0].click()
        self.wait("the Sign Out button",
                  lambda: self.visible("//form[contains(@action, '/auth/logout')]//button"))[0].click()
