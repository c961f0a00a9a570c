"""`cnnkit serve`: the face recognition service (HTTP API + web page), and its API keys.

    cnnkit serve keys create --gallery office.db --role write --label kiosk   # prints the key on its last line
    cnnkit serve keys list --gallery office.db
    cnnkit serve keys revoke --gallery office.db 3
    cnnkit serve --gallery office.db [--host 127.0.0.1] [--port 8000] [--workers N]
    cnnkit serve --gallery milvus://127.0.0.1:19530/office --keys office-keys.db   # a Milvus gallery
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .common import port, positive_float, positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve", help="the face recognition service: HTTP API and web page (and `serve keys`)",
        description="Serve a gallery over HTTP: an API (OpenAPI schema at /openapi.json) and a web page at /. "
                    "Every call but /health needs a key: `cnnkit serve keys create --gallery G --role write`.")
    parser.add_argument("--gallery", default=os.environ.get("CNNKIT_GALLERY"),
                        help="gallery: a SQLite file (created if missing) or milvus://HOST:PORT/COLLECTION, "
                             "milvus-lite://PATH (default $CNNKIT_GALLERY)")
    parser.add_argument("--keys", metavar="FILE", default=os.environ.get("CNNKIT_KEYS"),
                        help="SQLite file of the API keys (created if missing; default: the gallery file itself; "
                             "needed for a Milvus gallery; or $CNNKIT_KEYS)")
    parser.set_defaults(needs_gallery=True)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=port, default=8000, help="default 8000")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="worker processes, each with its own copy of the models (default 1)")
    parser.add_argument("--threads", type=positive_int,
                        help="PyTorch threads per worker (default 1: more threads help only large batches)")
    parser.add_argument("--max-upload-mb", type=positive_float, default=10.0,
                        help="largest request body, MiB (default 10)")
    parser.add_argument("--max-files", type=positive_int, default=10, help="photos per enrollment request (default 10)")
    parser.add_argument("--max-pixels", type=positive_int, default=40_000_000,
                        help="largest photo, width x height (default 40,000,000)")
    parser.add_argument("--timeout", type=positive_float, default=30.0,
                        help="seconds to receive a request, and to wait for the face models (default 30)")
    parser.add_argument("--header-timeout", type=positive_float, default=10.0,
                        help="seconds a connection has to send its request headers, else it is closed (default 10)")
    parser.add_argument("--batch-size", type=positive_int, default=8,
                        help="photos run through the models together at most, across requests (1: no batching)")
    parser.add_argument("--batch-wait-ms", type=positive_float, default=0.0,
                        help="how long a lone request waits for others to batch with (default 0)")
    parser.add_argument("--store-images", metavar="DIR",
                        help="keep uploaded enrollment photos in DIR (default: keep none); deleted with the person")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--ssl-keyfile", help="... and this private key (PEM)")
    parser.add_argument("--no-access-log", dest="access_log", action="store_false", help="do not log every request")
    parser.set_defaults(run=run_serve)

    sub = parser.add_subparsers(dest="serve_command", metavar="keys", required=False)
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    def key_parser(name: str, help: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help)
        p.add_argument("--gallery", default=argparse.SUPPRESS, help="gallery file (default $CNNKIT_GALLERY)")
        p.add_argument("--keys", metavar="FILE", default=argparse.SUPPRESS,
                       help="the keys file the service was given with --keys (instead of the gallery file)")
        p.set_defaults(needs_gallery=False)  # --gallery or --keys: _keys_file says which is missing
        return p

    p = key_parser("create", "create a key; prints it once, alone on the last line (only its hash is stored)")
    p.add_argument("--role", choices=["read", "write"], default="read",
                   help="read: verify, identify, list; write: also enroll, rename, delete (default read)")
    p.add_argument("--label", default="", help="a note saying whose key it is")
    p.set_defaults(run=run_keys_create)

    p = key_parser("list", "list keys (ids, roles, labels, when created and revoked; never the keys)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=run_keys_list)

    p = key_parser("revoke", "revoke a key by id; it is refused from the next request on")
    p.add_argument("key_id", type=positive_int, metavar="ID")
    p.set_defaults(run=run_keys_revoke)


def _keys_file(args: argparse.Namespace) -> str:
    """The SQLite file the keys live in: --keys, else the gallery file."""
    from ..errors import SettingsError
    from ..faces.gallery.backends import backend_of

    if args.keys:
        return args.keys
    if not args.gallery:
        raise SettingsError("say where the keys are: --gallery G (a SQLite gallery) or --keys FILE "
                            "(or set $CNNKIT_GALLERY / $CNNKIT_KEYS)")
    if backend_of(args.gallery) != "sqlite":
        raise SettingsError(f"{args.gallery}: a Milvus gallery keeps no API keys; give the keys file the "
                            f"service uses (--keys FILE)")
    return args.gallery


def _store(args: argparse.Namespace, *, create: bool = False):
    from ..faces.gallery.store import GalleryStore

    return GalleryStore(_keys_file(args), create=create)


def run_keys_create(args: argparse.Namespace) -> int:
    from ..faces.gallery.keys import create_key

    store = _store(args, create=True)
    try:
        token, key = create_key(store, args.role, label=args.label)
    finally:
        store.close()
    label = f" ({key.label})" if key.label else ""
    print(f"created {key.role} key #{key.id}{label} for {_keys_file(args)}; it is shown only now, keep it secret:",
          file=sys.stderr)
    print(token)
    return 0


def run_keys_list(args: argparse.Namespace) -> int:
    from ..faces.gallery.keys import list_keys

    store = _store(args)
    try:
        keys = list_keys(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps([k.to_dict() for k in keys]))
        return 0
    if not keys:
        where = f"--keys {args.keys}" if args.keys else f"--gallery {args.gallery}"
        print(f"no keys in {_keys_file(args)}; create one with `cnnkit serve keys create {where}`")
    for k in keys:
        state = "active" if k.active else f"revoked {k.revoked_at}"
        print(f"#{k.id:<4} {k.role:5} created {k.created_at}  {state:28} {k.label}")
    return 0


def run_keys_revoke(args: argparse.Namespace) -> int:
    from ..faces.gallery.keys import revoke_key

    store = _store(args)
    try:
        key = revoke_key(store, args.key_id)
    finally:
        store.close()
    print(f"key #{key.id} ({key.role}{', ' + key.label if key.label else ''}) revoked at {key.revoked_at}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from ..runtime.device import resolve_device
    from ..runtime.extras import require

    for module in ("fastapi", "uvicorn", "python_multipart"):
        require(module, extra="serve", purpose="the service")
    resolve_device(args.device)  # a device that is not there: one line now, not a traceback from a worker
    from ..service.server import serve
    from ..service.settings import ServiceSettings

    settings = ServiceSettings(
        gallery=args.gallery, keys=args.keys, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_files=args.max_files, max_pixels=args.max_pixels, request_timeout_s=args.timeout,
        header_timeout_s=args.header_timeout, batch_size=args.batch_size, batch_wait_ms=args.batch_wait_ms,
        threads=args.threads,
        store_images=args.store_images, device=args.device)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    else:
        logging.getLogger("cnnkit").setLevel(logging.INFO)
    serve(settings, host=args.host, port=args.port, workers=args.workers, access_log=args.access_log,
          ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    return 0

