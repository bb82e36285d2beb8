"""The ``unseen`` command line."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import tempfile
from pathlib import Path

from unseen import __version__
from unseen.commands import register_all
from unseen.errors import ConfigError, UnseenError

__all__ = ["main"]

PROTOCOL_HELP = """\
protocol terms:
  seen / unseen     classes with / without training images; unseen classes are known only
                    by their semantic vector (attributes or a text embedding).
  CZSL T1           per-class top-1 accuracy on unseen test images, choosing among unseen
                    classes only.
  GZSL S, U, H      per-class top-1 on seen (S) and unseen (U) test images, choosing among
                    ALL classes; H = 2SU/(S+U), the headline number.
  calibrated        calibrated stacking: subtract gamma from seen-class scores; gamma is
                    chosen on validation, never on test.
  AUSUC             area under the seen-unseen accuracy curve traced by sweeping gamma.
  validation        built from seen training data only: pseudo-unseen classes from the
                    dataset's train/val class split, part of the pseudo-seen images held out.
                    Epochs, synthetic counts, classifier schedule and gamma are chosen there;
                    test data is touched once, at the end, and the last epoch is reported.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unseen",
        description="Generative zero-shot learning with one honest protocol.",
        epilog=PROTOCOL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"unseen {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser(
        "datasets",
        help="list the benchmarks under a data root: classes, dims, splits, features, quirks",
    )
    d.add_argument("--data-root", required=True, help="folder holding <DATASET>/att_splits.mat")
    d.add_argument(
        "--features",
        help="features file name to look for (default: every .mat file present besides the "
        "semantic files, res101.mat first)",
    )
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sub.add_parser("methods", help="list the registered methods")

    r = sub.add_parser(
        "run",
        help="validate, train, synthesize, classify and evaluate a method over seeds",
        epilog=PROTOCOL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("method", help="method name (see `unseen methods`)")
    r.add_argument(
        "--dataset",
        required=True,
        help="AWA1 AWA2 CUB SUN APY FLO, demo, toy, NAME-synthetic, or a native .npz file",
    )
    r.add_argument("--data-root", default="", help="folder holding <DATASET>/")
    r.add_argument("--config", help="YAML file with overrides (sections method/data/...)")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one value, e.g. --set method.epochs=10 (repeatable)",
    )
    r.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="seeds (default 0 1 2); a longer list with the same first seed adds seeds to a "
        "finished run, reusing its validation choice",
    )
    r.add_argument("--device", help="cpu, cuda, cuda:1, ... (default cpu)")
    _add_precision_option(r)
    r.add_argument(
        "--batch-seeds",
        action="store_true",
        default=None,
        help="train the test seeds as one batched model where the method supports it (the "
        "same numbers up to float rounding; faster on GPUs); config key run.seed_batch",
    )
    r.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the generator's networks (config key run.compile; pays off only "
        "for some methods and sizes: docs/speed.md)",
    )
    r.add_argument("--out", help="output folder (default runs/<method>-<dataset>)")
    r.add_argument(
        "--force",
        action="store_true",
        help="replace finished results in --out (removes only what unseen wrote there, as "
        "listed in OUT/manifest.json)",
    )
    r.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep validation/checkpoint.pt and seed_<s>/checkpoint.pt after their stage "
        "finished (default: deleted; model.pt files always stay)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument(
        "--validate-only",
        action="store_true",
        help="only choose hyper-parameters on the validation problem; never touch test",
    )

    m = sub.add_parser(
        "demo", help="a short run of f-CLSWGAN on built-in synthetic data (no download; minutes)"
    )
    m.add_argument("--out", help="output folder (default: a temporary folder)")
    m.add_argument("--device", default="cpu")

    t = sub.add_parser(
        "toy",
        help="IZF's toy study (Fig. 4): train each panel's model, write one figure + numbers",
    )
    t.add_argument("--out", default="runs/izf-toy", help="folder for toy.png and toy.json")
    t.add_argument("--epochs", type=int, default=100, help="epochs per panel model")
    t.add_argument("--hidden", type=int, default=64, help="hidden width of every network")
    t.add_argument("--panels", default="bcdfgh", help="which of the panels b c d f g h to run")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="repeat over these seeds and report how often each claim holds (seed_<k>/ each)",
    )
    t.add_argument(
        "--semantic-scale", type=float, default=3.0, help="IZF's semantic_scale for the toy"
    )

    c = sub.add_parser("convert", help="convert an xlsa17 dataset to the native .npz format")
    c.add_argument("--data-root", required=True)
    c.add_argument("--dataset", required=True)
    c.add_argument("--features", default="res101.mat")
    c.add_argument("--semantics", default="att", choices=["att", "original_att", "sent"])
    c.add_argument("--out", required=True, help="the .npz file to write")
    c.add_argument("--force", action="store_true", help="overwrite an existing file")

    register_all(sub)  # commands defined in unseen.commands (bench, plot, predict, ...)
    if "bench" in sub.choices:  # its grid jobs get it as --set run.precision (see main)
        _add_precision_option(sub.choices["bench"])
    _add_plugin_option(sub)
    return p


def _add_precision_option(parser: argparse.ArgumentParser) -> None:
    """``--precision``; its value is checked with the config (one paragraph, exit 2), not
    by argparse (whose error is a usage block)."""
    parser.add_argument(
        "--precision",
        metavar="fp32|bf16|fp16",
        help="autocast dtype of the generator's training and synthesis (default fp32, or the "
        "config's run.precision); bf16 on CPUs with AVX-512 BF16/AMX and recent GPUs, fp16 "
        "on CUDA only; see docs/speed.md",
    )


def _add_plugin_option(sub: argparse._SubParsersAction) -> None:
    """``--plugin MODULE`` on every command (each leaf of nested sub-commands): any command
    may name a method, so any command may need a user's method loaded first."""
    for parser in dict.fromkeys(sub.choices.values()):
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for n in nested:
                _add_plugin_option(n)
            continue
        parser.add_argument(
            "--plugin",
            dest="plugins",
            action="append",
            metavar="MODULE",
            help="import a module or .py file that registers methods of your own "
            "(repeatable); installed packages' methods (entry points 'unseen.methods') "
            "load without it",
        )


def _check_device(device: str | None) -> None:
    if device is None or device == "cpu":
        return
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but torch sees no CUDA device")


def _cmd_datasets(args: argparse.Namespace) -> int:
    from unseen.data import discover, inspect_xlsa17

    root = Path(args.data_root)
    if not root.is_dir():
        raise ConfigError(f"--data-root {root} is not a folder")
    names = discover(root)
    if not names:
        raise ConfigError(f"no dataset under {root}: expected <DATASET>/att_splits.mat folders")
    from unseen.data.xlsa17 import feature_files

    found = {n: [args.features] if args.features else feature_files(root, n) for n in names}
    reports = [inspect_xlsa17(root, n, features=(found[n] or ["res101.mat"])[0]) for n in names]
    if args.json:
        print(
            json.dumps([{**r.to_dict(), "feature_files": found[r.name]} for r in reports], indent=2)
        )
        return 0
    head = (
        f"{'dataset':8} {'classes':>7} {'seen/unseen':>11} {'sem dim':>7} "
        f"{'trainval':>8} {'test_seen':>9} {'test_unseen':>11}  features"
    )
    print(head)
    print("-" * len(head))
    for r in reports:
        su = f"{r.n_seen_classes}/{r.n_unseen_classes}" if r.n_seen_classes is not None else "?"
        feats = (
            f"{Path(r.features_file).name}: {r.n_images} x {r.feature_dim}"
            if r.features_present
            else f"MISSING ({Path(r.features_file).name})"
        )
        print(
            f"{r.name:8} {r.n_classes:7d} {su:>11} {r.semantic_dim:7d} {r.n_trainval:8d} "
            f"{r.n_test_seen:9d} {r.n_test_unseen:11d}  {feats}"
        )
        for src in r.semantic_sources[1:]:
            print(f"{'':8} also: {src}")
        for other in found[r.name][1:]:
            print(f"{'':8} also features: {other} (--set data.features={other})")
        for q in r.quirks:
            print(f"{'':8} quirk: {q}")
    return 0


def _cmd_methods(_: argparse.Namespace) -> int:
    from unseen.methods import available_methods
    from unseen.methods.base import plugin_errors

    for name, cls in available_methods().items():
        origin = "" if cls.__module__.startswith("unseen.") else f"  [from {cls.__module__}]"
        print(f"{name:12} {cls.paper}{origin}")
    for name, why in plugin_errors().items():
        print(f"warning: the installed plugin '{name}' failed to load: {why}", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from unseen.config import parse_set, resolve_run_config
    from unseen.runner import run

    _check_device(args.device)
    cfg = resolve_run_config(
        args.method,
        args.dataset,
        data_root=args.data_root,
        config_file=args.config,
        overrides=parse_set(args.set),
        seeds=args.seeds,
        device=args.device,
        precision=args.precision,
        seed_batch=args.batch_seeds,
        compile=args.compile,
    )
    out = args.out or f"runs/{args.method}-{Path(args.dataset).stem}"
    print(f"unseen {__version__}: {args.method} on {args.dataset} -> {out}", flush=True)
    print(f"config: {' + '.join(cfg.sources)}", flush=True)
    run(
        cfg,
        out,
        force=args.force,
        progress=not args.quiet and sys.stderr.isatty(),
        validate_only=args.validate_only,
        keep_checkpoints=args.keep_checkpoints,
    )
    what = "validation/selection.json" if args.validate_only else "results.json"
    print(f"results: {Path(out) / what}")
    return 0


DEMO_OVERRIDES = {
    "method": {
        "epochs": 30,
        "hidden_g": 256,
        "hidden_d": 256,
        "cls_weight": 0.1,
        "pretrain_epochs": 20,
        "lr": 1e-3,
    },
    "classifier": {"epochs": 20, "lr": 1e-3, "batch_size": 128},
    "selection": {"eval_every": 10, "n_synthetic": [50, 200], "classifier_epochs": [10, 20]},
}


def _cmd_demo(args: argparse.Namespace) -> int:
    from unseen.config import resolve_run_config
    from unseen.runner import run

    _check_device(args.device)
    cfg = resolve_run_config(
        "clswgan", "demo", overrides=DEMO_OVERRIDES, seeds=[0, 1, 2], device=args.device
    )
    print(
        "unseen demo: f-CLSWGAN on a built-in SYNTHETIC problem (30 classes: 24 seen, 6 "
        "unseen; 64-d features). Numbers on synthetic data are a smoke test, not a benchmark.",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "demo"
        run(cfg, out, progress=sys.stderr.isatty())
    return 0


def _cmd_toy(args: argparse.Namespace) -> int:
    from unseen.config import MAX_SEED, check_number
    from unseen.studies.izf_toy import PANELS, run_toy_seeds, run_toy_study

    bad = sorted(set(args.panels) - set(PANELS))
    if bad or not args.panels:
        raise ConfigError(f"--panels takes letters from {''.join(PANELS)}, got {args.panels!r}")
    check_number("--epochs", args.epochs, lo=1, integer=True)
    check_number("--hidden", args.hidden, lo=1, integer=True)
    check_number("--semantic-scale", args.semantic_scale, lo=0, lo_open=True)
    for seed in [args.seed, *(args.seeds or [])]:
        check_number("--seed(s)", seed, lo=0, hi=MAX_SEED, integer=True)
    settings = {k: getattr(args, k) for k in ("epochs", "hidden", "panels", "semantic_scale")}
    if args.seeds:
        run_toy_seeds(args.out, args.seeds, **settings)
    else:
        run_toy_study(args.out, seed=args.seed, **settings)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from unseen.data import convert_xlsa17

    path = convert_xlsa17(
        args.data_root,
        args.dataset,
        args.out,
        features=args.features,
        semantics=args.semantics,
        overwrite=args.force,
    )
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "datasets": _cmd_datasets,
    "methods": _cmd_methods,
    "run": _cmd_run,
    "demo": _cmd_demo,
    "convert": _cmd_convert,
    "toy": _cmd_toy,
}


def _one_paragraph(text: str) -> str:
    """Messages end up in logs and terminals alike: one paragraph, no blank lines."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _os_error_message(exc: OSError) -> str:
    """``[Errno 13] Permission denied: 'x'`` -> a sentence naming the path and the fix."""
    what = (exc.strerror or type(exc).__name__).lower()
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p)
    hints = {
        errno.EACCES: "check the permissions of the path and of its folder",
        errno.EPERM: "check the permissions of the path and of its folder",
        errno.EROFS: "the file system is read-only; choose a folder you can write to",
        errno.ENOSPC: "free some disk space or choose another folder",
        errno.EDQUOT: "free some disk space or choose another folder",
        errno.ENOENT: "check the path",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "give a file, not a folder",
    }
    hint = hints.get(exc.errno or -1, "check the path")
    return f"{what}: {paths or '(no path given)'}; {hint}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 2 error, 130 interrupted).

    Every failure is one paragraph on stderr and exit code 2: errors of the user's input
    (:class:`UnseenError`), of the paths the user gave (``OSError``), out-of-memory, and,
    worded as such, unexpected errors inside unseen. ``UNSEEN_DEBUG=1`` shows tracebacks.
    """
    args = _parser().parse_args(argv)
    debug = os.environ.get("UNSEEN_DEBUG", "") not in ("", "0")

    def fail(msg: str) -> int:
        print(f"unseen {args.command}: error: {_one_paragraph(msg)}", file=sys.stderr)
        return 2

    try:
        from unseen.methods.base import load_plugin

        for plugin in getattr(args, "plugins", None) or []:
            load_plugin(plugin)
        if args.command == "bench" and getattr(args, "precision", None) is not None:
            args.set = [*(args.set or []), f"run.precision={args.precision}"]
        handler = COMMANDS.get(args.command) or args.func
        return handler(args)
    except UnseenError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        if debug:
            raise
        return fail(_os_error_message(exc))
    except MemoryError:
        if debug:
            raise
        return fail(
            "out of memory; use smaller networks or batches (--set method.batch_size=..., "
            "--set selection.n_synthetic=[...]) or a machine with more memory"
        )
    except Exception as exc:
        if debug:
            raise
        if "out of memory" in str(exc).lower():  # torch.OutOfMemoryError and CUDA kin
            return fail(
                f"out of memory on the device ({_one_paragraph(exc)[:200]}); use "
                "smaller batches or networks, or --device cpu"
            )
        return fail(
            f"internal error ({type(exc).__name__}: {_one_paragraph(exc)[:300]}). This is a "
            "bug in unseen, not a problem with your input: please report it with the "
            "command; UNSEEN_DEBUG=1 shows the traceback"
        )


if __name__ == "__main__":
    sys.exit(main())
