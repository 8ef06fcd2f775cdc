"""`vein-tracker report` (placeholder until its module lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("report", help="(not available yet)")
