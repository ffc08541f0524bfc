"""A TCP proxy that can play a database outage without touching the database server.

The PostgreSQL server of the test machine is shared: it must not be stopped
or reconfigured.  A store pointed at this proxy sees an outage when the proxy
goes :meth:`~Proxy.down` (it closes its listening socket, so new connections
are refused, and resets every connection it carries, as a crashed or
restarting server does) and sees the server back when it comes
:meth:`~Proxy.up` again on the same port.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterator

__all__ = ["Proxy", "proxy_to"]


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``target``; refuses and cuts while down."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self.up()

    def up(self) -> None:
        """Listen (again, on the same port) and forward every connection accepted."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and reset every connection carried so far."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            listener.close()
        for pair in pairs:
            for side in pair:
                _reset(side)

    def close(self) -> None:
        """Go down for good."""
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: down
            try:
                server = socket.create_connection(self.target)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    _reset(client)
                    _reset(server)
                    return
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        """Copy bytes both ways until either side ends or the proxy cuts them."""
        peers = {client: server, server: client}
        try:
            while True:
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    peers[source].sendall(data)
        except (OSError, ValueError):  # cut by down() or reset by a peer
            return
        finally:
            _reset(client)
            _reset(server)


def _reset(side: socket.socket) -> None:
    """Cut a connection at once, as a dead server would (shut down, then closed with an RST).

    The shutdown also wakes a pump thread waiting on the socket, which would
    otherwise keep it open until its ``select`` returns.
    """
    with contextlib.suppress(OSError):
        side.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        side.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        side.close()


@contextlib.contextmanager
def proxy_to(host: str, port: int) -> Iterator[Proxy]:
    """A proxy to ``host:port``, closed afterwards."""
    proxy = Proxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()
