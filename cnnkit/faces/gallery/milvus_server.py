"""A Milvus standalone server on this machine, for tests, benchmarks and trying a `milvus://` gallery.

    with embedded_milvus("/tmp/milvus-data") as address:      # e.g. "127.0.0.1:40123"
        gallery = Gallery(f"milvus://{address}/office", create=True)

The PyPI package `milvus` (the "milvus-server" extra, pinned to 2.3.5) carries
the server's binaries; this starts one on loopback with its data, logs and
configuration under `base_dir`, on a free port, and stops it on leaving the
block. It is one process holding every Milvus role (proxy, coordinators, query,
data and index nodes) with an embedded etcd and a local message queue: the same
gRPC API as a cluster, so the `milvus://` backend can be proven against a real
server, but none of a cluster's capacity or redundancy (docs/distributed.md).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from ...errors import GalleryError
from ...runtime.extras import require

START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_milvus(base_dir: str | os.PathLike, *, port: int | None = None) -> Iterator[str]:
    """Start the embedded server (data under `base_dir`, gRPC on `port` or a free one); "127.0.0.1:PORT".

    The server keeps what it stored under `base_dir`: starting it again on the
    same folder opens the same collections.
    """
    milvus = require("milvus", extra="milvus-server", purpose="the embedded Milvus server")
    server = milvus.MilvusServer(milvus.MilvusServerConfig(), wait_for_started=False)
    server.set_base_dir(os.fspath(base_dir))
    server.listen_port = port or free_port()
    try:
        server.start()
        server.wait_started(timeout=int(START_TIMEOUT_S * 1000))
    except (RuntimeError, TimeoutError, OSError) as exc:
        server.stop()
        log = os.path.join(os.fspath(base_dir), "logs", "milvus-stderr.log")
        raise GalleryError(f"the embedded Milvus server did not start ({exc}); see {log}") from None
    try:
        yield f"{server.server_address}:{server.listen_port}"
    finally:
        server.stop()


__all__ = ["embedded_milvus", "free_port"]
