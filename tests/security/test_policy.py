"""The policy table (role × action) is the one rule: navigation, pages, services, export
and report agree with it (the repository's agreement is test_access_matrix.py).

- navigation: for every role × page, the page is in the role's menu iff the policy lets
  the role do the page's action;
- pages: each page's ``session.require`` asks for the action its menu entry names, and
  ``session.require`` admits exactly the roles the policy allows (run in Streamlit);
- services, export and report: each entry point refuses, before it touches the
  repository, exactly the roles the policy denies;
- no module decides on a role name itself.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sec_util import ROOT, photo_bytes

from vein_tracker import export, policy, report, services
from vein_tracker.errors import AccessDenied
from vein_tracker.policy import POLICY, ROLE_LABELS, ROLES, Action
from vein_tracker.storage import SYSTEM_ACTOR, Actor
from vein_tracker.ui import session, shell

UI = ROOT / "vein_tracker" / "ui"


def actor_of(role: str) -> Actor:
    return Actor(user_id=7, username=f"someone.{role}", role=role, client_id=3)


# ---------------------------------------------------------------------- the table


def test_the_table_has_a_row_per_action_and_names_only_known_roles() -> None:
    assert set(POLICY) == set(Action)
    assert set(policy.ACTION_TEXT) == set(Action)
    assert set(ROLE_LABELS) == set(ROLES)
    for action, roles in POLICY.items():
        assert roles <= set(ROLES), action
        assert roles, f"{action}: nobody may do it"
    # Every role can do something, so every role has a menu.
    assert all(policy.actions_for(role) for role in ROLES)


def test_table_text_and_refusals_follow_the_table() -> None:
    lines = policy.table().splitlines()
    assert lines[0].split() == ["action", *ROLES]
    for line in lines[1:]:
        name, *marks = line.split()
        action = Action(name)
        assert [m == "x" for m in marks] == [policy.allows(r, action) for r in ROLES]
    assert policy.refusal(Action.MANAGE_USERS) == (
        "Only administrator accounts can manage user accounts."
    )
    with pytest.raises(AccessDenied, match="^Only administrator and marketing accounts can"):
        policy.require(actor_of("client"), Action.EXPORT_MARKETING)


def test_local_operator_may_do_every_action_and_nobody_signed_out_any() -> None:
    for action in Action:
        assert policy.permits(SYSTEM_ACTOR, action)
        assert not policy.allows(None, action)


def test_admin_runs_the_installation_and_sees_no_clinical_record() -> None:
    """The decision the table records: health data is for the treating staff and the
    client; the admin manages accounts, the audit log, settings and the export."""
    assert policy.actions_for("admin") == {
        Action.MANAGE_USERS,
        Action.VIEW_AUDIT,
        Action.MANAGE_SETTINGS,
        Action.EXPORT_MARKETING,
        Action.CHANGE_OWN_PASSWORD,
    }


# ---------------------------------------------------------------------- navigation


@pytest.mark.parametrize("role", ROLES)
def test_navigation_is_the_table(role: str) -> None:
    registered = [url for _file, _title, url, _icon in shell.entries_for(role)]
    for page in (*shell.NAV_PAGES, shell.ACCOUNT):
        assert (page.url_path in registered) == policy.allows(role, page.action), (role, page)
    # The plain view other code reads says the same.
    assert [f for f, *_ in shell.PAGES[role]] == [
        p.file for p in shell.NAV_PAGES if policy.allows(role, p.action)
    ]


def test_signed_out_and_password_change_get_one_page() -> None:
    assert shell.entries_for(None) == [shell.SIGN_IN_PAGE]
    for role in ROLES:
        assert shell.entries_for(role, must_change_password=True) == [shell.ACCOUNT_PAGE]


# ---------------------------------------------------------------------- pages


def _page_scripts() -> list[str]:
    """Every page script of vein_tracker/ui that checks who may see it."""
    return sorted(p.name for p in UI.glob("*.py") if "session.require(" in p.read_text())


class _Asked(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, action: Action) -> None:
        self.action = action


def test_every_guarded_page_is_in_the_navigation() -> None:
    declared = {p.file for p in (*shell.NAV_PAGES, shell.ACCOUNT)}
    assert set(_page_scripts()) == declared


@pytest.mark.parametrize("page", [*shell.NAV_PAGES, shell.ACCOUNT], ids=lambda p: p.file)
def test_each_page_requires_its_menu_action_first(
    page: shell.NavPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's first act is ``session.require(<the action of its menu entry>)``."""

    def asked(action: Action) -> Actor:
        raise _Asked(action)

    monkeypatch.setattr(session, "require", asked)
    module = importlib.import_module(f"vein_tracker.ui.{Path(page.file).stem}")
    with pytest.raises(_Asked) as info:
        module.render()
    assert info.value.action is page.action


def _require_script() -> None:
    import streamlit as st

    from vein_tracker.policy import Action
    from vein_tracker.ui import session

    action = Action(st.session_state["vt_test_action"])
    session.require(action)
    st.write(f"admitted:{action.value}")


def test_session_admits_exactly_the_roles_of_the_table() -> None:
    for role in ROLES:
        for action in Action:
            assert session.admits(actor_of(role), action) == policy.allows(role, action)
    for action in Action:
        # Signed out, or a browser session claiming to be the local operator: nothing.
        assert not session.admits(None, action)
        assert not session.admits(SYSTEM_ACTOR, action)


def _run_require(actor: Actor, action: Action) -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_require_script, default_timeout=60)
    at.session_state["vt_actor"] = actor
    at.session_state["vt_test_action"] = action.value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("role", ROLES)
def test_session_require_stops_the_page_unless_admitted(role: str) -> None:
    """In a script run: one action the role may do and one it may not."""
    allowed = sorted(policy.actions_for(role))[0]
    denied = sorted(set(Action) - policy.actions_for(role))[0]
    at = _run_require(actor_of(role), allowed)
    assert [m.value for m in at.markdown] == [f"admitted:{allowed.value}"]
    assert not at.error
    at = _run_require(actor_of(role), denied)
    assert not at.markdown
    assert [e.value for e in at.error] == ["This page is not available to your account."]


def test_session_require_refuses_a_browser_session_claiming_the_local_operator() -> None:
    at = _run_require(SYSTEM_ACTOR, Action.VIEW_AUDIT)
    assert [e.value for e in at.error] == ["This page is not available to your account."]
    assert not at.markdown


# ---------------------------------------------------------------------- services


class _Reached(Exception):  # noqa: N818 - a signal, not an error
    """The entry point got past its own check and asked the repository for something."""


class _NoRepository:
    def __getattr__(self, name: str) -> Any:
        if name == "log_refusal":  # issue 24: recording the refusal is not getting past it
            return lambda *args, **kwargs: None
        raise _Reached(name)


#: The entry points that check the policy themselves before they do costly work, and
#: the action each serves.
ENTRY_POINTS: dict[str, tuple[Action, Callable[[Any, Actor], Any]]] = {
    "services.analyze_pair": (
        Action.ANALYSE,
        lambda repo, a: services.analyze_pair(
            repo, a, baseline_photo_id=1, followup_photo_id=2, params=services.AnalysisParams()
        ),
    ),
    "services.store_upload": (
        Action.UPLOAD_PHOTOS,
        lambda repo, a: services.store_upload(
            repo, a, visit_id=1, area_id=1, data=photo_bytes(9), filename="x.jpg"
        ),
    ),
    "services.marketing_export": (
        Action.EXPORT_MARKETING,
        lambda repo, a: services.marketing_export(repo, a, [], channel="website"),
    ),
    "services.progress_report_pdf": (
        Action.PROGRESS_REPORT,
        lambda repo, a: services.progress_report_pdf(repo, a, 3),
    ),
    "export.run_export": (
        Action.EXPORT_MARKETING,
        lambda repo, a: export.run_export(repo, a, [], channel="website"),
    ),
    "report.collect_report_data": (
        Action.PROGRESS_REPORT,
        lambda repo, a: report.collect_report_data(repo, a, 3),
    ),
    "report.build_report_pdf": (
        Action.PROGRESS_REPORT,
        lambda repo, a: report.build_report_pdf(repo, a, 3),
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_points_refuse_exactly_the_roles_the_table_denies(name: str, role: str) -> None:
    action, call = ENTRY_POINTS[name]
    expected = _Reached if policy.allows(role, action) else AccessDenied
    with pytest.raises(expected) as info:
        call(_NoRepository(), actor_of(role))
    if expected is AccessDenied:
        assert str(info.value) == policy.refusal(action)


# ---------------------------------------------------------------------- one place


_ROLE_TEST = re.compile(r"\.role\s*(==|!=|\bin\b|\bnot in\b)|\brole\s*(==|!=)\s*[\"']")
#: Where a role name may still be compared: the table itself, and the data rules of
#: accounts, which are not access rules (a client account links a client record: the
#: actor's validation, the account records, the demo seed and the users form; the first
#: admin). A line comparing an account's role with the actor's (the stored account is
#: unchanged) is no decision either.
_ALLOWED = {
    "vein_tracker/policy.py",
    "vein_tracker/storage/info.py",
    "vein_tracker/storage/repo/accounts.py",
    "vein_tracker/storage/seed.py",
    "vein_tracker/ui/users.py",
}


def test_no_module_decides_on_a_role_name_itself() -> None:
    found = []
    for path in sorted((ROOT / "vein_tracker").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in _ALLOWED:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if _ROLE_TEST.search(code) and code.count(".role") < 2:
                found.append(f"{rel}:{n}: {line.strip()}")
    assert found == [], "role checks outside vein_tracker.policy:\n" + "\n".join(found)
