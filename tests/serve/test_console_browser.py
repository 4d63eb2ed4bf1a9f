"""The web console at "/" in a real headless Chromium (Selenium + Debian's chromium-driver) against the deployed
app: each of the four forms is submitted and its answer, with its explanation, must render; errors render readably;
the key field sends `Authorization: Bearer`. Screenshots go to a tmp dir and to $FINMM_SCREENSHOT_DIR when set."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from browser import chromium, full_page_screenshot

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]
WAIT_S = 90


@pytest.fixture(scope="module")
def page(app_url):
    with chromium() as driver:
        driver.get(app_url + "/")
        _wait(driver, "#credit-fields input")  # the credit form is built from /openapi.json after load
        yield driver


def _wait(driver, css: str, timeout: float = WAIT_S, count: int = 1):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d):
        els = d.find_elements(By.CSS_SELECTOR, css)
        return els if len(els) >= count else False

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(found, f"no {css!r} within {timeout}s")


def _set(driver, css: str, value: str) -> None:
    """Set a field's value as typing would (an input event follows), without send_keys' per-key cost."""
    driver.execute_script("const e = document.querySelector(arguments[0]); e.value = arguments[1];"
                          "e.dispatchEvent(new Event('input', {bubbles: true}));", css, value)


def _submit(driver, form: str) -> None:
    driver.find_element("css selector", f"{form} button[type=submit]").click()


def _shoot(driver, tmp_dir: Path, name: str) -> list[Path]:
    paths = [full_page_screenshot(driver, tmp_dir / name)]
    if os.environ.get("FINMM_SCREENSHOT_DIR"):
        paths.append(full_page_screenshot(driver, Path(os.environ["FINMM_SCREENSHOT_DIR"]) / name))
    return paths


def test_page_loads_with_model_and_credit_form(page, app_url):
    assert page.title == "finmm console"
    features = httpx.get(f"{app_url}/openapi.json").json()["components"]["schemas"]["CreditFeatures"]["properties"]
    inputs = _wait(page, "#credit-fields input", count=len(features))
    assert {i.get_attribute("name") for i in inputs} == set(features)
    assert page.find_element("css selector", "#credit-fields input[name=loan_amnt]").get_attribute("value") == "12000"
    assert _wait(page, "#ready-badge.ok")[0].text == "ready"
    _wait(page, "#model-info")
    assert "sha256" in page.find_element("css selector", "#model-info").text
    # the OHLCV chart is drawn on the canvas before anything is sent
    painted = page.execute_script(
        "const c = document.getElementById('chart'); const d = c.getContext('2d').getImageData(0, 0, c.width,"
        " c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
    assert painted > 1000, painted


def test_four_forms_answer_and_explain(page, tmp_path):
    # credit: probability, grade, decision and reason codes
    _submit(page, "#credit-form")
    pd_text = _wait(page, "#credit-pd")[0].text
    assert pd_text.endswith("%") and 0 <= float(pd_text[:-1]) <= 100
    assert page.find_element("css selector", "#credit-grade").text.split()[-1] in "ABCDEFG"
    assert page.find_element("css selector", "#credit-decision").text in ("approve", "decline")
    reasons = page.find_elements("css selector", "#credit-reasons li")
    assert 1 <= len(reasons) <= 4 and all(r.get_attribute("data-name") for r in reasons)

    # stock: P(up), direction and three modality contributions
    _submit(page, "#stock-form")
    assert _wait(page, "#stock-prob")[0].text.endswith("%")
    assert page.find_element("css selector", "#stock-direction").text.split()[-1] in ("up", "down")
    contrib = page.find_elements("css selector", "#stock-contrib li")
    assert {c.get_attribute("data-name") for c in contrib} == {"text", "image", "series"}

    # sentiment (Chinese) through an example button
    page.find_element("xpath", "//section[@id='sentiment']//button[text()='中文 −']").click()
    _submit(page, "#sentiment-form")
    zh = _wait(page, "#sentiment-words .w")
    assert any("\u4e00" <= ch <= "\u9fff" for w in zh for ch in w.text)

    # sentiment (English): label, probabilities, one shaded span per word
    page.find_element("xpath", "//section[@id='sentiment']//button[text()='English +']").click()
    page.execute_script("document.getElementById('sentiment-result').replaceChildren()")
    _submit(page, "#sentiment-form")
    label = _wait(page, "#sentiment-label")[0].text
    assert label in ("negative", "neutral", "positive")
    words = page.find_elements("css selector", "#sentiment-words .w")
    assert [w.text for w in words][:3] == ["the", "company", "reported"]
    shades = [w.value_of_css_property("background-color") for w in words]
    assert any(s not in ("rgba(0, 0, 0, 0)", "transparent") for s in shades), shades
    assert len(page.find_elements("css selector", "#sentiment-probs li")) == 3

    # customer service: two turns of one conversation, each with intent, confidence, answer and handoff flag
    conv = page.find_element("css selector", "#chat-conv").text
    assert conv.startswith("console-")
    for turn, message in enumerate(["I lost my card, what should I do?", "and how long will that take?"], 1):
        _set(page, "#chat-input", message)
        _submit(page, "#chat-form")
        bot = _wait(page, ".msg.bot", count=turn)[-1]
        assert bot.find_element("css selector", ".answer").text
        assert bot.find_element("css selector", ".intent").text.startswith("intent: ")
        assert bot.find_element("css selector", ".confidence").text.endswith("%")
        assert bot.find_element("css selector", ".handoff-flag").get_attribute("data-handoff") in ("true", "false")
        assert bot.find_element("css selector", ".turn").text == f"turn {turn}"  # same conversation id
    assert page.find_element("css selector", "#chat-conv").text == conv

    for path in _shoot(page, tmp_path, "console.png"):
        assert path.stat().st_size > 10_000


def test_api_error_renders_readably(page):
    _set(page, "#stock-bars", "1, 2, 0.5, 1.5, 100\n1, 2, 0.5, 1.5, 100")
    _submit(page, "#stock-form")
    box = _wait(page, "#stock-result .error")[0]
    assert box.text.startswith("422 invalid request")
    assert "bars" in box.find_element("css selector", "code").text and "request id" in box.text
    _set(page, "#stock-bars", "1, 2, 0.5\n")  # not five numbers: caught before sending
    _submit(page, "#stock-form")
    assert "line 1" in _wait(page, "#stock-result .error code")[0].text


def test_api_key_field_sends_bearer(page, app_url, tmp_path):
    from serve.ops import set_user_config

    keys = tmp_path / "keys.txt"
    keys.write_text("console-secret\n")
    set_user_config("Ingress", {"api_keys_env": None, "api_keys_file": str(keys)})
    try:
        assert httpx.get(f"{app_url}/").status_code == 200  # the page itself needs no key, the API does
        assert httpx.get(f"{app_url}/v1/models").status_code == 401
        page.execute_script("document.getElementById('sentiment-result').replaceChildren()")
        _submit(page, "#sentiment-form")
        assert _wait(page, "#sentiment-result .error")[0].text.startswith("401 missing or invalid API key")
        _set(page, "#api-key", "console-secret")
        page.execute_script("document.getElementById('sentiment-result').replaceChildren()")
        _submit(page, "#sentiment-form")
        assert _wait(page, "#sentiment-label")[0].text in ("negative", "neutral", "positive")
    finally:
        set_user_config("Ingress", {"api_keys_env": None, "api_keys_file": None})
