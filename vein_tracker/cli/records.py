"""Clinic-records commands: demo seed, backup/restore, fsck, accounts, schema, key rotation.

Sub-commands: ``seed-demo``, ``backup``, ``restore``, ``fsck``, ``create-admin``,
``users``, ``migrate`` and ``rekey``. They run as the local operator (no sign-in:
whoever can run them can read the data folder anyway) and every action that changes
or copies records is audited. All work goes through :mod:`vein_tracker.storage`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import RegistrationError, StorageError, VeinTrackerError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("seed-demo", help="seed a demo clinic from sample_images/")
    p.add_argument("--if-empty", action="store_true", help="do nothing if clients exist")
    p.add_argument("--images", type=Path, default=None, help="folder with manifest.json")
    p.add_argument(
        "--no-analyses",
        action="store_true",
        help="skip analysing the pairs (the app analyses them when first opened)",
    )
    p.set_defaults(func=_seed_demo)

    p = sub.add_parser("backup", help="write a consistent backup archive (.tar)")
    p.add_argument("out", type=Path, metavar="OUT.tar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_backup)

    p = sub.add_parser("restore", help="restore a backup into an empty data folder")
    p.add_argument("archive", type=Path, metavar="IN.tar")
    p.add_argument("--data-dir", type=Path, default=None, help="target (default VEIN_TRACKER_DATA)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_restore)

    p = sub.add_parser("fsck", help="check that every photo is present and intact")
    p.add_argument("--clean", action="store_true", help="remove orphan and temporary files")
    p.add_argument(
        "--grace-minutes",
        type=float,
        default=10.0,
        help="keep orphans younger than this (uploads in flight; default 10)",
    )
    p.add_argument("--quick", action="store_true", help="check presence only, do not re-hash")
    p.add_argument(
        "--fix-permissions",
        action="store_true",
        help="make every folder of the records 0700 and every file 0600",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_fsck)

    p = sub.add_parser("create-admin", help="create an admin account")
    p.add_argument("--username", default=None, help="default VEIN_TRACKER_ADMIN_USER or 'admin'")
    p.add_argument(
        "--generate",
        action="store_true",
        help="generate a one-time password instead of reading one",
    )
    p.set_defaults(func=_create_admin)

    p = sub.add_parser("users", help="list user accounts")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_users)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(func=_migrate)

    p = sub.add_parser("rekey", help="re-encrypt photos with the first VEIN_TRACKER_ENCRYPTION_KEY")
    p.set_defaults(func=_rekey)

    p = sub.add_parser(
        "purge-deleted",
        help="the retention rule: remove the bytes of photos deleted more than DAYS days ago "
        "(run it daily, e.g. from cron)",
    )
    p.add_argument("--days", type=float, default=30.0, help="retention in days (default 30)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_purge_deleted)


def _open() -> Any:
    from ..storage import open_repository

    return open_repository()


def _emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=str))


# ---------------------------------------------------------------------- seed


def _find_images(given: Path | None) -> Path:
    if given is not None:
        return given
    here = Path.cwd() / "sample_images"
    if (here / "manifest.json").exists():
        return here
    beside = Path(__file__).resolve().parents[2] / "sample_images"
    return beside if (beside / "manifest.json").exists() else here


def _make_analyser() -> Any:
    """A callback storing the analysis of a pair, or None if the analysis code is absent."""
    try:
        from .. import services

        params = services.AnalysisParams()
        analyze_pair = services.analyze_pair
        save = services.save_analysis
    except (ImportError, AttributeError) as exc:
        print(f"note: analyses skipped (analysis code not available: {exc})")
        return None
    from ..storage import SYSTEM_ACTOR

    def analyse(repo: Any, baseline_id: int, followup_id: int) -> bool:
        try:
            review = analyze_pair(
                repo,
                SYSTEM_ACTOR,
                baseline_photo_id=baseline_id,
                followup_photo_id=followup_id,
                params=params,
            )
            save(repo, SYSTEM_ACTOR, review)
        except RegistrationError as exc:
            print(f"  pair {baseline_id}->{followup_id} not scored: {exc}")
            return False
        return True

    return analyse


def _seed_demo(args: argparse.Namespace) -> int:
    from ..storage.seed import seed_demo

    images = _find_images(args.images)
    repo = _open()
    try:
        if args.if_empty and repo.search_clients(_system(), limit=1):
            print("Demo seed skipped: the database already holds clients.")
            return 0
        analyse = None if args.no_analyses else _make_analyser()
        t0, c0 = time.perf_counter(), time.process_time()
        result = seed_demo(repo, images, if_empty=args.if_empty, analyse=analyse)
    finally:
        repo.close()
    if result.skipped:
        print(f"Demo seed skipped: {result.reason}.")
        return 0
    print(
        f"Demo clinic seeded in {time.perf_counter() - t0:.1f} s "
        f"(CPU {time.process_time() - c0:.1f} s): {result.clients} clients, "
        f"{result.areas} areas, {result.visits} visits, {result.photos} photos, "
        f"{result.consents} consents, {result.analyses} analyses."
    )
    if analyse is None and not args.no_analyses:
        print("Analyses are computed by the app when a review page first opens a pair.")
    print("Demo logins (demo data only; never use these passwords for real records):")
    for username, password, role in result.accounts:
        print(f"  {role:<13} {username:<20} {password}")
    return 0


def _system() -> Any:
    from ..storage import SYSTEM_ACTOR

    return SYSTEM_ACTOR


# ---------------------------------------------------------------------- backup


def _backup(args: argparse.Namespace) -> int:
    from ..storage.backup import backup

    result = backup(args.out)
    if args.json:
        _emit_json(result.to_dict())
    else:
        print(
            f"Backup written to {result.path}: {result.photos} files, "
            f"{result.bytes_total / 1e6:.1f} MB, database snapshot ({result.db_kind})."
        )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from ..storage.backup import restore

    result = restore(args.archive, args.data_dir)
    if args.json:
        _emit_json(result.to_dict())
    else:
        print(
            f"Restored into {result.data_dir}: {result.photos} files, all {result.verified} "
            "verified against the manifest."
        )
    return 0


def _fsck(args: argparse.Namespace) -> int:
    from ..storage.backup import fsck

    if args.grace_minutes < 0:
        raise VeinTrackerError("--grace-minutes must be zero or more")
    report = fsck(
        clean=args.clean,
        grace_s=args.grace_minutes * 60.0,
        verify=not args.quick,
        fix_permissions=args.fix_permissions,
    )
    if args.json:
        _emit_json(report.to_dict())
    else:
        print(f"Checked {report.checked} referenced files in {report.store}.")
        for label, items in (
            ("MISSING", report.missing),
            ("DAMAGED", report.corrupt),
            ("DATABASE", report.db_problems),
            ("orphan", report.orphans),
            ("temporary", report.temp_files),
            ("NOT PRIVATE", report.loose_permissions),
        ):
            for item in items:
                print(f"  {label}: {item}")
        if args.clean:
            print(f"Removed {report.cleaned} orphan/temporary files.")
        if report.loose_permissions:
            print(
                f"Made {report.permissions_fixed} folders/files private."
                if args.fix_permissions
                else "Other local users can open the records listed NOT PRIVATE: run the "
                "chmod shown, or vein-tracker fsck --fix-permissions."
            )
        print("OK: no photo lost." if report.ok else "PROBLEMS FOUND: restore from a backup.")
    if not report.ok:
        raise StorageError(
            f"fsck found {len(report.missing)} missing and {len(report.corrupt)} damaged "
            f"files and {len(report.db_problems)} database problems."
        )
    return 0


# ---------------------------------------------------------------------- accounts


def _create_admin(args: argparse.Namespace) -> int:
    from ..storage import accounts

    username = args.username or os.environ.get("VEIN_TRACKER_ADMIN_USER") or "admin"
    repo = _open()
    try:
        if args.generate:
            user, password = repo.invite_user(_system(), username, "admin")
            print(
                f"Admin {user.username!r} created. One-time password (shown once, must be "
                f"changed at first sign-in): {password}"
            )
            return 0
        password = os.environ.get("VEIN_TRACKER_ADMIN_PASSWORD")
        if not password:
            if not sys.stdin.isatty():
                raise VeinTrackerError(
                    "No password: set VEIN_TRACKER_ADMIN_PASSWORD, run in a terminal, or use "
                    "--generate."
                )
            password = getpass.getpass("New admin password: ")
            if getpass.getpass("Repeat it: ") != password:
                raise VeinTrackerError("The passwords differ: nothing was created.")
        try:
            accounts.check_new_password(password)
            user = repo.create_user(_system(), username, password, "admin")
        except ValueError as exc:
            raise VeinTrackerError(str(exc)) from exc
        print(f"Admin {user.username!r} created.")
        return 0
    finally:
        repo.close()


def _users(args: argparse.Namespace) -> int:
    repo = _open()
    try:
        users = repo.list_users(_system())
    finally:
        repo.close()
    if args.json:
        _emit_json([u.to_dict() for u in users])
        return 0
    for u in users:
        state = "active" if u.active else "inactive"
        if u.is_locked():
            state += ", locked"
        link = f" client {u.client_id}" if u.client_id else ""
        print(f"{u.id:>4}  {u.username:<24} {u.role:<13} {state}{link}")
    if not users:
        print("No accounts yet: run `vein-tracker create-admin`.")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from ..storage.db import current_revision

    repo = _open()
    try:
        print(f"Database schema at revision {current_revision(repo.engine)}.")
    finally:
        repo.close()
    return 0


def _rekey(args: argparse.Namespace) -> int:
    from ..storage.photostore import MaintainedStore

    repo = _open()
    try:
        store = repo.store
        if not isinstance(store, MaintainedStore) or store.cipher is None:
            raise VeinTrackerError("Set VEIN_TRACKER_ENCRYPTION_KEY (new key first) to rekey.")
        done = 0
        for sha in list(store.iter_hashes()):
            done += store.rekey(sha)
        left = sum(store.needs_rekey(sha) for sha in store.iter_hashes())
    finally:
        repo.close()
    print(f"Re-encrypted {done} files; {left} left under an old key or unencrypted.")
    return 0


def _purge_deleted(args: argparse.Namespace) -> int:
    from datetime import timedelta

    if not (args.days >= 0):
        raise VeinTrackerError("--days must be zero or more")
    repo = _open()
    try:
        removed = repo.purge_deleted_photos(_system(), older_than=timedelta(days=args.days))
    finally:
        repo.close()
    if args.json:
        _emit_json({"purged_photos": removed, "days": args.days})
    else:
        print(f"Removed the stored bytes of {removed} photos deleted over {args.days:g} days ago.")
    return 0
