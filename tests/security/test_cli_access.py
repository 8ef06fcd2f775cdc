"""CLI commands × roles.

``export`` and ``report`` act as a signed-in account with ``--as USER`` (password from
``VEIN_TRACKER_PASSWORD``): each role gets exactly what the policy table allows (and a
client account its own report only), a refusal
is exit 4 with one line on stderr and writes no file. The other commands (backup, restore,
fsck, users, create-admin, migrate, rekey, seed-demo, reanalyze) have no ``--as``: they
are the local operator's tools (whoever can run them can read the data folder anyway),
checked here to refuse an ``--as`` option rather than silently ignore it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import use_data_dir
from vein_tracker.cli import COMMAND_MODULES, build_parser, main
from vein_tracker.policy import Action, allows

ACTOR_COMMANDS = {"export", "report"}
#: The seeded app clinic's accounts (tests/ui/vt_ui_seed.py): role, and the client of a
#: client account ("a" or "b").
ACCOUNTS = {
    "adam": ("admin", None),
    "anna": ("aesthetician", None),
    "mia": ("marketing", None),
    "cara": ("client", "a"),
    "dora": ("client", "b"),
}


def _may_report(user: str, client: str) -> bool:
    """The policy's answer, with the owner rule: a client account reports on itself only."""
    role, own = ACCOUNTS[user]
    if not allows(role, Action.PROGRESS_REPORT):
        return False
    return allows(role, Action.VIEW_CLIENT_RECORDS) or own == client


@pytest.fixture(scope="module")
def cli_clinic(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from vt_ui_seed import seed_temp_clinic

    return seed_temp_clinic(tmp_path_factory, "cli_access")


@pytest.fixture
def env(cli_clinic: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from vt_ui_seed import PASSWORD

    use_data_dir(monkeypatch, cli_clinic.data_dir)
    monkeypatch.setenv("VEIN_TRACKER_PASSWORD", PASSWORD)
    return cli_clinic


def _refused(rc: int, err: str, out_file: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 4, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert not out_file.exists()


def test_every_command_is_classified() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(sub.choices)  # type: ignore[arg-type]
    with_as = {
        n
        for n, p in sub.choices.items()  # type: ignore[union-attr]
        if any(a.dest == "as_user" for a in p._actions)
    }
    assert with_as == ACTOR_COMMANDS, with_as
    assert len(names) >= len(COMMAND_MODULES)


@pytest.mark.parametrize(
    ("user", "client", "allowed"),
    [(user, client, _may_report(user, client)) for user in sorted(ACCOUNTS) for client in "ab"],
)
def test_report_by_role(
    env: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    user: str,
    client: str,
    allowed: bool,
) -> None:
    cid = env.client_a if client == "a" else env.client_b
    out = tmp_path / "r.pdf"
    rc = main(["report", str(cid), "--out", str(out), "--as", user])
    err = capsys.readouterr().err
    if allowed:
        assert rc == 0, err
        assert out.read_bytes().startswith(b"%PDF")
    else:
        _refused(rc, err, out)


@pytest.mark.parametrize(
    "user", [u for u, (role, _) in ACCOUNTS.items() if not allows(role, Action.EXPORT_MARKETING)]
)
def test_export_refused_for_roles_the_policy_denies(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], user: str
) -> None:
    out = tmp_path / "pairs.zip"
    rc = main(["export", "--channel", "website", "--out", str(out), "--as", user])
    _refused(rc, capsys.readouterr().err, out)


@pytest.mark.parametrize("user", ["mia", "nobody.at.all"])
def test_wrong_password_or_unknown_user_is_refused(
    env: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    user: str,
) -> None:
    monkeypatch.setenv("VEIN_TRACKER_PASSWORD", "not the password")
    out = tmp_path / "pairs.zip"
    rc = main(["export", "--channel", "website", "--out", str(out), "--as", user])
    _refused(rc, capsys.readouterr().err, out)


@pytest.mark.slow  # a full marketing export (face check, renders)
def test_export_allowed_for_marketing(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pairs.zip"
    rc = main(["export", "--channel", "website", "--out", str(out), "--as", "mia"])
    assert rc == 0, capsys.readouterr().err
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    "argv",
    [["users"], ["fsck"], ["migrate"], ["backup", "x.tar"], ["reanalyze"]],
    ids=lambda a: a[0],
)
def test_operator_commands_refuse_an_as_option(
    env: Any, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    rc = main([*argv, "--as", "cara"])
    assert rc == 2
    assert "unrecognized arguments: --as" in capsys.readouterr().err
