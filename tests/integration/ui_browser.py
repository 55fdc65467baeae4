"""Drives Debian's headless Chromium through Selenium (python3-selenium,
chromium-driver) over the exporter's live view, for test_ui.py, which
runs it with /usr/bin/python3 (the interpreter that has Selenium).

usage: ui_browser.py URL SERVICE ARTIFACT_DIR

Waits for a trace of SERVICE in the recent traces, opens it, checks its
waterfall, clicks its server span and checks the attributes shown; saves
a screenshot at each step. Prints "ok ..." and exits 0, or says what was
missing and exits 1.
"""

import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

url, service, art = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(art, exist_ok=True)
opts = webdriver.ChromeOptions()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
          "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"):
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def until(what, fn, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = fn()
            if v:
                return v
        except (StaleElementReferenceException, WebDriverException):
            pass  # the page re-renders every two seconds
        time.sleep(0.2)
    driver.save_screenshot(os.path.join(art, "failed.png"))
    print("missing: " + what)
    driver.quit()
    sys.exit(1)


try:
    driver.get(url)
    until("the services table", lambda: driver.find_elements(
        By.CSS_SELECTOR, '#services tr.service[data-service="%s"]' % service))

    def trace_row():
        for r in driver.find_elements(By.CSS_SELECTOR, "#recent tr.trace"):
            if r.text.startswith(service + ":"):
                return r
        return None
    row = until("a recent trace of " + service, trace_row)
    trace_id = row.get_attribute("data-trace-id")
    driver.save_screenshot(os.path.join(art, "1-traces.png"))

    def opened():
        r = driver.find_element(By.CSS_SELECTOR, '#recent tr.trace[data-trace-id="%s"]' % trace_id)
        r.click()
        return len(driver.find_elements(By.CSS_SELECTOR, "#waterfall .span-row")) >= 3
    until("the trace's waterfall (3 spans)", opened)
    driver.save_screenshot(os.path.join(art, "2-waterfall.png"))
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#waterfall .span-label")]

    def span_opened():
        for r in driver.find_elements(By.CSS_SELECTOR, "#waterfall .span-row"):
            if " server " in " " + r.text + " ":
                r.click()
                break
        keys = driver.find_elements(By.CSS_SELECTOR, "#span-attributes td.attr-key")
        return {k.text: k.find_element(By.XPATH, "following-sibling::td").text for k in keys}
    attrs = until("the server span's attributes", span_opened)
    driver.save_screenshot(os.path.join(art, "3-span.png"))
    if attrs.get("http.request.method") != '"GET"' or "url.path" not in attrs:
        print("attributes shown: %r" % attrs)
        sys.exit(1)
    print("ok trace %s spans %r attributes %s" % (trace_id, labels, sorted(attrs)))
finally:
    driver.quit()
