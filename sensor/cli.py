"""The `kdd-sensor` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _extract(args) -> int:
    from feature_extractor.extract_cli import extract
    from sensor.config import ConfigError, load_config

    try:
        cfg = load_config(args.config) if args.config else load_config(None)
    except ConfigError as exc:
        print(f"kdd-sensor: {exc}", file=sys.stderr)
        return 78
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        return extract(args.files, out, args.meta, cfg.extractor_config())
    finally:
        if out is not sys.stdout:
            out.close()


def _train(args) -> int:
    from models.report import train_and_report
    from models.train import TrainConfig

    cfg = TrainConfig(seed=args.seed, epochs=args.epochs, out_dir=Path(args.out),
                      train_rows=args.subset, cold_start_fraction=args.cold_start_fraction,
                      cold_start_classes=args.cold_start_classes, echo_twins=args.echo_twins,
                      sweep_twins=args.sweep_twins,
                      class_weight_ceiling=None if args.class_weight_ceiling == "none"
                      else args.class_weight_ceiling,
                      calibration_samples=args.calibration_samples)
    return train_and_report(cfg, with_report=not args.no_report)


def _class_list(text: str) -> tuple[str, ...]:
    from feature_extractor.record import CLASSES

    names = tuple(text.split(","))
    unknown = [n for n in names if n not in CLASSES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown class {', '.join(unknown)}; "
                                         f"classes are {', '.join(CLASSES)}")
    return names


def _evaluate(args) -> int:
    from models.evaluate import evaluate_command

    return evaluate_command(args.files, args.model, args.json)


def _replay(args) -> int:
    from sensor.daemon import replay_command

    return replay_command(args)


def _run(args) -> int:
    from sensor.daemon import run_command

    return run_command(args)


def _check_config(args) -> int:
    from sensor.config import ConfigError, load_config

    try:
        load_config(args.file)
    except ConfigError as exc:
        print(f"kdd-sensor: {exc}", file=sys.stderr)
        return 78
    print(f"{args.file}: configuration OK")
    return 0


def _bench(args) -> int:
    from sensor.bench import bench_command

    return bench_command(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kdd-sensor", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("extract", help="captures to the 41 NSL-KDD features (CSV)")
    e.add_argument("files", nargs="+", help="pcap/pcapng files, '-' for stdin")
    e.add_argument("-o", "--output", help="CSV file (default stdout)")
    e.add_argument("--meta", action="store_true", help="header and ts/5-tuple columns")
    e.add_argument("-c", "--config", help="YAML configuration (timeouts, table caps)")
    e.set_defaults(func=_extract)

    from feature_extractor.record import CLASSES
    from models.train import TrainConfig

    shipped = TrainConfig()  # the defaults are the shipped model's recipe
    t = sub.add_parser("train", help="train the CNN-LSTM, export int8 TFLite, write the report")
    t.add_argument("--epochs", type=int, default=shipped.epochs)
    t.add_argument("--seed", type=int, default=shipped.seed)
    t.add_argument("--cold-start-fraction", type=float, default=shipped.cold_start_fraction,
                   help="share of training rows added again as each kind of cold start "
                        "(models.train.with_cold_starts)")
    t.add_argument("--cold-start-classes", type=_class_list,
                   default=shipped.cold_start_classes,
                   help="comma-separated classes whose rows are copied as cold starts "
                        f"(default {','.join(shipped.cold_start_classes)})")
    t.add_argument("--echo-twins", action=argparse.BooleanOptionalAction,
                   default=shipped.echo_twins,
                   help="add fragmented ICMP echo rows again as the other echo type "
                        "(models.train.with_echo_twins)")
    t.add_argument("--sweep-twins", action=argparse.BooleanOptionalAction,
                   default=shipped.sweep_twins,
                   help="add ICMP sweep rows again at ping tools' echo sizes "
                        "(models.train.with_sweep_twins)")
    t.add_argument("--class-weight-ceiling", choices=(*CLASSES, "none"),
                   default=shipped.class_weight_ceiling or "none",
                   help="no class weighs more than this one in training "
                        "(models.train.class_weights)")
    t.add_argument("--calibration-samples", type=int, default=shipped.calibration_samples,
                   help="int8 calibration samples tried; the one agreeing most with the float "
                        "model on validation and column-shuffled rows is kept "
                        "(models.train.choose_calibration)")
    t.add_argument("--out", default=str(shipped.out_dir))
    t.add_argument("--subset", type=int, help="train on this many rows (smoke tests)")
    t.add_argument("--no-report", action="store_true", help="skip baselines and the report")
    t.set_defaults(func=_train)

    v = sub.add_parser("evaluate", help="score a model on NSL-KDD-format files")
    v.add_argument("files", nargs="*", help="default: KDDTest+ and KDDTest-21")
    v.add_argument("--model", help="a .tflite file with its .json beside it")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_evaluate)

    for name, func, helptext in (("replay", _replay, "classify capture files"),
                                 ("run", _run, "classify live traffic on an interface")):
        r = sub.add_parser(name, help=helptext)
        if name == "replay":
            r.add_argument("files", nargs="+", help="pcap/pcapng files, '-' for stdin")
            r.add_argument("--speed", choices=("max", "recorded"), default="max")
        else:
            r.add_argument("-i", "--interface")
            r.add_argument("--bpf", help="capture filter")
        r.add_argument("-c", "--config", help="YAML configuration file")
        r.add_argument("--eve", help="EVE JSON alert file ('-' for stdout)")
        r.add_argument("--fast", help="one-line alerts, Suricata fast.log style ('-' for stdout)")
        r.add_argument("--connections", help="CSV log of every connection")
        r.add_argument("--model", help="a .tflite file with its .json beside it")
        r.add_argument("--syslog", help="syslog target: local, udp://host:port, tcp://host:port")
        r.add_argument("--no-progress", action="store_true")
        r.set_defaults(func=func)

    c = sub.add_parser("check-config", help="validate a configuration file and exit")
    c.add_argument("file")
    c.set_defaults(func=_check_config)

    b = sub.add_parser("bench", help="throughput and memory benchmark")
    b.add_argument("--packets", type=int, default=1_000_000)
    b.add_argument("--out", default="bench/out")
    b.add_argument("--quick", action="store_true", help="smaller captures, one repetition")
    b.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
