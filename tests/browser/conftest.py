"""Browser tests: the real server on loopback (a thread in this process) over a copy of the tiny
bundle, driven by Playwright through Debian's chromium (never a downloaded browser). No chromium
or no Playwright is a failure, not a skip: CI installs both (.ci/run -> ./dev)."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bundle.photo_predictions import PhotoPredictions
from serving.app import create_app
from serving.settings import ServingSettings
from tests.reliability.server import serve_in_thread
from tests.serving.conftest import READ_TOKEN, TOKEN
from tests.serving.conftest import tiny_artifacts as tiny_artifacts  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("VITRINE_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))  # CI keeps them


def chromium_path() -> str:
    path = os.environ.get("VITRINE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium not found: install Debian's chromium (apt-get install chromium) or set VITRINE_CHROMIUM; "
                    "the browser tests never download a browser", pytrace=False)
    return path


@pytest.fixture(scope="module")
def server(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory):
    """(base URL, the app): a private copy of the bundle, one suspect photo planted for the gallery."""
    art = tmp_path_factory.mktemp("browser") / "artifacts"
    shutil.copytree(tiny_artifacts, art)
    app = create_app(ServingSettings(artifacts_dir=art, admin_token=TOKEN, read_token=READ_TOKEN, candidates=50,
                                     demo_shoppers=True))
    with serve_in_thread(app) as base:
        _plant_a_suspect(app)
        yield base, app


def _plant_a_suspect(app) -> None:
    b = app.state.service.bundle
    pred = np.full(b.catalog.n_items, -1, np.int16)
    pred[0] = (b.image_model.class_names.index(b.catalog.category_of(0)) + 1) % len(b.image_model.class_names)
    conf = np.where(pred >= 0, 0.99, 0).astype(np.float32)
    b.photos = PhotoPredictions(pred, conf, np.zeros(b.catalog.n_items, np.float32))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # a missing Playwright fails here, loudly

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A page with its console errors and every request that tried to leave the machine."""

    def __init__(self, browser, base: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r):
            if r.request.url.startswith(base) or r.request.url.startswith("data:"):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()
        self.page.route("**/*", route)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def login(self, base: str, token: str) -> None:
        """The console's login form: the token becomes an HttpOnly session cookie."""
        self.page.goto(base + "/merch/login")
        self.page.fill("input[name=token]", token)
        self.page.click("form.login button")
        self.page.wait_for_url(base + "/merch")

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], self.outside


@pytest.fixture
def watched(browser, server):
    w = Watched(browser, server[0])
    yield w
    w.page.close()
