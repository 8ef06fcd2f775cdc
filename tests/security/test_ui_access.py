"""Every page × every role through the app (AppTest), and tampering with URL and session state.

- each role gets exactly its pages; every other page of any role cannot be opened;
- a client reaches only its own data: through navigation, a ``?client=`` URL parameter
  naming another client, the client choice planted in session state, and the downloads;
- marketing sees consented pairs only and no identity;
- an anonymous session sees only the sign-in form, whatever the URL;
- a session whose stored account was tampered with (role raised, client swapped) is
  signed out instead of being trusted.
"""

from __future__ import annotations

from typing import Any

import pytest
from sec_util import ROOT

from tests.conftest import use_data_dir
from vein_tracker.storage import Actor
from vein_tracker.ui import shell

APP = ROOT / "app.py"
USERS = {"admin": "adam", "aesthetician": "anna", "marketing": "mia", "client": "cara"}
ALL_PAGES = sorted({f for pages in shell.PAGES.values() for f, *_ in pages} | {"account.py"})


@pytest.fixture(scope="module")
def ui_clinic(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from vt_ui_seed import seed_temp_clinic

    return seed_temp_clinic(tmp_path_factory, "ui_access")


@pytest.fixture
def app_env(ui_clinic: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_data_dir(monkeypatch, ui_clinic.data_dir)
    return ui_clinic


def _texts(at: Any) -> str:
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    for kind in ("error", "warning", "info", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [str(df.value) for df in at.dataframe]
    parts += [" ".join(map(str, s.options)) for s in at.selectbox]
    parts += [str(t.value) for t in at.text_input]
    return "\n".join(parts)


def _signed_in(username: str, *, query: dict[str, str] | None = None) -> Any:
    from streamlit.testing.v1 import AppTest
    from vt_ui_seed import PASSWORD

    at = AppTest.from_file(str(APP), default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    at.text_input[0].input(username)
    at.text_input[1].input(PASSWORD)
    at.button[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _open(at: Any, file: str) -> Any:
    at.switch_page(f"vein_tracker/ui/{file}")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("role", sorted(USERS))
def test_each_role_reaches_exactly_its_pages(app_env: Any, role: str) -> None:
    at = _signed_in(USERS[role])
    own = {f for f, *_ in shell.PAGES[role]} | {"account.py"}
    for file in ALL_PAGES:
        if file in own:
            _open(at, file)
            assert "Please sign in" not in _texts(at)
        else:
            with pytest.raises(ValueError, match="navigation page"):
                at.switch_page(f"vein_tracker/ui/{file}")


@pytest.mark.parametrize("query", [{}, {"client": "B"}, {"client": "-1"}, {"client": "x' OR 1=1"}])
def test_client_sees_only_own_data_whatever_the_url_or_state(app_env: Any, query: dict) -> None:
    c = app_env
    q = {k: (str(c.client_b) if v == "B" else v) for k, v in query.items()}
    at = _signed_in("cara", query=q)
    # The client choice of the staff pages, planted in session state.
    at.session_state["vt_client_id"] = c.client_b
    at.session_state["vt_client_select"] = c.client_b
    for file in ("portal.py", "account.py"):
        _open(at, file)
        text = _texts(at)
        assert "Dora" not in text
        assert "dora" not in text
    _open(at, "portal.py")
    text = _texts(at)
    assert "My progress" in text
    # The PDF download is built for the signed-in client only.
    keys = [b.key for b in at.get("download_button")]
    assert all(k == f"pdf_{c.client_a}" for k in keys if k and k.startswith("pdf_")), keys


def test_anonymous_sees_only_the_sign_in_form_whatever_the_url(app_env: Any) -> None:
    from streamlit.testing.v1 import AppTest

    for query in ({}, {"client": str(app_env.client_a)}, {"page": "review"}):
        at = AppTest.from_file(str(APP), default_timeout=120)
        for k, v in query.items():
            at.query_params[k] = v
        at.run()
        assert not at.exception
        assert [w.label for w in at.text_input] == ["User name", "Password"]
        text = _texts(at)
        assert "Cara" not in text
        assert "Dora" not in text
        assert len(at.get("download_button")) == 0
        assert len(at.get("imgs")) == 0


@pytest.mark.parametrize(
    "forge",
    ["role_admin", "other_client", "unknown_user"],
)
def test_tampered_session_actor_is_signed_out(app_env: Any, forge: str) -> None:
    c = app_env
    at = _signed_in("cara")
    me = at.session_state["vt_actor"]
    forged = {
        "role_admin": Actor(user_id=me.user_id, username=me.username, role="admin"),
        "other_client": Actor(
            user_id=me.user_id, username=me.username, role="client", client_id=c.client_b
        ),
        "unknown_user": Actor(user_id=99999, username="ghost", role="admin"),
    }[forge]
    at.session_state["vt_actor"] = forged
    at.run()
    assert not at.exception
    assert [w.label for w in at.text_input] == ["User name", "Password"]
    assert "Dora" not in _texts(at)


def test_marketing_sees_only_consented_pairs_and_no_identity(app_env: Any) -> None:
    from vt_ui_seed import PASSWORD, open_test_repo

    at = _signed_in("mia")
    _open(at, "marketing.py")
    text = _texts(at)
    for name in ("Cara", "Dora", "Client", "Other"):
        assert name not in text
    repo = open_test_repo(app_env.data_dir)
    try:
        mia = repo.authenticate("mia", PASSWORD)
        pairs = repo.list_marketing_pairs(mia, "website")
    finally:
        repo.close()
    # Only client A consented: every listed pair is hers.
    assert pairs
    assert {p.followup_photo_id for p in pairs} <= {app_env.followup_a}
