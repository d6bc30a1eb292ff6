"""report: one self-contained HTML page of a run's results.

    python -m stages.report --results results --config config/config.yaml \\
        --models h5 m7 r2n2 --out results/report/index.html

Every listed model must have been evaluated (see stages.report.inputs for the files); otherwise
the command exits 1 with a one-line message naming the missing file and writes nothing.
"""

from __future__ import annotations

import argparse
import sys

from stages.cli import run
from stages.errors import StageError
from stages.report.build import build_report
from stages.tables import SchemaViolation


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True, help="the results folder (eval/, models/, meshes/, ...)")
    parser.add_argument("--config", nargs="+", default=[], metavar="YAML",
                        help="config files of the run, in the order applied (shown under provenance)")
    parser.add_argument("--models", nargs="*", default=[], metavar="MODEL",
                        help="models whose evaluation must exist and be shown, in this order")
    parser.add_argument("--out", required=True, help="the HTML file to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = build_report(args.results, args.models, args.config, args.out)
    except SchemaViolation as err:  # a ValueError, not a StageError: still bad input, one line
        raise StageError(str(err)) from None
    print(f"report: wrote {out} ({len(args.models)} model(s))", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
