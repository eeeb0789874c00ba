"""The dashboard in a real browser: Debian's headless Chromium, driven by selenium, against the emulated API.

What a person does: open the list, click the rollout, read its steps, arms, images and charts, watch it move on
without reloading, press Pause (and see the operator's answer), and be told plainly when RBAC forbids a button.
Screenshots of each page are written under the test's tmp path and copied to ``tests/artifacts/dashboard/``.

Skips, with the reason, where Chromium, its driver or selenium are missing; CI installs them (``make
dashboard-browser-deps``), so there it runs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator import ThreadedEmulator, write_kubeconfig
from test_dashboard_api import add_deployment, serving_dashboard
from test_plugin import CANARIES, EVIDENCE, JUDGE, NS, FakeOperator, _ForbidPatches, add_event, add_rollout, set_status

from controller.rollout.phases import ManualAction
from controller.rollout.request_codec import REQUEST_ANNOTATION, decode_request

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - without the test extra
    webdriver = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts" / "dashboard"


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    if webdriver is None:
        return "selenium is not installed (pip install -e '.[test]')"
    if CHROMIUM is None or CHROMEDRIVER is None:
        return "headless Chromium is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium; a skip with the reason where it is missing, except in CI (``CI`` set), which installs it
    (``make dashboard-browser-deps``): there a missing browser fails rather than silently dropping these tests."""
    missing = browser_missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the dashboard's browser tests must run in CI: {missing}")
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,2200",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, CSP violations included
    # The driver is given by path, so Selenium Manager never tries to download one.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Any:
    """``shot(driver, name)`` saves a full-window PNG under tmp_path and keeps a copy in tests/artifacts/."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(driver: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        height = driver.execute_script(
            "return Math.ceil(document.querySelector('main').getBoundingClientRect().bottom)"
        )
        driver.set_window_size(1400, max(600, min(int(height) + 120, 4000)))
        assert driver.save_screenshot(str(path)), name
        shutil.copy(path, ARTIFACTS / path.name)
        return path

    return shot


def wait_text(driver: Any, css: str, text: str, timeout_s: float = 15.0) -> str:
    """The text of the first element matching ``css`` that contains ``text``, once there is one.

    The page redraws on every watched change, so an element found a moment ago may be gone: that is retried.
    """

    def found(d: Any) -> str | bool:
        try:
            for element in d.find_elements(By.CSS_SELECTOR, css):
                if text in element.text:
                    return str(element.text)
        except StaleElementReferenceException:
            pass
        return False

    result: str = WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(found, f"{text!r} never in {css}")
    return result


def text_of(driver: Any, css: str) -> str:
    return wait_text(driver, css, "", timeout_s=5)


def click(driver: Any, css: str, timeout_s: float = 10.0) -> None:
    """Click the element matching ``css``, again if a redraw replaced it under the pointer."""

    def clicked(d: Any) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, css).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False

    WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(clicked, f"could not click {css}")


def judge_at(look: int) -> dict[str, Any]:
    """A judge state after ``look`` looks: the canary's 5xx share climbs a little faster than the primary's."""
    canary_n, primary_n = 150.0 * look, 1400.0 * look
    return {
        **JUDGE,
        "errorRate": {
            "theta0": 1.0,
            "test": {
                **JUDGE["errorRate"]["test"],
                "canaryRequests": canary_n,
                "canaryEvents": 1.0 + look,
                "primaryRequests": primary_n,
                "primaryEvents": 8.0 * look,
                "looks": look,
                "maxLogE": 0.3 * look,
            },
        },
        "latency": {
            "theta0": 1.2,
            "test": {
                "canaryRequests": canary_n,
                "canaryEvents": 3.0 * look,
                "primaryRequests": primary_n,
                "primaryEvents": 25.0 * look,
                "looks": look,
                "maxLogE": 0.1 * look,
            },
        },
    }


def evidence_at(look: int) -> dict[str, Any]:
    metrics = [dict(m) for m in EVIDENCE["metrics"]]
    metrics[1]["pValue"] = round(min(1.0, 0.95 - 0.12 * look), 3)
    metrics.append(
        {
            "metric": "latency",
            "kind": "latency",
            "outcome": "pass",
            "reason": "slow share 1.0× primary",
            "estimate": 1.0,
            "pValue": round(0.99 - 0.05 * look, 3),
            "lower": 0.6,
            "upper": 1.7,
        }
    )
    return {**EVIDENCE, "metrics": metrics}


def look(emu: ThreadedEmulator, n: int, weight: int, **extra: Any) -> None:
    set_status(emu, canaryWeight=weight, stepIndex=weight // 20, judge=judge_at(n), evidence=evidence_at(n), **extra)


def a_rollout_under_analysis(emu: ThreadedEmulator) -> None:
    add_deployment(emu, "podinfo", "ghcr.io/stefanprodan/podinfo:6.1.0")
    add_deployment(emu, "podinfo-primary", "ghcr.io/stefanprodan/podinfo:6.0.3")
    add_rollout(
        emu,
        phase="Progressing",
        canaryWeight=20,
        stepIndex=1,
        lastAppliedSpec="5d8f7c9b6",
        lastPromotedSpec="7f6d5c4b3",
        hold="Evidence",
        message="Holding podinfo at 20%: not enough evidence yet",
        conditions=[{"type": "Promoted", "status": "Unknown", "reason": "Progressing", "message": "in progress"}],
    )
    add_rollout(emu, "backend", phase="Succeeded", message="Promotion completed!")
    add_event(emu, "podinfo", "Started", "New revision detected! Scaling up podinfo", at=time.time() - 60)
    add_event(emu, "podinfo", "Synced", "Advance podinfo canary weight 20", at=time.time() - 30)


def test_the_pages_show_the_rollout_update_live_and_pause_acts(
    threaded_emulator: ThreadedEmulator, kubeconfig: Path, browser: Any, shots: Any
) -> None:
    emu = threaded_emulator
    a_rollout_under_analysis(emu)
    with serving_dashboard(kubeconfig) as dashboard:
        for n in (1, 2):  # looks the dashboard watches: points of the evidence timeline
            look(emu, n, 20)
            time.sleep(0.4)
        browser.get(dashboard.url)
        row = wait_text(browser, "#rollouts tr[data-name=podinfo]", "Progressing")
        assert "20%" in row and "1/5" in row
        assert text_of(browser, "#rollouts tr[data-name=podinfo] .health") == "Progressing"
        assert "Healthy" in text_of(browser, "#rollouts tr[data-name=backend]")
        shots(browser, "dashboard-list")

        click(browser, "#rollouts tr[data-name=podinfo] a")
        wait_text(browser, "#title", "default/podinfo")
        assert "Evidence" in text_of(browser, "#hold")
        assert "weight 20%" in text_of(browser, "#steps li.current")
        arms = text_of(browser, "#arms tr[data-comparison=errorRate]")
        assert "(3/300)" in arms and "(16/2,800)" in arms  # per-arm events/requests from the judge's counts
        assert ":6.1.0" in text_of(browser, "#workloads tr[data-role=target]")
        assert ":6.0.3" in text_of(browser, "#workloads tr[data-role=primary]")
        assert "5d8f7c9b6" in text_of(browser, "#revisions")
        assert "New revision detected!" in text_of(browser, "#events")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#charts svg path.series")) >= 5

        # live: the operator moves on; the page follows without a reload (the marker survives)
        browser.execute_script("window.__notReloaded = true;")
        for n, weight in ((3, 40), (4, 60)):
            time.sleep(0.4)
            look(emu, n, weight)
        wait_text(browser, "#weight", "60% canary / 40% primary")
        wait_text(browser, "#steps li.current", "weight 60%")
        assert browser.execute_script("return window.__notReloaded === true;")
        shots(browser, "dashboard-detail")

        # Pause: the same request `kubectl coalmine pause` writes; the operator's answer is shown
        paused = {"pausedByUser": True, "hold": "UserPause", "message": "Paused by a user"}
        with FakeOperator(emu, lambda action: (paused, "")) as operator:
            click(browser, "button[data-action=pause]")
            result = wait_text(browser, "#action-result.ok", "Handled")
        assert operator.handled == 1
        assert "pause request" in result and "Paused by a user" in result
        request = decode_request(
            emu.read_object(CANARIES, NS, "podinfo")["metadata"]["annotations"][REQUEST_ANNOTATION]
        )
        assert request is not None and request.action is ManualAction.PAUSE
        wait_text(browser, "#phase", "Paused")  # the watch brought the new status in
        assert browser.find_elements(By.CSS_SELECTOR, "button[data-action=resume].on")
        shots(browser, "dashboard-paused")
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors  # no script error, no blocked asset, nothing refused by the page's CSP


def test_a_forbidden_button_shows_the_plugins_message(tmp_path: Path, browser: Any, shots: Any) -> None:
    with ThreadedEmulator(_ForbidPatches()) as emu:
        add_rollout(emu, phase="Progressing", canaryWeight=20, stepIndex=1)
        config = write_kubeconfig(emu.url, tmp_path / "kubeconfig")
        with serving_dashboard(config) as dashboard:
            browser.get(f"{dashboard.url}#/default/podinfo")
            wait_text(browser, "#title", "default/podinfo")
            click(browser, "button[data-action=abort]")
            message = wait_text(browser, "#action-result.error", "no permission")
            assert message == "no permission to patch canaries.coalmine.dev in default (needs: patch on canaries)"
            assert "Traceback" not in browser.page_source
            shots(browser, "dashboard-forbidden")
        meta = emu.read_object(CANARIES, NS, "podinfo")["metadata"]
        assert REQUEST_ANNOTATION not in (meta.get("annotations") or {})
