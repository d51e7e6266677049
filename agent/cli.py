"""`python -m agent`: the answering layer's commands (local models, answer evaluation)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from agent import eval_cli, models_cli
from rag.logs import LoggingSettings, configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging(LoggingSettings())
    parser = argparse.ArgumentParser(prog="python -m agent")
    sub = parser.add_subparsers(dest="command", required=True)
    models_cli.add_parser(sub)
    eval_cli.add_parser(sub)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code
