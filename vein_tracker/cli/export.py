"""`vein-tracker export` (placeholder until its module lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("export", help="(not available yet)")
