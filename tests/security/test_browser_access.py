"""The real browser (Playwright + Debian's Chromium) against ``streamlit run app.py``.

A few access checks that only a browser can make: page URLs typed by hand, a
``?client=`` parameter naming another client, and a client whose name is a script tag
(no dialog may open, the name shows as text). Server, Chromium and page helpers are
those of tests/ui/test_browser.py (tests/browser_util.py, tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.browser_util import body_text, settle, sign_in, sign_in_page_text, streamlit_app

pytestmark = pytest.mark.browser

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, int]]:
    from vt_ui_seed import PASSWORD, open_test_repo, seed_temp_clinic

    seeded = seed_temp_clinic(tmp_path_factory, "sec-browser")
    repo = open_test_repo(seeded.data_dir)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        evil = repo.create_client(anna, name=XSS).id
    finally:
        repo.close()
    log = tmp_path_factory.mktemp("sec-browser-log") / "streamlit.log"
    with streamlit_app(seeded.data_dir, log) as base:
        yield base, seeded, evil


@pytest.fixture
def page(page_factory: Callable[..., Any]) -> Any:
    """A page in a fresh context that records (and dismisses) every JavaScript dialog."""
    p = page_factory()
    dialogs: list[str] = []
    p.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    p.vt_dialogs = dialogs
    return p


def _sign_in(page: Any, base: str, username: str, path: str = "") -> None:
    """Open ``path`` (a fresh browser session) and sign in there."""
    from vt_ui_seed import PASSWORD

    sign_in(page, base, username, PASSWORD, path)


def test_anonymous_urls_show_only_the_sign_in_form(server: Any, page: Any) -> None:

    base, seeded, _ = server
    for path in ("", "review", "clients", "users", "my-progress", f"?client={seeded.client_a}"):
        page.goto(f"{base}/{path}")
        settle(page)
        text = sign_in_page_text(page)
        assert "Cara" not in text
        assert "Dora" not in text


def test_client_typed_urls_and_params_show_only_own_data(server: Any, page: Any) -> None:
    base, seeded, _ = server
    _sign_in(page, base, "cara")
    for path in (
        "review",
        "clients",
        "users",
        "marketing",
        f"my-progress?client={seeded.client_b}",
    ):
        page.goto(f"{base}/{path}")
        settle(page)
        text = body_text(page)
        assert "Dora" not in text
        assert "Other" not in text
        # Signed in again on a fresh load? Either way: only the portal or the sign-in form.
        assert "Clients" not in [h.inner_text() for h in page.locator("h1").all()]


def test_script_name_is_text_in_the_browser(server: Any, page: Any) -> None:
    base, _, evil = server
    _sign_in(page, base, "anna", f"clients?client={evil}")
    assert page.vt_dialogs == []
    assert page.locator("script:has-text('alert(1)')").count() == 0
    # Shown literally: in the client picker and as the editable name (input values).
    values = page.evaluate(
        "Array.from(document.querySelectorAll('input, textarea')).map(e => e.value)"
    )
    assert XSS in values or any(XSS in str(v) for v in values) or XSS in body_text(page), values
