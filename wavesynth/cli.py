"""The ``wavesynth`` command line.

Every user mistake ends as one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _not_yet(name: str):
    def run(args: argparse.Namespace) -> int:
        raise CommandError(f"'wavesynth {name}' is not available in this version yet")

    return run


def _models(args: argparse.Namespace) -> int:
    print("no pretrained models are shipped in this version yet")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wavesynth", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synthesize = commands.add_parser("synthesize", help="turn a wav or a mel-spectrogram into audio")
    synthesize.set_defaults(run=_not_yet("synthesize"))

    preprocess = commands.add_parser("preprocess", help="extract features from a corpus into a cache folder")
    preprocess.set_defaults(run=_not_yet("preprocess"))

    train = commands.add_parser("train", help="train a teacher or distil a student")
    train.set_defaults(run=_not_yet("train"))

    evaluate = commands.add_parser("evaluate", help="copy-synthesis metrics and a report")
    evaluate.set_defaults(run=_not_yet("evaluate"))

    models = commands.add_parser("models", help="list the shipped pretrained models")
    models.set_defaults(run=_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, ValueError, OSError) as error:
        print(f"wavesynth: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavesynth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
