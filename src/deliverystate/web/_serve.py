"""Running the receiver: ``serve`` (uvicorn, one worker) and the HTTP protocol it uses."""

from __future__ import annotations

import json
import sys
from typing import Any

from .._tracker import Tracker
from ..stores import DEFAULT_DB, open_store
from ._app import create_app
from ._requests import MAX_BODY_BYTES

__all__ = ["http_protocol", "serve"]


def http_protocol() -> Any:
    """The HTTP protocol ``serve`` gives uvicorn: its own, but a huge ``Content-Length`` is 413.

    uvicorn's httptools parser refuses a declared length that does not fit in
    64 bits before the app sees the request, with a plain-text 400; a client
    that declares ``10**20`` bytes is sending a body too large, so this
    protocol answers it as the app answers any body over the limit (a JSON
    413).  Without httptools uvicorn uses h11, which hands such a request to
    the app: ``"auto"`` is then right as it is.
    """
    try:
        import httptools  # noqa: PLC0415 - optional, as in uvicorn
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415
    except ImportError:
        return "auto"

    class Protocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            # called by uvicorn from inside its ``except HttpParserError`` block
            error = sys.exc_info()[1]
            if isinstance(error, httptools.HttpParserError) and "Content-Length" in str(error):
                body = json.dumps({"error": "body too large", "limit_bytes": MAX_BODY_BYTES})
                self.transport.write(
                    b"HTTP/1.1 413 Request Entity Too Large\r\n"
                    b"content-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n".encode()
                    + b"connection: close\r\n\r\n"
                    + body.encode()
                )
                self.transport.close()
                return
            super().send_400_response(msg)

    return Protocol


def serve(
    db: str = DEFAULT_DB,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    *,
    basic_auth: tuple[str, str] | None = None,
    access_log: bool = False,
) -> None:
    """Run the receiver with uvicorn (one worker) on the store named by ``db`` until stopped.

    ``db`` is what :func:`~deliverystate.stores.open_store` takes (an SQLite
    path by default).  Opening it may raise ``StoreUnavailable`` or
    ``SchemaMismatch`` before anything listens.  The access log is off by
    default because a ``?token=`` in a logged URL would leak the secret.
    """
    import uvicorn  # noqa: PLC0415 - only serving needs it; mounting needs Starlette alone

    store = open_store(db)
    try:
        app = create_app(Tracker(store), token=token, basic_auth=basic_auth)
        print(
            f"deliverystate: store {getattr(store, 'target', db)}; Clickatell callback URL "
            f"http://{host}:{port}/callbacks/clickatell, status page http://{host}:{port}/",
            file=sys.stderr,
        )
        uvicorn.run(
            app, host=host, port=port, workers=1, access_log=access_log, http=http_protocol()
        )
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
