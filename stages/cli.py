"""One wrapper for every `python -m stages.<x>` command: bad input -> one line and exit 1.

Usage at the bottom of a stage module::

    if __name__ == "__main__":
        run(main)

`main(argv) -> int | None` parses its own arguments. A `StageError` (or an `OSError` such as a
missing file, or a `SystemExit` carrying a message) becomes `<prog>: <reason>` on stderr and exit
code `EXIT_BAD_INPUT`, without a traceback; `--debug` anywhere on the command line (removed before
`main` sees it) re-raises instead so the traceback shows. Other exceptions are bugs: they keep
their traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .errors import EXIT_BAD_INPUT, EXIT_OK, StageError, one_line


def parse_ahead(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The first pass of a two-pass parse (a command whose options depend on a file named on
    the command line): the options of `parser` found in `argv`, None where absent, ignoring
    -h/--help, required options and anything unknown, so that the second, complete parser
    prints the help with every option or the usage error."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("-h", "--help")]
    lenient = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:  # argparse has no public copy of its actions
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            lenient.add_argument(*action.option_strings, dest=action.dest, default=action.default,
                                 nargs=action.nargs, type=action.type)
    return lenient.parse_known_args(args)[0]


def describe(err: BaseException) -> str:
    """The one-line reason for a refused input: the file named first where the error knows it."""
    if isinstance(err, OSError) and err.filename is not None:
        reason = err.strerror or type(err).__name__
        return one_line(f"{os.fsdecode(err.filename)}: {reason}")
    return one_line(err) or type(err).__name__


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
        prog: str | None = None) -> NoReturn:
    """Run `main` as a command and exit with its code (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args = [a for a in args if a != "--debug"]
    name = prog or _program_name(main)
    try:
        code = main(args)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            if debug:
                raise
            print(f"{name}: {one_line(exit_.code.removeprefix(name + ': '))}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        raise
    except (StageError, OSError) as err:
        if debug:
            raise
        print(f"{name}: {describe(err)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(EXIT_OK if code is None else int(code))


def _program_name(main: Callable) -> str:
    module = getattr(main, "__module__", "") or ""
    if module == "__main__":
        module = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = module.name if module is not None else ""
    return module.removeprefix("stages.").removesuffix(".__main__") or "stages"
