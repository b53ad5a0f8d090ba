"""The operator page in a real browser: Debian's headless Chromium driven by selenium, against the service as
deployed (gunicorn) with calls placed through the simulated Telnyx network.

No browser is downloaded: selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver (Debian packages
`chromium` and `chromium-driver`; .ci/run installs them). Screenshots of the main views are saved under
artifacts/screenshots/ (git-ignored). The tests run in file order and share one service and one browser: the
rate-limit test comes last, since it locks this address out of signing in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from system_tools import CHROMIUM

from simulator.network import Network, NetworkOptions
from simulator.runner import run_scenario
from simulator.scenario import load_scenario, parse_scenario
from simulator.service import start_service

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
ADMIN = "browser-admin-token-0123456789"
XSS_LINES = ["<img src=x onerror=alert(1)>", "<script>alert(document.cookie)</script> hello"]
XSS_CALL = parse_scenario({
    "name": "xss_caller", "from": "+13125550199",
    "caller": [{"say": line, "confidence": 0.95} for line in XSS_LINES] + [{"hangup": {}}],
})
SCENARIOS = ("question_answered", "transfer_unanswered", "presses_zero")


@pytest.fixture(scope="module")
def live():
    CHROMIUM.paths_or_skip()
    with (Network(NetworkOptions(speed=0.05)) as network,
          start_service({**network.service_env(), "ADMIN_TOKEN": ADMIN}) as service):
        network.webhook_url = service.webhook_url
        calls = {name: place(network, service, load_scenario(ROOT / "scenarios" / f"{name}.yml"))
                 for name in SCENARIOS}
        calls["xss_caller"] = place(network, service, XSS_CALL)
        yield network, service, calls


def place(network, service, scenario) -> str:
    result = run_scenario(network, scenario, service.call_log_path)
    assert result.call.ended, result.transcript
    return result.call.call_control_id


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    chromium, chromedriver = CHROMIUM.paths_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1400", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=DriverService(executable_path=chromedriver), options=options)
    browser.implicitly_wait(2)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield browser
    browser.quit()


def by_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def submit_token(driver, url: str, token: str) -> None:
    driver.get(f"{url}/admin/login")
    field = by_css(driver, "#token")
    field.clear()
    field.send_keys(token)
    submit(driver, "#login button")


def submit(driver, button: str) -> None:
    """Click a form's button; return once the page the form led to has replaced this one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.wait import WebDriverWait

    page = by_css(driver, "html")
    by_css(driver, button).click()

    def replaced(_) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:  # stale; or, mid-navigation, "node does not belong to the document"
            return True
        return False

    WebDriverWait(driver, 10).until(replaced)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def no_alert(driver) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert  # noqa: B018 - raises when there is none
    except NoAlertPresentException:
        return True
    return False


def test_a_wrong_token_is_refused(live, driver):
    _, service, _ = live
    submit_token(driver, service.url, "this-is-not-the-token")
    assert "That token is not right." in by_css(driver, "#error").text
    assert driver.current_url == f"{service.url}/admin/login"  # nothing of the form in the URL
    driver.get_log("browser")  # the 401 is logged as a failed load: expected here, not in the tests below


def test_sign_in_shows_every_call(live, driver):
    _, service, calls = live
    submit_token(driver, service.url, ADMIN)
    assert driver.current_url == f"{service.url}/admin/"
    assert ADMIN not in driver.current_url
    rows = all_css(driver, "#calls tbody tr")
    assert len(rows) == len(calls)
    links = {a.get_attribute("href").rsplit("/", 1)[1] for a in all_css(driver, "#calls tbody a")}
    assert links == set(calls.values())
    assert len(all_css(driver, ".charts svg")) == 3
    driver.save_screenshot(str(SCREENSHOTS / "dashboard.png"))
    assert console_errors(driver) == []


def test_one_call_shows_its_transcript_and_latency(live, driver):
    _, service, calls = live
    driver.get(f"{service.url}/admin/")
    by_css(driver, f'#calls a[href$="{calls["question_answered"]}"]').click()
    transcript = by_css(driver, "#transcript").text
    assert "what are your opening hours" in transcript and "8 am" in transcript
    assert "reply after" in transcript and " ms" in transcript
    assert by_css(driver, "#outcome").text == "hung_up_by_assistant"
    driver.save_screenshot(str(SCREENSHOTS / "call.png"))
    assert console_errors(driver) == []


def test_a_caller_saying_markup_is_shown_as_text(live, driver):
    _, service, calls = live
    driver.get(f"{service.url}/admin/calls/{calls['xss_caller']}")
    transcript = by_css(driver, "#transcript")
    for line in XSS_LINES:
        assert line in transcript.text
    assert all_css(driver, "#transcript img") == [] and all_css(driver, "#transcript script") == []
    assert no_alert(driver)
    driver.save_screenshot(str(SCREENSHOTS / "xss-call.png"))
    assert console_errors(driver) == []


def test_marking_a_message_called_back(live, driver):
    _, service, _ = live
    driver.get(f"{service.url}/admin/")
    (row,) = all_css(driver, "#messages tbody tr")
    assert "moving my cleaning to Friday" in row.text
    submit(driver, "#messages button.mark")
    (row,) = all_css(driver, "#messages tbody tr")
    assert "called back" in row.text and all_css(driver, "#messages button.mark") == []
    assert "Marked as called back." in by_css(driver, ".notice").text


def test_the_kill_switch_round_trip(live, driver):
    network, service, _ = live
    driver.get(f"{service.url}/admin/")
    switch_to(driver, "off")
    assert "The assistant is off" in by_css(driver, "#ai-state").text
    driver.save_screenshot(str(SCREENSHOTS / "ai-off.png"))
    straight = place_and_list_actions(network, service)
    assert "transfer" in straight and "transcription_start" not in straight
    switch_to(driver, "on")
    assert "The assistant is on" in by_css(driver, "#ai-state").text
    greeted = place_and_list_actions(network, service)
    assert "transcription_start" in greeted
    assert console_errors(driver) == []


def switch_to(driver, value: str) -> None:
    by_css(driver, f'#switch input[value="{value}"]').click()
    submit(driver, "#apply")


def place_and_list_actions(network, service) -> list[str]:
    scenario = load_scenario(ROOT / "scenarios" / "question_answered.yml")
    result = run_scenario(network, scenario, service.call_log_path)
    return [record.action for record in network.fake.requests_for(result.call.call_control_id)]


def test_repeated_wrong_tokens_are_rate_limited(live, driver):
    _, service, _ = live
    driver.delete_all_cookies()
    for _ in range(4):  # one failure already counted in the first test
        submit_token(driver, service.url, "still-not-the-token")
    submit_token(driver, service.url, ADMIN)
    assert "Too many failed sign-ins" in by_css(driver, "#error").text
    driver.get(f"{service.url}/admin/")
    assert driver.current_url.endswith("/admin/login")
