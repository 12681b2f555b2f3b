"""A failing browser test leaves a screenshot and the page's HTML behind, named in the test report."""

from __future__ import annotations

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    browser = item.funcargs.get("browser") if hasattr(item, "funcargs") else None
    if report.when != "call" or not report.failed or browser is None:
        return
    folder = browser.artifacts_dir
    try:
        screenshot = folder / f"{item.name}.png"
        browser.save_screenshot(str(screenshot))
        page = folder / f"{item.name}.html"
        page.write_text(browser.page_source)
        report.sections.append(("browser", f"at {browser.current_url}\nscreenshot: {screenshot}\npage: {page}"))
    except Exception as error:  # the browser may be what broke
        report.sections.append(("browser", f"no screenshot: {error!r}"))
