"""A real HTTP receiver on a loopback port, for webhook and callback tests."""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 200  # what the receiver answered
    at: float = 0.0  # time.monotonic() when it arrived


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


class Receiver:
    """Records every POST; answers each path with its outage reply while it has one (`fail`,
    `recover`), else from its queue of replies, then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._replies: dict[str, list[Reply]] = defaultdict(list)
        self._outages: dict[str, Reply] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    queue = receiver._replies[self.path]
                    reply = receiver._outages.get(self.path) or (queue.pop(0) if queue else Reply())
                    receiver.received.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            status=reply.status,
                            at=time.monotonic(),
                        )
                    )
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str = "/hook") -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def reply(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._replies[path].extend(replies)

    def fail(self, path: str, reply: Reply) -> None:
        """Answer every POST to `path` with `reply` until `recover(path)`."""
        with self._lock:
            self._outages[path] = reply

    def recover(self, path: str) -> None:
        with self._lock:
            self._outages.pop(path, None)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]


def closed_port_url(path: str = "/hook") -> str:
    """A loopback URL where nothing listens: every attempt is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
