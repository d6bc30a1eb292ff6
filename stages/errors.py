"""The one base class of the errors a stage raises for bad input.

A `StageError` carries a one-line message that names the file (or option) and the problem. The
CLI wrapper (`stages.cli.run`) prints it as `<stage>: <message>` and exits with `EXIT_BAD_INPUT`;
anything else that escapes a stage is a bug and keeps its traceback.
"""

from __future__ import annotations

# Exit codes of every `python -m stages.<x>` command (documented in the README).
EXIT_OK = 0
EXIT_BAD_INPUT = 1  # bad input: one line on stderr naming the file and the problem
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped by a signal after a checkpoint; rerun to resume

# The longest fragment of a file's content quoted in any reason (a 1 MiB NUL pad must not become
# a 4 MiB reason in a quarantine table or a log).
MAX_QUOTE = 60


class StageError(ValueError):
    """Bad input refused by a stage; `str(err)` is one line naming the file and the problem."""


def quote(fragment: object, limit: int = MAX_QUOTE) -> str:
    """`repr` of a fragment of a file's content, cut to at most `limit` characters (plus '...')."""
    text = repr(fragment)
    return text if len(text) <= limit else text[:limit] + "..."


def one_line(message: object) -> str:
    """The message with its line breaks folded, so that it prints as one line."""
    return " ".join(str(message).split())
