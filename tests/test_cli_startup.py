"""Start-up cost of the command line: building the parser imports no heavy module.

Every ``vein-tracker`` run (``--version`` and ``--help`` included) builds the whole
parser, so the sub-command modules must import numpy, Pillow, the storage layer
(SQLAlchemy), export, report and the image analysis only inside their handlers.
Each check runs in a fresh interpreter: the test session itself has imported
most of these long before.
"""

from __future__ import annotations

import json

import pytest

from tests.fresh_util import run_fresh
from vein_tracker.cli import COMMAND_MODULES, build_parser

#: Third-party packages that only a command's handler may import. After the parser
#: is built none of them is loaded (numpy and Pillow included: ``segment`` and
#: ``analyze`` import vein_tracker.io, hence numpy/Pillow, inside ``func`` only).
HEAVY_PACKAGES = (
    "sqlalchemy",
    "alembic",
    "pandas",
    "streamlit",
    "fpdf",
    "cv2",
    "skimage",
    "scipy",
    "numpy",
    "PIL",
    "pillow_heif",
    "cryptography",
    "argon2",
)
#: vein_tracker modules that pull in the packages above.
HEAVY_MODULES = (
    "vein_tracker.io",
    "vein_tracker.export",
    "vein_tracker.report",
    "vein_tracker.storage",
    "vein_tracker.services",
    "vein_tracker.measure",
    "vein_tracker.schedule",
    "vein_tracker.segmentation",
    "vein_tracker.registration",
    "vein_tracker.colour",
    "vein_tracker.reanalyze",
    "vein_tracker.synthetic",
)

_PROBE = """
import contextlib, io, json, sys
from vein_tracker.cli import build_parser, main
build_parser()
after_build = sorted(sys.modules)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = main(sys.argv[1:])
json.dump({"after_build": after_build, "after_main": sorted(sys.modules),
           "status": status, "stdout": out.getvalue()}, sys.stdout)
"""


def _probe(*argv: str) -> dict[str, object]:
    """Run the CLI in a fresh interpreter; its loaded modules, exit status and output."""
    proc = run_fresh(_PROBE, *argv, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def _heavy(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return sorted(
        m
        for m in modules
        if m.split(".")[0] in HEAVY_PACKAGES
        or any(m == h or m.startswith(h + ".") for h in HEAVY_MODULES)
    )


def _command_names() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    return list(sub.choices)


def test_building_the_parser_imports_no_heavy_module() -> None:
    result = _probe("--version")
    assert result["status"] == 0
    assert _heavy(result["after_build"]) == []
    # The version is printed by argparse without running any handler.
    assert _heavy(result["after_main"]) == []
    loaded = result["after_build"]
    assert isinstance(loaded, list)
    # Every sub-command module was imported: the check above covers all of them.
    for name in COMMAND_MODULES:
        assert f"vein_tracker.cli.{name}" in loaded


def test_help_lists_every_command_without_heavy_imports() -> None:
    names = _command_names()
    assert {"register", "segment", "analyze", "export", "report", "reanalyze", "serve"} <= set(
        names
    )
    result = _probe("--help")
    assert result["status"] == 0
    out = result["stdout"]
    assert isinstance(out, str)
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ")}
    assert set(names) <= listed, set(names) - listed
    assert _heavy(result["after_main"]) == []


def test_export_choices_are_filled_in_when_its_parser_is_used() -> None:
    from vein_tracker.export import COLOUR_MODES, LAYOUTS
    from vein_tracker.storage.info import CHANNELS

    result = _probe("export", "--help")
    assert result["status"] == 0
    out = result["stdout"]
    assert isinstance(out, str)
    for values in (CHANNELS, LAYOUTS, COLOUR_MODES):
        assert "{" + ",".join(values) + "}" in out
    # Formatting the export help is what loads the modules holding the choices.
    loaded = result["after_main"]
    assert isinstance(loaded, list)
    assert "vein_tracker.export" in loaded
    assert _heavy(result["after_build"]) == []


def test_export_choices_are_enforced(capsys: pytest.CaptureFixture[str]) -> None:
    from vein_tracker.export import COLOUR_MODES, LAYOUTS
    from vein_tracker.storage.info import CHANNELS

    parser = build_parser()
    args = parser.parse_args(
        ["export", "--channel", CHANNELS[-1], "--out", "pairs.zip", "--layout", LAYOUTS[-1]]
    )
    assert (args.channel, args.layout, args.colour) == (CHANNELS[-1], LAYOUTS[-1], "shared_levels")
    assert "shared_levels" in COLOUR_MODES
    for bad in (
        ["--channel", "billboard"],
        ["--channel", CHANNELS[0], "--layout", "diagonal"],
        ["--channel", CHANNELS[0], "--colour", "sepia"],
    ):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(["export", "--out", "pairs.zip", *bad])
        assert exc.value.code == 2
        assert "invalid choice" in capsys.readouterr().err
