"""The ``speech-llm`` console script.

Usage:
    speech-llm --help
    speech-llm <command> --help

Each subcommand lives in its own module under :mod:`speech_llm.commands` and is discovered
automatically. A command module defines:

    NAME: str                         # the subcommand name, e.g. "prepare"
    HELP: str                         # one line for ``speech-llm --help``
    ORDER: int                        # position in the help listing (smaller first)
    def add_arguments(parser): ...    # fill an ``argparse.ArgumentParser``
    def run(args) -> int: ...         # the exit status

Errors meant for the user are raised as :class:`speech_common.errors.UserError` and printed
without a traceback (exit status 2).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from speech_common.errors import UserError
from speech_llm import commands


def _command_modules() -> list[ModuleType]:
    mods = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def _version() -> str:
    from speech_llm.doctor import versions_line

    return versions_line()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speech-llm",
        description="Streaming speech recognition and translation with a group-streaming LLM.",
    )
    parser.add_argument("--version", action="version", version=_version(),
                        help="print the toolkit's version and those of torch, torchaudio and transformers")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    sub.required = True
    for mod in _command_modules():
        args = argparse.ArgumentParser(add_help=False)
        try:
            mod.add_arguments(args)         # some commands read their defaults from the training stack
        except ModuleNotFoundError as e:    # e.g. torch, in an install with only the runtime extra
            p = sub.add_parser(mod.NAME, help=f"{mod.HELP} [unavailable here: needs {e.name}]",
                               description=f"{mod.HELP}\n\nUnavailable in this environment: {_unavailable_text(e)}.",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
            p.set_defaults(_run=_unavailable(e), _any_arguments=True)
            continue
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "__doc__", None) or mod.HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter, parents=[args])
        p.set_defaults(_run=mod.run)
    return parser


def _unavailable_text(error: ModuleNotFoundError) -> str:
    return (f"this command needs the '{error.name}' package, which is not installed here "
            "(an install with only the runtime extra has no torch: see docs/DEPLOYMENT.md)")


def _unavailable(error: ModuleNotFoundError):
    def run(args) -> int:
        raise UserError(_unavailable_text(error))
    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"speech-llm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:        # e.g. `train` in an install with only the runtime extra
        if e.name is None or e.name.split(".")[0] in ("speech_llm", "speech_runtime", "speech_common"):
            raise                           # a bug of ours, not a missing package
        print(f"speech-llm {args.command}: error: {_unavailable_text(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"speech-llm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
