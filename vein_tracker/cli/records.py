"""`vein-tracker records` (placeholder until its module lands)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("records", help="(not available yet)")
