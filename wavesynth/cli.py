"""The ``wavesynth`` command line.

Every user mistake ends as one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _not_yet(name: str):
    def run(args: argparse.Namespace) -> int:
        raise CommandError(f"'wavesynth {name}' is not available in this version yet")

    return run


def _preprocess(args: argparse.Namespace) -> int:
    from wavesynth.audio.preprocess import preprocess

    trim_db = None if args.no_trim else args.trim_db
    summary = preprocess(args.corpus, args.root, args.out, args.preset, trim_db=trim_db,
                         loudness=args.loudness, valid_fraction=args.valid_fraction, workers=args.workers,
                         progress=not args.quiet)
    print(summary.report())
    return 0 if summary.ok else 1


def _train(args: argparse.Namespace) -> int:
    from wavesynth.train import NonFiniteError, Trainer, load_config

    if args.model == "teacher":
        from wavesynth.wavenet.task import TeacherTask

        task_class, overrides = TeacherTask, args.overrides
    else:
        from wavesynth.parallel.task import StudentTask

        task_class, overrides = StudentTask, [*args.overrides, f"teacher={args.teacher}"]
    if not os.path.isfile(args.config):
        raise CommandError(f"{args.config}: no such config file")
    task = task_class(load_config(task_class.config_class, args.config, overrides))
    try:
        result = Trainer(task, resume=args.resume).fit()
    except NonFiniteError as error:
        raise CommandError(str(error)) from None
    best = "none" if result.best_metric is None else f"{result.best_metric:.4g}"
    print(f"{args.model}: step {result.step}, best validation loss {best}, "
          f"last checkpoint {result.checkpoint}")
    return 130 if result.interrupted else 0


def _models(args: argparse.Namespace) -> int:
    print("no pretrained models are shipped in this version yet")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wavesynth", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synthesize = commands.add_parser("synthesize", help="turn a wav or a mel-spectrogram into audio")
    synthesize.set_defaults(run=_not_yet("synthesize"))

    preprocess = commands.add_parser("preprocess", help="extract features from a corpus into a cache folder")
    preprocess.add_argument("--corpus", required=True, choices=["ljspeech", "vctk", "arctic", "folder"],
                            help="corpus layout ('folder': audio files under --root, or a file list)")
    preprocess.add_argument("--root", required=True, help="the corpus folder (or, for 'folder', a file list)")
    preprocess.add_argument("--out", required=True, help="cache folder to write (a rerun resumes it)")
    preprocess.add_argument("--preset", default="hifigan-22k",
                            help="feature preset: hifigan-22k (default), pwg-22k, speechbrain-16k")
    preprocess.add_argument("--trim-db", type=float, default=60.0,
                            help="trim leading/trailing frames this many dB below the loudest (default 60)")
    preprocess.add_argument("--no-trim", action="store_true", help="keep leading and trailing silence")
    preprocess.add_argument("--loudness", type=float, metavar="LUFS",
                            help="normalise each file to this integrated loudness, e.g. -23 (default: off)")
    preprocess.add_argument("--valid-fraction", type=float, default=0.05,
                            help="share of utterances in the validation split (default 0.05)")
    preprocess.add_argument("--workers", type=int, help="worker processes (default: one per CPU core)")
    preprocess.add_argument("--quiet", action="store_true", help="no progress bar")
    preprocess.set_defaults(run=_preprocess)

    train = commands.add_parser("train", help="train a teacher or distil a student")
    models_to_train = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, text in (("teacher", "train a WaveNet teacher by maximum likelihood"),
                       ("student", "distil a Parallel WaveNet student from a trained teacher")):
        sub = models_to_train.add_parser(name, help=text)
        sub.add_argument("--config", required=True, help="TOML config file, e.g. recipes/ljspeech/"
                         f"{name}.toml")
        if name == "student":
            sub.add_argument("--teacher", required=True, metavar="CKPT", help="teacher checkpoint (.pt)")
        sub.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
        sub.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. "
                         "train.steps=1000 data.segment_frames=16")
        sub.set_defaults(run=_train)

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
