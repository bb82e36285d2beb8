"""``unseen export``, ``unseen predict`` and ``unseen embed-texts``: use a trained model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from unseen.commands import add_command, refuse_existing

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    e = add_command(sub, "export", _cmd_export, device=True)
    e.add_argument("run_dir", help="output folder of a finished `unseen run`")
    e.add_argument("--out", required=True, help="artefact file to write (e.g. model.unseen)")
    e.add_argument("--seed", type=int, help="which seed's model (default: the run's first)")
    e.add_argument(
        "--text-embedder",
        help="the dataset's class semantics ARE embeddings of class texts by this model "
        "(e.g. all-MiniLM-L6-v2); allows new classes given as text at prediction time",
    )
    e.add_argument(
        "--new-classes",
        help="add these classes now (vectors: .csv name,v1.. / .json / .npz / .npy), trained "
        "like the run's unseen classes, with the real seen features: the best place to add them",
    )
    e.add_argument("--new-names", help="comma-separated names for the rows of a .npy file")
    e.add_argument("--force", action="store_true", help="replace an existing --out file")

    p = add_command(sub, "predict", _cmd_predict, device=True)
    p.add_argument("artifact", help="artefact file written by `unseen export`")
    p.add_argument("--features", required=True, help=".npy, .npz, .csv or .mat (N x d)")
    p.add_argument("--key", help="array name in a .npz/.mat file (default: features)")
    p.add_argument("--new-classes", help="new class vectors: .csv (name,v1..), .json, .npz, .npy")
    p.add_argument("--new-names", help="comma-separated names for the rows of a .npy file")
    p.add_argument("--new-text", help="new class descriptions: .json, .csv (name,text), .tsv")
    p.add_argument(
        "--n-synthetic",
        type=int,
        help="generator samples per class for the refit (default: the run's choice)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the refit (sampling, classifier)")
    p.add_argument("--top-k", type=int, default=1, help="also list the k best classes")
    p.add_argument("--scores", action="store_true", help="write the classifier's scores too")
    p.add_argument(
        "--calibrated",
        action="store_true",
        help="subtract the validation gamma from seen-class scores (calibrated stacking)",
    )
    p.add_argument("--out", help="predictions file (.csv or .json); default: CSV to stdout")
    p.add_argument("--save-artifact", help="also save the refit artefact (with new classes)")
    p.add_argument("--force", action="store_true", help="replace existing output files")

    t = add_command(sub, "embed-texts", _cmd_embed)
    t.add_argument("texts", help=".json {name: text}, .csv name,text or .tsv name<TAB>text")
    t.add_argument("--out", required=True, help=".npz file to write")
    t.add_argument("--model", default="all-MiniLM-L6-v2")
    t.add_argument("--force", action="store_true")


def _new_class_vectors(args: argparse.Namespace) -> tuple[list[str], Any]:
    """(names, vectors) of ``--new-classes`` (``--new-names`` name the rows of a .npy)."""
    from unseen.predict import load_class_vectors

    names = args.new_names.split(",") if args.new_names else None
    return load_class_vectors(args.new_classes, names)


def _cmd_export(args: argparse.Namespace) -> int:
    """write one artefact file (method + classifier + preprocessing + classes) from a finished
    run

    Rebuild the final classifier of one seed of a finished `unseen run` exactly as the run
    trained it (needs the run's data), and save method, classifier, preprocessing and class
    names/semantics as one safely loadable file.
    """
    from unseen.artifact import export_run
    from unseen.cli import _check_device
    from unseen.errors import ConfigError
    from unseen.predict import TEXT_MODELS

    _check_device(args.device)
    embedder = None
    if args.text_embedder:
        if args.text_embedder not in TEXT_MODELS:
            raise ConfigError(
                f"unknown --text-embedder {args.text_embedder!r}; known: {', '.join(TEXT_MODELS)}"
            )
        embedder = {"name": args.text_embedder, "dim": TEXT_MODELS[args.text_embedder][2]}
    names, vecs = _new_class_vectors(args) if args.new_classes else (None, None)
    art = export_run(
        args.run_dir,
        args.out,
        seed=args.seed,
        text_embedder=embedder,
        new_names=names,
        new_semantics=vecs,
        device=args.device,
        overwrite=args.force,
    )
    d = art.describe()
    print(
        f"wrote {args.out}: {d['method']} + {d['classifier']} classifier, {d['n_classes']} "
        f"classes ({d['n_seen']} seen), {d['feature_dim']}-d features, "
        f"{d['semantic_dim']}-d semantics ({d['semantics_source']})"
    )
    return 0


def _check_text_allowed(art) -> str:
    from unseen.errors import ConfigError

    emb = art.text_embedder
    if emb is None:
        raise ConfigError(
            f"this model was trained on {art.semantic_dim}-d class semantics "
            f"'{art.semantics_source}', not on embeddings of class texts, so text "
            "descriptions cannot describe new classes for it (their embeddings live in another "
            "space). Give the new classes as vectors of the same kind with --new-classes, or "
            "train on text-embedding semantics (`unseen embed-texts`) and export with "
            "--text-embedder"
        )
    return str(emb["name"])


def _cmd_predict(args: argparse.Namespace) -> int:
    """classify feature vectors with an artefact, optionally adding new classes

    Classify feature vectors (raw, as the backbone gives them: the saved preprocessing is
    applied). New classes given by --new-classes (vectors in the model's semantic space) or
    --new-text (descriptions, embedded with the text model the artefact was trained on) are
    synthesized by the generator and the classifier is refit over old + new classes.
    """
    from unseen.artifact import load_artifact
    from unseen.cli import _check_device
    from unseen.config import MAX_SEED, check_number
    from unseen.errors import ConfigError
    from unseen.predict import (
        add_classes,
        embed_texts,
        load_class_texts,
        load_features,
        predict,
        write_predictions,
    )

    check_number("--top-k", args.top_k, lo=1, integer=True)
    check_number("--seed", args.seed, lo=0, hi=MAX_SEED, integer=True)
    if args.calibrated and (args.new_classes or args.new_text):
        raise ConfigError(
            "--calibrated cannot be combined with new classes: the validation gamma belongs to "
            "the classifier trained on real seen features, and adding classes refits it on "
            "generator samples"
        )
    if args.new_classes and args.new_text:
        raise ConfigError("give new classes either as vectors (--new-classes) or as text")
    if args.n_synthetic is not None:
        check_number("--n-synthetic", args.n_synthetic, lo=1, integer=True)
    _check_device(args.device)
    refuse_existing(args.out, args.save_artifact, force=args.force)
    art = load_artifact(args.artifact, device=args.device)

    x = load_features(args.features, art.feature_dim, args.key)
    if args.new_classes or args.new_text:
        if args.new_classes:
            names, vecs = _new_class_vectors(args)
        else:
            model = _check_text_allowed(art)
            names, texts = load_class_texts(args.new_text)
            vecs = embed_texts(texts, model, device=args.device)
        where = args.new_classes or args.new_text
        art = add_classes(
            art, names, vecs, n_synthetic=args.n_synthetic, seed=args.seed, where=where
        )
        print(
            f"added {len(names)} class(es) ({', '.join(names[:5])}"
            f"{' ...' if len(names) > 5 else ''}); classifier refit over {len(art.classes)} "
            "classes on generator samples",
            file=sys.stderr,
        )
        if args.save_artifact:
            art.save(args.save_artifact, overwrite=args.force)
            print(f"wrote {args.save_artifact}", file=sys.stderr)
    if args.top_k > len(art.classes):
        print(
            f"note: --top-k {args.top_k} but the model knows {len(art.classes)} classes; "
            f"listing {len(art.classes)}",
            file=sys.stderr,
        )
    preds = predict(art, x, top_k=args.top_k, calibrated=args.calibrated)
    text = write_predictions(preds, args.out, scores=args.scores, force=args.force)
    if text is not None:
        sys.stdout.write(text)
    else:
        print(f"wrote {args.out} ({len(x)} rows)", file=sys.stderr)
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    """embed class descriptions with a sentence-embedding model (the `text` extra)

    Write the embeddings of class descriptions as an .npz with arrays 'names' and 'semantics':
    class semantics for a native dataset, or new classes for `unseen predict --new-classes`.
    """
    import numpy as np

    from unseen.predict import embed_texts, load_class_texts

    out = Path(args.out)
    refuse_existing(out, force=args.force)
    names, texts = load_class_texts(args.texts)
    emb = embed_texts(texts, args.model)
    np.savez(out, names=np.array(names, dtype=str), semantics=emb, model=np.array(args.model))
    print(f"wrote {out}: {len(names)} x {emb.shape[1]} ({args.model})")
    return 0
