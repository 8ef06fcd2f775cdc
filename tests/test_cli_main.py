"""The command-line entry point: help, version, unknown commands, NUL arguments."""

from __future__ import annotations

import pytest

from vein_tracker import __version__
from vein_tracker.cli import COMMAND_MODULES, build_parser, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("register", "segment", "analyze", "export", "report", "reanalyze", "serve"):
        assert name in out
    assert len(COMMAND_MODULES) == len(set(COMMAND_MODULES))
    assert build_parser().prog == "vein-tracker"


def test_unknown_command_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_nul_in_any_argument_is_refused_before_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", "leg\x00.jpg"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("vein-tracker: ")
