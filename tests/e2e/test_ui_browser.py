"""The web UI in a real headless Chromium, against gunicorn, on an imported image.

Screenshots are saved under REGISTRY_UI_SCREENSHOTS when it is set, else
under the test's tmp folder; their paths are printed.
"""

import os
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import DIRECT, missing, need
from tests.e2e.test_docker_pull import save_and_forget
from tests.e2e.test_hostile_http import token
from tests.e2e.test_login import PASSWORD, USER, private_registry

SCREENSHOTS_VARIABLE = "REGISTRY_UI_SCREENSHOTS"
WAIT_SECONDS = 30
PHONE_SIZE = (390, 844)
DESKTOP_SIZE = (1280, 900)
# Chromium may resolve no host but the loopback server.
HOST_RULES = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
CLIPBOARD_PERMISSIONS = ["clipboardReadWrite", "clipboardSanitizedWrite"]


@pytest.fixture(scope="module")
def webdriver_module():
    """Return Selenium's webdriver package, or skip (fail in CI) without it."""
    try:
        from selenium import webdriver
    except ImportError:
        missing("selenium is not installed")
    return webdriver


@pytest.fixture
def browser(webdriver_module):
    """Start Debian's chromium headless through chromedriver; quit it afterwards."""
    options = webdriver_module.ChromeOptions()
    options.binary_location = need("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        f"--host-resolver-rules={HOST_RULES}",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--window-size={DESKTOP_SIZE[0]},{DESKTOP_SIZE[1]}",
    ):
        options.add_argument(argument)
    service = webdriver_module.ChromeService(executable_path=need("chromedriver"))
    driver = webdriver_module.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path):
    """Return a function saving the browser's screenshot under a name; prints it."""
    folder = Path(os.environ.get(SCREENSHOTS_VARIABLE) or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def save(driver, name):
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), path
        print(f"screenshot: {path}")
        return path

    return save


@pytest.fixture
def seeded(registry_server, dockerd, busybox_image, tmp_path):
    """Import the busybox image, saved by docker, as ui-demo:latest."""
    archive = save_and_forget(dockerd, busybox_image, tmp_path / "img.tar")
    registry_server.flask("registry", "import", str(archive), "ui-demo:latest")
    return registry_server


@pytest.fixture
def private_seeded(dockerd, busybox_image, tmp_path):
    """A registry with an account, holding the busybox image as ui-demo:latest."""
    archive = save_and_forget(dockerd, busybox_image, tmp_path / "img.tar")
    with private_registry(tmp_path / "private") as server:
        server.flask("registry", "import", str(archive), "ui-demo:latest")
        yield server


def sign_in(driver, server):
    """Sign in through the form as the private registry's account."""
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/ui/sign-in")
    driver.find_element(By.ID, "username").send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form.sign-in button"))


def overflow_of(driver):
    """Return how many pixels the page or any table box is wider than it shows."""
    script = """
        const boxes = [document.documentElement];
        boxes.push(...document.querySelectorAll(".scroll"));
        return Math.max(...boxes.map(box => box.scrollWidth - box.clientWidth));
    """
    return driver.execute_script(script)


def text_of(driver):
    """Return the visible text of the page's body."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def click_link(driver, text):
    """Follow the link showing ``text`` and wait for the next page."""
    from selenium.webdriver.common.by import By

    click_and_wait(driver, driver.find_element(By.LINK_TEXT, text))


def click_and_wait(driver, element):
    """Click ``element`` and wait until the page it was on has gone."""
    from selenium.webdriver.support.ui import WebDriverWait

    element.click()
    WebDriverWait(driver, WAIT_SECONDS).until(lambda _: detached(element))


def detached(element):
    """Tell whether ``element`` has left the document, as the page changed.

    Asked in the middle of the change, chromium may say that the element's
    node "does not belong to the document" rather than that it is stale.
    """
    from selenium.common.exceptions import (
        StaleElementReferenceException,
        WebDriverException,
    )

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise
    return False


def test_browser_finds_the_image_its_layers_and_pull_command(
    browser, seeded, screenshots
):
    browser.get(seeded.url + "/")
    assert "ui-demo" in text_of(browser)
    screenshots(browser, "repositories")

    click_link(browser, "ui-demo")
    assert f"docker pull {seeded.host}/ui-demo:latest" in text_of(browser)
    screenshots(browser, "repository")

    click_link(browser, "latest")
    page = text_of(browser)
    assert '["/bin/busybox","cat","/greeting.txt"]' in page.replace(" ", "")
    assert "Layers" in page and "COPY" in page
    screenshots(browser, "manifest")

    click_link(browser, "Storage")
    assert "gc would free" in text_of(browser) and "ui-demo" in text_of(browser)
    screenshots(browser, "storage")


def test_copy_button_puts_the_pull_command_on_the_clipboard(browser, seeded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": seeded.url, "permissions": CLIPBOARD_PERMISSIONS},
    )
    browser.get(seeded.url + "/ui/repositories/ui-demo")
    command = f"docker pull {seeded.host}/ui-demo:latest"
    button = browser.find_element(By.CSS_SELECTOR, f'button[data-copy="{command}"]')
    button.click()

    WebDriverWait(browser, WAIT_SECONDS).until(lambda _: button.text == "Copied")
    pasted = browser.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0])"
    )
    assert pasted == command


def test_phone_in_dark_mode_gets_cards_on_a_dark_page(browser, seeded, screenshots):
    from selenium.webdriver.common.by import By

    browser.set_window_size(*PHONE_SIZE)
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    browser.get(seeded.url + "/ui/repositories/ui-demo")
    header = browser.find_element(By.CSS_SELECTOR, "table.list thead")
    background = browser.execute_script(
        "return getComputedStyle(document.body).backgroundColor"
    )
    screenshots(browser, "repository-phone-dark")

    assert not header.is_displayed()
    assert background == "rgb(20, 23, 28)"


def test_sign_in_form_posts_with_its_token(browser, seeded):
    from selenium.webdriver.common.by import By

    browser.get(seeded.url + "/ui/sign-in")
    browser.find_element(By.ID, "username").send_keys("nobody")
    browser.find_element(By.ID, "password").send_keys("wrong")
    button = browser.find_element(By.CSS_SELECTOR, "form.sign-in button")
    click_and_wait(browser, button)

    # The form token was accepted, whichever worker answered; the account was not.
    assert "wrong username or password" in text_of(browser)


def test_signed_in_desktop_shows_the_delete_column_without_scrolling(
    browser, private_seeded, screenshots
):
    from selenium.webdriver.common.by import By

    sign_in(browser, private_seeded)
    browser.get(private_seeded.url + "/ui/repositories/ui-demo")
    screenshots(browser, "repository-signed-in")

    delete = browser.find_element(By.LINK_TEXT, "Delete")
    right_edge = delete.rect["x"] + delete.rect["width"]
    assert overflow_of(browser) <= 0
    assert right_edge <= browser.execute_script("return window.innerWidth")


def test_phone_manifest_page_keeps_the_media_type_on_screen(
    browser, seeded, screenshots
):
    browser.set_window_size(*PHONE_SIZE)
    browser.get(seeded.url + "/ui/manifests/ui-demo/latest")
    screenshots(browser, "manifest-phone")

    assert "application/vnd.docker.distribution.manifest.v2+json" in text_of(browser)
    assert overflow_of(browser) <= 0


def test_refused_page_offers_sign_in_and_leads_back(browser, tmp_path, screenshots):
    from selenium.webdriver.common.by import By

    settings = {"REGISTRY_ANONYMOUS_PULL": "false"}
    with private_registry(tmp_path / "closed", **settings) as server:
        browser.get(server.url + "/ui/repositories/team/app")
        page = text_of(browser)
        screenshots(browser, "error-denied")
        assert "403 Forbidden" in page and "DENIED" in page
        assert "Back to the repositories" in page

        click_and_wait(browser, browser.find_element(By.CLASS_NAME, "sign-in-link"))
        browser.find_element(By.ID, "username").send_keys(USER)
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        click_and_wait(
            browser, browser.find_element(By.CSS_SELECTOR, "form.sign-in button")
        )

        page = text_of(browser)
        assert browser.current_url == server.url + "/ui/repositories/team/app"
        assert "404 Not Found" in page and f"Sign out {USER}" in page
        assert not browser.find_elements(By.CLASS_NAME, "sign-in-link")


def test_a_tag_of_the_longest_length_leaves_the_table_readable(
    browser, seeded, screenshots
):
    from selenium.webdriver.common.by import By

    long_tag = "t" * 128
    copy_tag(seeded, "ui-demo", "latest", long_tag)
    browser.set_window_size(1200, 900)
    browser.get(seeded.url + "/ui/repositories/ui-demo")
    screenshots(browser, "repository-long-tag")

    for row in browser.find_elements(By.CSS_SELECTOR, "table.list tr.tag"):
        for label in ("Digest", "Type", "Size", "Created"):
            cell = row.find_element(By.CSS_SELECTOR, f'td[data-label="{label}"]')
            assert cell.is_displayed() and cell.size["width"] >= 40, label
    assert overflow_of(browser) == 0


def copy_tag(server, name, tag, new_tag):
    """Tag the manifest ``name:tag`` also as ``new_tag``, over the API."""
    authorization = f"Bearer {token(server, f'repository:{name}:pull,push')}"
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    request = urllib.request.Request(
        f"{server.url}/v2/{name}/manifests/{tag}",
        headers={"Authorization": authorization, "Accept": accept},
    )
    with DIRECT.open(request, timeout=30) as response:
        body, media_type = response.read(), response.headers["Content-Type"]
    request = urllib.request.Request(
        f"{server.url}/v2/{name}/manifests/{new_tag}",
        data=body,
        method="PUT",
        headers={"Authorization": authorization, "Content-Type": media_type},
    )
    with DIRECT.open(request, timeout=30) as response:
        assert response.status == 201
