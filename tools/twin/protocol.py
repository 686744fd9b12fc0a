"""How the real ``kaggle`` client reaches a local server: the HTTP side shared by the twin and tests/kaggle_stub.py.

``KAGGLE_API_ENVIRONMENT=LOCALHOST`` makes the client call ``http://localhost/api/v1/<service>/<Method>``, always
on port 80. To reach a server on any port it runs as a plain HTTP forward proxy on 127.0.0.1 and the client is given
``HTTP_PROXY=http://127.0.0.1:PORT`` with empty ``NO_PROXY``/``no_proxy``: the request line then carries the absolute
URL. Every API call is a POST with a JSON body; an answer is JSON, and one with a top-level ``code`` ≥ 400 counts as
an error for the client even with HTTP 200. Besides the API the server answers the URLs it hands out itself (uploads,
downloads), which come through the same proxy.

:class:`ProxyServer` reads each request into a :class:`Recorded` (the ``Authorization`` header is dropped; only the
user name of a Basic credential is kept), asks its handler for an :class:`Answer` and writes it: JSON or bytes, a
body cut short on purpose (``cut_at``: Content-Length says more than is sent, as a dropped connection does), or a
stream (server-sent events) written as it is produced.
"""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_PREFIX = "/api/v1/"
BASE_URL = "http://localhost"  # what the client calls; every URL the server hands out starts with it
MAX_BODY_BYTES = 1 << 30  # a bound, so a broken client cannot fill memory
HIDDEN_HEADERS = ("authorization", "proxy-authorization")


@dataclass
class Recorded:
    method: str  # HTTP verb
    path: str  # URL path, e.g. /api/v1/kernels.KernelsApiService/SaveKernel
    headers: dict[str, str]  # without Authorization / Proxy-Authorization
    body: Any = None  # parsed JSON for API calls, else None
    raw: bytes = b""  # the bytes of a non-JSON body (an upload)
    query: dict[str, str] = field(default_factory=dict)
    host: str = ""  # the host of an absolute URL (proxy form); "" when the request named only a path
    user: str | None = None  # the user name of a Basic Authorization header (never the key)

    @property
    def api_method(self) -> str | None:
        """``SaveKernel`` for ``/api/v1/kernels.KernelsApiService/SaveKernel``; None for blob/file traffic."""
        if not self.path.startswith(API_PREFIX):
            return None
        service, _, method = self.path[len(API_PREFIX):].partition("/")
        return method if "." in service and method and "/" not in method else None


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)  # JSON-serialisable, or bytes
    headers: dict[str, str] = field(default_factory=dict)
    cut_at: int | None = None  # send only this many bytes of a bytes body, Content-Length still the whole
    stream: Iterable[bytes] | None = None  # written chunk by chunk, no Content-Length, connection closed at the end


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    """An error the way Kaggle's API returns one: that HTTP status and ``{"code", "message"}``."""
    return Answer(status, {"code": status, "message": message}, dict(headers or {}))


def basic_user(value: str | None) -> str | None:
    """The user name in ``Basic base64(user:key)``; None for anything else."""
    if not value or not value.lower().startswith("basic "):
        return None
    try:
        return base64.b64decode(value.split(None, 1)[1]).decode("utf-8", "replace").partition(":")[0] or None
    except (ValueError, IndexError):
        return None


class ProxyServer:
    """A threading HTTP server on 127.0.0.1 that answers every request with ``handler(Recorded) -> Answer``."""

    def __init__(self, handler: Callable[[Recorded], Answer], *, host: str = "127.0.0.1", port: int = 0,
                 name: str = "kaggle-proxy"):
        self.handler, self.host, self.name = handler, host, name
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> int:
        """Create the listening socket (the port is known from here on); returns the port."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 60  # socket timeout: a stalled client cannot hold a thread forever

            def log_message(self, *args: Any) -> None:  # the handler records what matters
                pass

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks, total = [], 0
                    while total <= MAX_BODY_BYTES:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        total += size
                        self.rfile.readline()
                    return b"".join(chunks)
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                raw = self._read_body()
                url = urlsplit(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HIDDEN_HEADERS}
                body = None
                if url.path.startswith(API_PREFIX) and self.command == "POST":
                    try:
                        body = json.loads(raw or b"{}")
                    except ValueError:
                        body = None
                request = Recorded(self.command, url.path, headers, body, raw if body is None else b"",
                                   dict(parse_qsl(url.query)), url.hostname or "",
                                   basic_user(self.headers.get("Authorization")))
                try:
                    answer = outer.handler(request)
                except Exception as exc:  # noqa: BLE001 - a bug in a handler is a 500 for the client, not a dead thread
                    answer = error(500, f"{type(exc).__name__}: {exc}")
                self._write(answer)

            def _write(self, answer: Answer) -> None:
                is_bytes = isinstance(answer.body, (bytes, bytearray))
                data = bytes(answer.body) if is_bytes else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                default_type = "application/octet-stream" if is_bytes else "application/json"
                self.send_header("Content-Type", answer.headers.get("Content-Type", default_type))
                for key, value in answer.headers.items():
                    if key.lower() != "content-type":
                        self.send_header(key, value)
                if answer.stream is None:
                    self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if self.command == "HEAD":
                    return
                try:
                    if answer.stream is not None:
                        for chunk in answer.stream:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                    else:
                        self.wfile.write(data if answer.cut_at is None else data[:answer.cut_at])
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        self._server = ThreadingHTTPServer((self.host, self._requested_port), Handler)
        self._server.daemon_threads = True
        return self.port

    def start(self) -> int:
        """Bind (if not yet) and serve in a background thread; returns the port."""
        if self._server is None:
            self.bind()
        assert self._server is not None  # bind made it
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)
        self._thread.start()
        return self.port

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`shutdown` is called from another."""
        if self._server is None:
            self.bind()
        assert self._server is not None  # bind made it
        self._server.serve_forever(poll_interval=0.1)

    @property
    def port(self) -> int:
        assert self._server is not None, "bind() or start() the server first"
        return self._server.server_address[1]

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
