"""``python -m ifpo.importers FORMAT IN OUT [--on-error raise|skip]``."""

from __future__ import annotations

import argparse
import sys

from ifpo.data.errors import DataFormatError
from ifpo.importers.convert import CONVERTERS, convert_file, write_records


def build_parser() -> argparse.ArgumentParser:
    """Every argument with a help line; --help shows each default (ArgumentDefaultsHelpFormatter)."""
    parser = argparse.ArgumentParser(
        prog="python -m ifpo.importers", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Convert existing preference data into ifpo's training records (pairs or IOPO quads).",
        epilog="Then: python train.py data=files data.train_files=[OUT]",
    )
    parser.add_argument("format", choices=sorted(CONVERTERS),
                        help="layout of IN: trl (prompt/chosen/rejected), llamafactory (a dataset_info "
                             "entry's layout), iopo_sharegpt (the IOPO release's ShareGPT quads)")
    parser.add_argument("input", help="IN: a JSON or JSONL file")
    parser.add_argument("output", help="OUT: the JSONL file to write")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="raise: stop at the first bad row (file, line, field); skip: count and go on")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        records, skips = convert_file(args.format, args.input, args.on_error)
    except (DataFormatError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_records(records, args.output)
    print(f"{len(records)} records -> {args.output}; {skips.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
