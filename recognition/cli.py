"""Command line: ``python -m recognition weights | enroll | identify | list | remove``.

    python -m recognition weights [--name NAME]
    python -m recognition enroll NAME IMAGE... [--gallery PATH]
    python -m recognition identify IMAGE... [--gallery PATH] [--json]
    python -m recognition list [--gallery PATH]
    python -m recognition remove NAME [--gallery PATH]

The default gallery is the configured one (``FACEFLEET_GALLERY``, by default an object
in the embedded stack's model bucket); ``--gallery`` takes a local file or an
``s3://bucket/key``. ``identify --json`` prints one JSON object per image per line; a
bad image gets its own line with an ``"error"`` and the exit status is 1 at the end.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import aws
from config.env import ConfigError
from config.settings import Settings
from recognition.errors import ImageError, RecognitionError
from recognition.gallery_store import GalleryStore
from recognition.images import read_image_file
from recognition.names import validate_name
from recognition.weights import ensure_weights

if TYPE_CHECKING:
    from recognition.pipeline import Recognizer

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per action)."""
    parser = argparse.ArgumentParser(
        prog="python -m recognition", description="Face recognition from the command line.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gallery_help = "gallery file or s3://bucket/key (default: FACEFLEET_GALLERY)"

    p = sub.add_parser("weights", help="obtain, convert and verify weights; print path, sha256")
    p.add_argument("--name", help="registry name, .pt path or s3:// URI "
                                  "(default: FACEFLEET_WEIGHTS)")

    p = sub.add_parser("enroll", help="add photos of one person to the gallery")
    p.add_argument("name", metavar="NAME")
    p.add_argument("images", metavar="IMAGE", nargs="+", type=Path)
    p.add_argument("--gallery", metavar="PATH", help=gallery_help)

    p = sub.add_parser("identify", help="recognise the faces in images")
    p.add_argument("images", metavar="IMAGE", nargs="+", type=Path)
    p.add_argument("--gallery", metavar="PATH", help=gallery_help)
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("--batch", type=int, default=8, metavar="N",
                   help="images per embedder batch (default 8)")

    p = sub.add_parser("list", help="list enrolled identities")
    p.add_argument("--gallery", metavar="PATH", help=gallery_help)

    p = sub.add_parser("remove", help="remove an identity from the gallery")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--gallery", metavar="PATH", help=gallery_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        handler = {"weights": _weights, "enroll": _enroll, "identify": _identify,
                   "list": _list, "remove": _remove}[args.command]
        return handler(args, settings)
    except (RecognitionError, ConfigError) as exc:
        _error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _error(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _weights(args: argparse.Namespace, settings: Settings) -> int:
    spec = args.name or settings.weights
    client = aws.s3_client(settings, "interactive") if spec.startswith("s3://") else None
    info = ensure_weights(spec, settings.cache_dir, s3_client=client)
    print(f"name: {info.name}\npath: {info.path}\nsha256: {info.sha256}\n"
          f"embedding_dim: {info.embedding_dim}\nthreshold: {info.threshold}")
    return EXIT_OK


def _recognizer(args: argparse.Namespace, settings: Settings) -> Recognizer:
    # Deferred: torch and the models load only for the commands that recognise, so
    # `weights`, `list` and `remove` answer in well under a second.
    from recognition.pipeline import Recognizer

    return Recognizer.from_settings(settings, gallery=args.gallery)


def _enroll(args: argparse.Namespace, settings: Settings) -> int:
    validate_name(args.name)  # before loading the model
    photos = []
    for path in args.images:
        try:
            photos.append((read_image_file(path, settings.max_pixels,
                                           settings.max_upload_bytes), path.name))
        except ImageError as exc:
            raise ImageError(f"{path}: {exc}; nothing was enrolled", exc.code) from None
    recognizer = _recognizer(args, settings)
    gallery = recognizer.enroll(args.name, photos)
    print(f"enrolled {len(photos)} photo(s) of {args.name} "
          f"({gallery.counts()[args.name]} in all) in {recognizer.gallery_store.location}, "
          f"gallery version {gallery.version}")
    return EXIT_OK


def _identify(args: argparse.Namespace, settings: Settings) -> int:
    if args.batch < 1:
        raise ConfigError("--batch must be at least 1")
    recognizer: Recognizer | None = None  # loaded once an image passes its probe
    failed = False
    for start in range(0, len(args.images), args.batch):
        paths = args.images[start:start + args.batch]
        datas: list[bytes | ImageError] = []
        for path in paths:
            try:
                datas.append(read_image_file(path, settings.max_pixels,
                                             settings.max_upload_bytes))
            except ImageError as exc:
                datas.append(exc)
        good = [d for d in datas if isinstance(d, bytes)]
        if good and recognizer is None:
            recognizer = _recognizer(args, settings)
        results = iter(recognizer.recognize_many(good) if recognizer is not None else [])
        for path, data in zip(paths, datas, strict=True):
            result = data if isinstance(data, ImageError) else next(results)
            failed |= isinstance(result, ImageError)
            _print_result(str(path), result, args.json)
    return EXIT_FAILED if failed else EXIT_OK


def _print_result(image: str, result: Any, as_json: bool) -> None:
    if isinstance(result, ImageError):
        if as_json:
            print(json.dumps({"image": image, "error": str(result), "code": result.code}),
                  flush=True)
        else:
            print(f"{image}: error: {result}", flush=True)
        _error(f"{image}: {result}")
        return
    if as_json:
        print(json.dumps({"image": image, **result.to_dict()}), flush=True)
        return
    print(f"{image}: {result.label}", flush=True)
    for face in result.faces:
        distance = "-" if face.distance is None else f"{face.distance:.3f}"
        box = ", ".join(f"{v:.0f}" for v in face.box)
        print(f"  {face.identity} (distance {distance}, p={face.probability:.3f}) at [{box}]")


def _list(args: argparse.Namespace, settings: Settings) -> int:
    store = GalleryStore.from_settings(settings, args.gallery)
    gallery = store.load()
    for name, count in gallery.counts().items():
        print(f"{name}\t{count}")
    print(f"{len(gallery.identities)} identities, gallery version {gallery.version} "
          f"({store.location})", file=sys.stderr)
    return EXIT_OK


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    store = GalleryStore.from_settings(settings, args.gallery)
    if not store.remove(args.name):
        _error(f"{args.name!r} is not enrolled in {store.location}")
        return EXIT_FAILED
    print(f"removed {args.name} from {store.location}")
    return EXIT_OK
