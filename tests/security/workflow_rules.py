"""Access rules of issue 24's repository methods, for test_access_matrix.py.

The clinic workflow (``repo.workflow``: primary photos, photo status, delete and retake,
refusals), signed-in browsers (``repo.web_sessions``) and anonymous export ids
(``repo.export_keys``). :func:`prepare_workflow` makes, before the matrix runs, the
throw-away records the allowed calls use up (a photo to delete and a retake pair per
actor, a visit to delete per actor); :func:`workflow_rules` gives each public method
its cases and the actors allowed, read from the policy table like the matrix's own rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sec_util import photo_bytes

from vein_tracker.policy import Action
from vein_tracker.storage import Repository

Op = Callable[[Repository, SimpleNamespace, Any], Any]
Rules = dict[str, list[tuple[str, Op, frozenset[str]]]]


def prepare_workflow(repo: Repository, c: Any, *, n: int) -> SimpleNamespace:
    """Spare photos, retake pairs and visits of client A, ``n`` of each (one per actor)."""
    start = c.start + timedelta(weeks=20)
    visits = []
    to_delete = []
    retakes = []
    for i in range(n):
        v = repo.create_visit(
            c.aest, c.a.id, visit_date=start + timedelta(days=i), area_ids=[c.area_a.id]
        )
        first = repo.add_photo(c.aest, c.area_a.id, v.id, photo_bytes(9000 + 3 * i))
        spare = repo.add_photo(c.aest, c.area_a.id, v.id, photo_bytes(9001 + 3 * i))
        new = repo.add_photo(c.aest, c.area_a.id, v.id, photo_bytes(9002 + 3 * i))
        to_delete.append(spare.id)
        retakes.append((first.id, new.id))
        gone = repo.create_visit(
            c.aest, c.a.id, visit_date=start + timedelta(days=100 + i), area_ids=[c.area_a.id]
        )
        visits.append(gone.id)
    web_id, _ = repo.start_web_session(c.aest)
    return SimpleNamespace(to_delete=to_delete, retakes=retakes, visits=visits, web_session=web_id)


def workflow_rules(
    may: Callable[..., frozenset[str]],
    read_a: frozenset[str],
    signed_in: frozenset[str],
    everyone: frozenset[str],
) -> Rules:
    """The cases. ``signed_in``: the matrix's signed-in actors; ``everyone``: all of them,
    the deactivated and the forged one included."""
    upload = may(Action.UPLOAD_PHOTOS)
    return {
        "set_primary_photo": [
            ("a", lambda r, c, a: r.set_primary_photo(a, c.p2.id), upload),
        ],
        "set_photo_status": [
            ("a", lambda r, c, a: r.set_photo_status(a, c.p2.id, "ok"), upload),
        ],
        "delete_photo": [
            (
                "spare",
                lambda r, c, a: r.delete_photo(a, c.workflow.to_delete.pop(), reason="blurred"),
                upload,
            )
        ],
        "replace_photo": [
            (
                "retake",
                lambda r, c, a: r.replace_photo(
                    a, *c.workflow.retakes.pop(), reason="out of focus"
                ),
                upload,
            )
        ],
        "delete_visit": [
            (
                "spare",
                lambda r, c, a: r.delete_visit(a, c.workflow.visits.pop(), reason="by mistake"),
                may(Action.RECORD_VISITS),
            )
        ],
        "list_deleted_photos": [
            (
                "a",
                lambda r, c, a: r.list_deleted_photos(a, c.area_a.id),
                may(Action.VIEW_CLIENT_RECORDS) & read_a,
            )
        ],
        "purge_deleted_photos": [
            (
                "none due",
                lambda r, c, a: r.purge_deleted_photos(a, older_than=timedelta(days=3650)),
                may(Action.MANAGE_USERS),
            )
        ],
        # A refusal is recorded whoever met it; a forged or deactivated actor is recorded
        # by the name it claimed, never as an account (tests/storage/test_workflow.py).
        "log_refusal": [
            ("x", lambda r, c, a: r.log_refusal(a, "access_denied", reason="matrix"), everyone)
        ],
        "start_web_session": [("own", lambda r, c, a: r.start_web_session(a), signed_in)],
        "handoff_done": [
            ("other's", lambda r, c, a: r.handoff_done(a, c.workflow.web_session), signed_in)
        ],
        "touch_web_session": [
            ("other's", lambda r, c, a: r.touch_web_session(a, c.workflow.web_session), signed_in)
        ],
        # Ending a session needs no live account (a deactivated user still signs out);
        # someone else's session is left alone (no-op).
        "end_web_session": [
            (
                "other's",
                lambda r, c, a: r.end_web_session(
                    a, c.workflow.web_session + 10_000, reason="sign_out"
                ),
                everyone,
            )
        ],
        "export_public_ids": [
            ("none", lambda r, c, a: r.export_public_ids(a, []), may(Action.EXPORT_MARKETING))
        ],
        "record_exported_pairs": [
            (
                "none",
                lambda r, c, a: r.record_exported_pairs(a, [], channel="website", public_ids={}),
                may(Action.EXPORT_MARKETING),
            )
        ],
        "trace_public_id": [
            ("x", lambda r, c, a: r.trace_public_id(a, "0" * 24), may(Action.VIEW_AUDIT))
        ],
    }
