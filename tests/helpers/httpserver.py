"""A threaded loopback HTTP server for download tests: feeds, media and broken responses."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr


@dataclass
class Route:
    """What one path answers."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    #: Send only this many body bytes, then reset the connection (a broken download).
    cut_after: int | None = None
    #: Declared Content-Length (default: the body's length; -1: none, the body ends at close).
    length: int | None = None


@dataclass
class Server:
    """A running server: its base URL, its routes (editable while running), the request log."""

    base: str
    routes: dict[str, Route]
    requests: list[str]
    #: The Cookie header of each request, in the order of ``requests`` ("" when none).
    cookies: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        return self.base + path


def _handler(
    routes: dict[str, Route], log: list[str], cookies: list[str]
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _route(self) -> Route | None:
            log.append(f"{self.command} {self.path}")
            cookies.append(self.headers.get("Cookie", ""))
            return routes.get(self.path.split("?", 1)[0])

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def _answer(self, *, head: bool) -> None:
            route = self._route()
            if route is None:
                route = Route(body=b"not found", status=404, content_type="text/plain")
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            length = route.length if route.length is not None else len(route.body)
            if length >= 0:
                self.send_header("Content-Length", str(length))
            else:
                self.close_connection = True
            for key, value in route.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if head:
                return
            if route.cut_after is not None:
                self.wfile.write(route.body[: route.cut_after])
                self.wfile.flush()
                self.close_connection = True
                import socket

                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(route.body)

    return Handler


@contextmanager
def serve(routes: dict[str, Route] | None = None) -> Iterator[Server]:
    """Serve ``routes`` on 127.0.0.1 (a free port) in a thread, for the ``with`` block."""
    routes = dict(routes or {})
    log: list[str] = []
    cookies: list[str] = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes, log, cookies))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", routes, log, cookies)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def rss(
    items: list[tuple[str, str, str]], *, title: str = "Test Cast", item_type: str = "audio/mpeg"
) -> bytes:
    """An RSS 2.0 + iTunes feed; items are (guid, title, enclosure URL), newest first."""
    dates = [f"Mon, {10 - i:02d} Nov 2026 10:00:00 GMT" for i in range(len(items))]
    body = "".join(
        f"<item><title>{t}</title><guid>{g}</guid><pubDate>{d}</pubDate>"
        f'<enclosure url={quoteattr(u)} length="0" type="{item_type}"/>'
        "<itunes:duration>00:03</itunes:duration></item>"
        for (g, t, u), d in zip(items, dates, strict=True)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
        f"<channel><title>{title}</title><link>http://example.invalid/</link>"
        f"<description>tests</description>{body}</channel></rss>"
    ).encode()


def atom(items: list[tuple[str, str, str]], *, title: str = "Atom Cast") -> bytes:
    """An Atom feed with enclosure links; items are (id, title, URL), newest first."""
    entries = "".join(
        f"<entry><id>{g}</id><title>{t}</title>"
        f"<updated>2026-11-{20 - i:02d}T10:00:00Z</updated>"
        f'<link rel="enclosure" href={quoteattr(u)} type="audio/mpeg"/></entry>'
        for i, (g, t, u) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{title}</title><id>urn:test:atom</id><updated>2026-11-20T10:00:00Z</updated>"
        f"{entries}</feed>"
    ).encode()
