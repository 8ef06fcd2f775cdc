"""Every public Repository method × every role × own and other client's records.

Who is allowed is read from the policy table (:mod:`vein_tracker.policy`) for the
action each method serves, with the owner and consent rules on top: so this proves the
repository agrees with the table, on SQLite and on PostgreSQL. The list of methods is
read from the ``Repository`` class itself: a new public method without a rule here
fails :func:`test_every_public_method_has_a_rule`. Actors: admin, aesthetician, the
client whose record it is (``own``), another client (``other``), marketing, a
deactivated admin account (``inactive``) and a forged actor for an account that does
not exist (``anonymous``). Allowed calls must succeed; every other call must raise
``AccessDenied`` and leave the records unchanged.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from review_rules import prepare_review, review_rules
from sec_util import PASSWORD, photo_bytes, row_counts
from workflow_rules import prepare_workflow, workflow_rules

from tests.conftest import BACKENDS
from vein_tracker.errors import AccessDenied
from vein_tracker.policy import Action, allows
from vein_tracker.storage import SYSTEM_ACTOR, Actor, Repository, Screening

#: The signed-in actors of the matrix and their roles: A's own client account ("own"),
#: B's ("other"). Two more are never allowed anything: a deactivated admin account
#: ("inactive") and a forged actor for an account that does not exist ("anonymous").
ACTORS = {
    "admin": "admin",
    "aesthetician": "aesthetician",
    "own": "client",
    "other": "client",
    "marketing": "marketing",
}
ROLES = (*ACTORS, "inactive", "anonymous")
SIGNED_IN = frozenset(ACTORS)


def may(*actions: Action) -> frozenset[str]:
    """The actors whose role the policy table allows one of ``actions``."""
    return frozenset(n for n, role in ACTORS.items() if any(allows(role, a) for a in actions))


def reads(owner: str) -> frozenset[str]:
    """Who reads the clinical records of ``owner``'s client: whoever may see every
    client's records, and the owner if its role may see its own."""
    mine = {owner} if allows(ACTORS[owner], Action.VIEW_OWN_RECORDS) else set()
    return may(Action.VIEW_CLIENT_RECORDS) | mine


READ_A = reads("own")
READ_B = reads("other")
EXPORT = may(Action.EXPORT_MARKETING)
USERS = may(Action.MANAGE_USERS)

Op = Callable[[Repository, SimpleNamespace, Actor], Any]
_n = itertools.count()


def _uniq(prefix: str) -> str:
    return f"{prefix}.{next(_n)}"


# method -> list of (case name, call on client A's records, actors allowed by the policy)
RULES: dict[str, list[tuple[str, Op, frozenset[str]]]] = {
    "add_photo": [
        (
            "a",
            lambda r, c, a: r.add_photo(a, c.area_a.id, c.v2.id, photo_bytes(500)),
            may(Action.UPLOAD_PHOTOS),
        )
    ],
    "audit_log": [("all", lambda r, c, a: r.audit_log(a), may(Action.VIEW_AUDIT))],
    "baseline_photo": [("a", lambda r, c, a: r.baseline_photo(a, c.area_a.id), READ_A)],
    "change_password": [
        (
            "self",
            lambda r, c, a: r.change_password(a, PASSWORD, PASSWORD + " new"),
            may(Action.CHANGE_OWN_PASSWORD),
        )
    ],
    "create_area": [
        (
            "a",
            lambda r, c, a: r.create_area(a, c.a.id, side="right", view="medial", region="knee"),
            may(Action.RECORD_VISITS),
        )
    ],
    "create_client": [
        ("new", lambda r, c, a: r.create_client(a, name="New Person"), may(Action.EDIT_CLIENTS))
    ],
    "create_user": [
        (
            "new",
            lambda r, c, a: r.create_user(a, _uniq("new"), "another long pw", "marketing"),
            USERS,
        )
    ],
    "create_visit": [("a", lambda r, c, a: r.create_visit(a, c.a.id), may(Action.RECORD_VISITS))],
    "find_analysis": [
        (
            "a",
            lambda r, c, a: r.find_analysis(
                a, baseline_photo_id=c.p1.id, followup_photo_id=c.p2.id
            ),
            READ_A,
        )
    ],
    "get_analysis": [
        (
            "a",
            lambda r, c, a: r.get_analysis(a, c.p1.id, c.p2.id, params={"sensitivity": 0.5}),
            READ_A,
        )
    ],
    "get_analysis_by_id": [("a", lambda r, c, a: r.get_analysis_by_id(a, c.analysis.id), READ_A)],
    "get_area": [("a", lambda r, c, a: r.get_area(a, c.area_a.id), READ_A)],
    "get_client": [("a", lambda r, c, a: r.get_client(a, c.a.id), READ_A)],
    "get_photo": [
        ("a", lambda r, c, a: r.get_photo(a, c.p1.id), READ_A),
        # Exporters read photos only through a channel the client consented to: A did
        # for the website, B for nothing.
        ("a_website", lambda r, c, a: r.get_photo(a, c.p1.id, channel="website"), READ_A | EXPORT),
        ("b_website", lambda r, c, a: r.get_photo(a, c.pb.id, channel="website"), READ_B),
    ],
    "get_photo_bytes": [
        ("a", lambda r, c, a: r.get_photo_bytes(a, c.p1.id), READ_A),
        (
            "a_website",
            lambda r, c, a: r.get_photo_bytes(a, c.p1.id, channel="website"),
            READ_A | EXPORT,
        ),
        ("a_print", lambda r, c, a: r.get_photo_bytes(a, c.p1.id, channel="print"), READ_A),
        ("b_social", lambda r, c, a: r.get_photo_bytes(a, c.pb.id, channel="social"), READ_B),
    ],
    # Anyone reads their own account; whoever manages users, every account.
    "get_user": [("client_a", lambda r, c, a: r.get_user(a, c.client_a.user_id), USERS | {"own"})],
    "get_visit": [("a", lambda r, c, a: r.get_visit(a, c.v1.id), READ_A)],
    "invite_user": [("new", lambda r, c, a: r.invite_user(a, _uniq("inv"), "aesthetician"), USERS)],
    "list_analyses": [("a", lambda r, c, a: r.list_analyses(a, c.area_a.id), READ_A)],
    "list_areas": [("a", lambda r, c, a: r.list_areas(a, c.a.id), READ_A)],
    "list_audit": [("all", lambda r, c, a: r.list_audit(a), may(Action.VIEW_AUDIT))],
    # Clients may list, but see only themselves (checked in the leak test below).
    "list_clients": [
        (
            "all",
            lambda r, c, a: r.list_clients(a),
            may(Action.VIEW_CLIENT_RECORDS, Action.VIEW_OWN_RECORDS),
        )
    ],
    "list_consents": [("a", lambda r, c, a: r.list_consents(a, c.a.id), READ_A)],
    "list_marketing_pairs": [
        ("website", lambda r, c, a: r.list_marketing_pairs(a, "website"), EXPORT)
    ],
    "list_photos": [
        ("client_a", lambda r, c, a: r.list_photos(a, client_id=c.a.id), READ_A),
        ("area_a", lambda r, c, a: r.list_photos(a, area_id=c.area_a.id), READ_A),
        ("visit_1", lambda r, c, a: r.list_photos(a, visit_id=c.v1.id), READ_A),
    ],
    "list_stale_analyses": [("all", lambda r, c, a: r.list_stale_analyses(a), may(Action.ANALYSE))],
    "list_unanalysed_pairs": [
        ("all", lambda r, c, a: r.list_unanalysed_pairs(a), may(Action.ANALYSE))
    ],
    "list_users": [("all", lambda r, c, a: r.list_users(a), USERS)],
    "list_visits": [("a", lambda r, c, a: r.list_visits(a, c.a.id), READ_A)],
    "load_analysis_masks": [("a", lambda r, c, a: r.load_analysis_masks(a, c.analysis.id), READ_A)],
    "load_photo": [
        ("a", lambda r, c, a: r.load_photo(a, c.p2.id), READ_A),
        ("a_website", lambda r, c, a: r.load_photo(a, c.p2.id, channel="website"), READ_A | EXPORT),
    ],
    "log_event": [
        (
            "report_a",
            lambda r, c, a: r.log_event(a, "report", client_id=c.a.id),
            may(Action.PROGRESS_REPORT) & READ_A,
        ),
        ("export", lambda r, c, a: r.log_event(a, "export", detail={"n": 0}), EXPORT),
        ("logout", lambda r, c, a: r.log_event(a, "logout"), SIGNED_IN),
    ],
    "marketing_consent_valid": [
        ("a", lambda r, c, a: r.marketing_consent_valid(a, c.a.id, "website"), READ_A | EXPORT)
    ],
    "marketing_pairs": [("website", lambda r, c, a: r.marketing_pairs(a, "website"), EXPORT)],
    "recheck_marketing_pairs": [("none", lambda r, c, a: r.recheck_marketing_pairs(a, []), EXPORT)],
    "record_consent": [
        (
            "a",
            lambda r, c, a: r.record_consent(a, c.a.id, kind="treatment_photography"),
            may(Action.MANAGE_CONSENT),
        )
    ],
    "record_export": [
        (
            "none",
            lambda r, c, a: r.record_export(a, [], channel="website", filename="x.zip"),
            EXPORT,
        )
    ],
    "record_screening": [
        (
            "a",
            lambda r, c, a: r.record_screening(a, c.a.id, Screening()),
            may(Action.EDIT_CLIENTS),
        )
    ],
    "reset_password": [("victim", lambda r, c, a: r.reset_password(a, _victim(r, c)), USERS)],
    "revoke_consent": [
        # Fresh extra consents of A are revoked, so A's original ones stay valid.
        (
            "a_treatment",
            lambda r, c, a: r.revoke_consent(a, c.spare_treatment.pop()),
            may(Action.MANAGE_CONSENT),
        ),
        (
            "a_marketing",
            lambda r, c, a: r.revoke_consent(a, c.spare_marketing.pop()),
            may(Action.MANAGE_CONSENT)
            | ({"own"} if allows("client", Action.WITHDRAW_OWN_MARKETING_CONSENT) else set()),
        ),
    ],
    "save_analysis": [
        (
            "a",
            lambda r, c, a: r.save_analysis(
                a, c.p1.id, c.p2.id, params={"s": _uniq("p")}, result={"improvement_pct": 1.0}
            ),
            may(Action.ANALYSE),
        )
    ],
    "search_clients": [
        # Clients may search, but see only themselves (checked in the leak test below).
        (
            "all",
            lambda r, c, a: r.search_clients(a, ""),
            may(Action.VIEW_CLIENT_RECORDS, Action.VIEW_OWN_RECORDS),
        )
    ],
    "set_baseline": [("a", lambda r, c, a: r.set_baseline(a, c.p1.id), may(Action.UPLOAD_PHOTOS))],
    "set_password": [
        ("victim", lambda r, c, a: r.set_password(a, _victim(r, c), "brand new password"), USERS)
    ],
    "set_setting": [
        ("k", lambda r, c, a: r.set_setting(a, "test.key", "v"), may(Action.MANAGE_SETTINGS))
    ],
    "update_area": [
        ("a", lambda r, c, a: r.update_area(a, c.area_a.id, note="n"), may(Action.RECORD_VISITS))
    ],
    "update_client": [
        ("a", lambda r, c, a: r.update_client(a, c.a.id, phone="123"), may(Action.EDIT_CLIENTS))
    ],
    "update_photo": [
        (
            "a",
            lambda r, c, a: r.update_photo(a, c.p2.id, px_per_mm=9.0),
            may(Action.UPLOAD_PHOTOS),
        )
    ],
    "update_user": [
        ("victim", lambda r, c, a: r.update_user(a, _victim(r, c), active=False), USERS)
    ],
    "update_visit": [
        ("a", lambda r, c, a: r.update_visit(a, c.v1.id, notes="x"), may(Action.RECORD_VISITS))
    ],
    "valid_consent": [
        (
            "a_treatment",
            lambda r, c, a: r.valid_consent(a, c.a.id, "treatment_photography"),
            READ_A,
        ),
        (
            "a_marketing",
            lambda r, c, a: r.valid_consent(a, c.a.id, "marketing"),
            READ_A | EXPORT,
        ),
    ],
}
# Issue 22's vein maps and rating sessions (H5); the aesthetician rates the prepared ones.
RULES.update(review_rules(may, READ_A, frozenset({"aesthetician"})))
# Issue 24's workflow, web sessions and export ids (H6).
RULES.update(workflow_rules(may, READ_A, SIGNED_IN, frozenset(ROLES)))

#: Public methods that take no acting user, and why that is safe.
NO_ACTOR = {
    "authenticate": "the sign-in itself (credentials are the check)",
    "bootstrap_admin": "start-up only: creates the first admin when none exists",
    "close": "releases the engine",
    "user_count": "a count for the start-up screen, no personal data",
    "referenced_hashes": "fsck/backup of the local operator, not reachable from pages",
    "get_setting": "clinic-wide settings, no personal data",
    "audit_system": "writes an audit row attributed to the system",
    "integrity_check": "database self-check for fsck",
    # Issue 24 (H6): the session cookie's routes; the secret itself is the check.
    "redeem_web_session": "trades a one-time sign-in code (256 bits, 2 minutes, once)",
    "resume_web_session": "the session cookie's token (256 bits; idle, age, account checked)",
    "end_web_session_by_token": "sign-out by the cookie's own token",
}


def _victim(repo: Repository, c: SimpleNamespace) -> int:
    """A throw-away marketing account (made beforehand) to be changed by admin-only calls."""
    del repo
    return int(c.victims.pop())


def public_methods() -> dict[str, inspect.Signature]:
    out = {}
    for name, _ in inspect.getmembers(Repository):
        if name.startswith("_") or isinstance(inspect.getattr_static(Repository, name), property):
            continue
        attr = getattr(Repository, name)
        if callable(attr):
            out[name] = inspect.signature(attr)
    return out


def test_every_public_method_has_a_rule() -> None:
    methods = public_methods()
    takes_actor = {n for n, sig in methods.items() if "actor" in sig.parameters}
    assert takes_actor == set(RULES), (
        f"methods without an access rule here: {sorted(takes_actor - set(RULES))}; "
        f"rules for methods that are gone: {sorted(set(RULES) - takes_actor)}"
    )
    assert set(methods) - takes_actor == set(NO_ACTOR), sorted(set(methods) - takes_actor)
    for name in takes_actor:
        assert next(iter(methods[name].parameters)) == "self"
        assert list(methods[name].parameters)[1] == "actor", name


@pytest.fixture(scope="module", params=BACKENDS)
def matrix_clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimpleNamespace]:
    """One clinic for the whole matrix, on each backend (every allowed call is additive or
    works on throw-away records made here, so the order of the cases does not matter)."""
    factory = request.getfixturevalue(f"{request.param}_clinics")
    d = tmp_path_factory.mktemp("matrix") / "data"
    d.mkdir()
    c = factory.private(d, extended=True)
    repo = c.repo
    # Made before the matrix runs, so a refused call can be checked to change no row.
    victims = [
        repo.create_user(SYSTEM_ACTOR, f"victim.{i}", "another long pw", "marketing").id
        for i in range(3 * len(ROLES))
    ]
    spare_treatment = [
        repo.record_consent(c.aest, c.a.id, kind="treatment_photography").id for _ in ROLES
    ]
    spare_marketing = [
        repo.record_consent(c.aest, c.a.id, kind="marketing", scopes=("social",)).id for _ in ROLES
    ]
    actors = {
        "admin": c.admin,
        "aesthetician": c.aest,
        "own": c.client_a,
        "other": c.client_b,
        "marketing": c.mkt,
        "inactive": c.gone,
        "anonymous": Actor(user_id=987654, username="nobody", role="admin"),
    }
    try:
        yield SimpleNamespace(
            repo=repo,
            c=SimpleNamespace(
                **{f.name: getattr(c, f.name) for f in dataclasses.fields(c)},
                victims=victims,
                spare_treatment=spare_treatment,
                spare_marketing=spare_marketing,
                actors=actors,
                review=prepare_review(repo, c),
                workflow=prepare_workflow(repo, c, n=len(ROLES)),
            ),
        )
    finally:
        repo.close()


CASES = [
    pytest.param(method, case, op, role, role in allowed, id=f"{method}-{case}-{role}")
    for method, entries in RULES.items()
    for case, op, allowed in entries
    for role in ROLES
]


@pytest.mark.parametrize(("method", "case", "op", "role", "allowed"), CASES)
def test_access_matrix(
    matrix_clinic: Any, method: str, case: str, op: Op, role: str, allowed: bool
) -> None:
    repo, c = matrix_clinic.repo, matrix_clinic.c
    actor = c.actors[role]
    if allowed:
        op(repo, c, actor)
        return
    before = row_counts(repo.engine)
    with pytest.raises(AccessDenied) as info:
        op(repo, c, actor)
    message = str(info.value)
    assert message
    assert "\n" not in message
    # A refusal names nobody: neither client's name reaches the message.
    assert "Ann" not in message
    assert "Bea" not in message
    assert row_counts(repo.engine) == before


def test_client_lists_show_only_own_records(clinic: SimpleNamespace) -> None:
    r, c = clinic.repo, clinic
    for me, other in ((c.client_a, c.b), (c.client_b, c.a)):
        assert [x.id for x in r.search_clients(me, "")] == [me.client_id]
        assert r.search_clients(me, other.name.split()[0]) == []
        assert {p.client_id for p in r.list_photos(me, client_id=me.client_id)} == {me.client_id}
        # No filter means "mine" for a client, never "everyone's".
        assert {p.client_id for p in r.list_photos(me)} == {me.client_id}
        for pid in (c.p1.id, c.p2.id, c.pb.id, c.pb2.id):
            photo_client = c.a.id if pid in (c.p1.id, c.p2.id) else c.b.id
            if photo_client == me.client_id:
                assert r.get_photo_bytes(me, pid)
            else:
                with pytest.raises(AccessDenied):
                    r.get_photo_bytes(me, pid)
        other_analysis = c.analysis_b if me is c.client_a else c.analysis
        with pytest.raises(AccessDenied):
            r.get_analysis_by_id(me, other_analysis.id)
        with pytest.raises(AccessDenied):
            r.load_analysis_masks(me, other_analysis.id)


def test_missing_records_are_refused_like_forbidden_ones(clinic: SimpleNamespace) -> None:
    """A client cannot probe which ids exist: a missing id and another's id read the same."""
    r, me = clinic.repo, clinic.client_a
    for call in (r.get_photo, r.get_photo_bytes, r.get_area, r.get_visit, r.get_client):
        target = {
            "get_photo": clinic.pb.id,
            "get_photo_bytes": clinic.pb.id,
            "get_area": clinic.area_b.id,
            "get_visit": clinic.vb.id,
            "get_client": clinic.b.id,
        }[call.__name__]
        with pytest.raises(AccessDenied) as forbidden:
            call(me, target)
        with pytest.raises(AccessDenied) as missing:
            call(me, 10**6)
        # The message may name the id asked for, and nothing else may differ.
        assert str(forbidden.value).replace(str(target), "N") == str(missing.value).replace(
            str(10**6), "N"
        ), call.__name__


def test_marketing_sees_only_consented_pairs(clinic: SimpleNamespace) -> None:
    r, c = clinic.repo, clinic
    for channel in ("website", "social"):
        pairs = r.list_marketing_pairs(c.mkt, channel)
        assert pairs
        photo_ids = {p.baseline_photo_id for p in pairs} | {p.followup_photo_id for p in pairs}
        assert photo_ids <= {c.p1.id, c.p2.id}
        text = repr([p.to_dict() for p in pairs])
        assert "Ann" not in text
        assert "Example" not in text
    assert r.list_marketing_pairs(c.mkt, "print") == []
    # Revoking the consent removes the pairs at once, even ones listed before.
    listed = r.list_marketing_pairs(c.mkt, "website")
    consent = next(x for x in r.list_consents(c.aest, c.a.id) if x.kind == "marketing")
    r.revoke_consent(c.aest, consent.id)
    assert r.list_marketing_pairs(c.mkt, "website") == []
    assert r.recheck_marketing_pairs(c.mkt, listed) == []
    with pytest.raises(AccessDenied):
        r.get_photo_bytes(c.mkt, c.p1.id, channel="website")


def test_deactivated_account_loses_access_immediately(clinic: SimpleNamespace) -> None:
    r, c = clinic.repo, clinic
    assert r.get_photo_bytes(c.client_a, c.p1.id)
    r.update_user(c.admin, c.client_a.user_id, active=False)
    with pytest.raises(AccessDenied):
        r.get_photo_bytes(c.client_a, c.p1.id)
    with pytest.raises(AccessDenied):
        r.authenticate("ann.client", PASSWORD)


def test_forged_actor_fields_are_refused(clinic: SimpleNamespace) -> None:
    """An Actor object edited in a session (role raised, client swapped) is refused."""
    r, c = clinic.repo, clinic
    forged = [
        Actor(user_id=c.client_a.user_id, username="ann.client", role="admin"),
        Actor(user_id=c.client_a.user_id, username="ann.client", role="client", client_id=c.b.id),
        Actor(user_id=c.mkt.user_id, username="mark.marketing", role="aesthetician"),
        Actor(user_id=c.client_a.user_id, username="alice.admin", role="client", client_id=c.a.id),
        Actor(user_id=0, username="root", role="admin"),
    ]
    for actor in forged:
        with pytest.raises(AccessDenied):
            r.get_photo_bytes(actor, c.pb.id)
        with pytest.raises(AccessDenied):
            r.list_users(actor)


def test_expired_treatment_consent_blocks_new_photos(clinic: SimpleNamespace) -> None:
    from vein_tracker.errors import ConsentError

    r, c = clinic.repo, clinic
    for x in r.list_consents(c.aest, c.b.id):
        if x.kind == "treatment_photography" and x.revoked_at is None:
            r.revoke_consent(c.aest, x.id)
    before = row_counts(r.engine)
    with pytest.raises(ConsentError):
        r.add_photo(c.aest, c.area_b.id, c.vb.id, photo_bytes(77))
    assert row_counts(r.engine) == before
