"""Entry point: parse the command line and hand over to one command module.

Each module in ``pixelseg.cli`` (other than this one) is a command: it defines ``COMMAND``
(its name), ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Commands are
discovered, so adding one is adding a file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import PixelsegError


def _command_modules():
    from .. import cli

    mods = []
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name in ("main",) or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{cli.__name__}.{info.name}")
        if hasattr(mod, "COMMAND"):
            mods.append(mod)
    return sorted(mods, key=lambda m: getattr(m, "ORDER", 100))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelseg", description="Semantic segmentation with CNN and recurrent models."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = {}
    for mod in _command_modules():
        p = sub.add_parser(mod.COMMAND, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, command=mod.COMMAND)
        parser.commands[mod.COMMAND] = p
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse a command line. A command's own arguments are parsed intermixed, so that
    ``key=value`` overrides (or image paths) may come before, between or after options:
    ``train a=1 --epochs 3 b=2`` keeps both overrides, where plain argparse stops collecting
    positionals at the first option and rejects the rest."""
    if argv and argv[0] in parser.commands:
        return parser.commands[argv[0]].parse_intermixed_args(argv[1:])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, sys.argv[1:] if argv is None else list(argv))
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        code = args._run(args)
    except PixelsegError as e:
        print(f"pixelseg: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixelseg: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
