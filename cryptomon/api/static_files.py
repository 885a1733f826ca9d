"""The dashboard's files: ``api/static/`` (HTML, CSS, ES modules) and plotly.js from the
installed ``plotly`` package (DESIGN.md section 9: no copy in the repo, no CDN).

The static files hold no data (the page calls the API with the user's token), so they need
no token, and they are not counted against ``api.max_inflight_per_ip`` (answered from memory,
they hold no slot worth capping); the per-address rate limit still applies. The set of files
is read once at start: a name that is not one of them is 404, so no path ever reaches the
file system.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from pathlib import Path

from aiohttp import web

from cryptomon.api.errors import ApiError
from cryptomon.api.routing import CONTEXT, client_address

STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# the page's own scripts only; plotly injects <style> elements (style-src 'unsafe-inline')
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
PLOTLY_PATH = "/vendor/plotly.min.js"
_PLOTLY_MAX_AGE_S = 7 * 24 * 3600


def _load(directory: Path) -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(directory.rglob("*")):
        kind = _TYPES.get(path.suffix)
        if path.is_file() and kind is not None:
            files[path.relative_to(directory).as_posix()] = (path.read_bytes(), kind)
    return files


class StaticFiles:
    """Serves ``/`` (index.html), ``/static/{name}`` and plotly.js."""

    def __init__(self, directory: Path = STATIC_DIR) -> None:
        self.files = _load(directory)
        self._plotly: tuple[bytes, bytes, str] | None = None
        self._plotly_lock = asyncio.Lock()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.index)
        router.add_get("/static/{name:.+}", self.static)
        router.add_get(PLOTLY_PATH, self.plotly)

    @staticmethod
    def _limit(request: web.Request) -> None:
        request.app[CONTEXT].auth.limit_address(client_address(request))

    def _response(self, name: str) -> web.Response:
        body, kind = self.files[name]
        resp = web.Response(body=body, content_type=kind)
        if kind.startswith("text/"):
            resp.charset = "utf-8"
        if kind == "text/html":
            resp.headers["Content-Security-Policy"] = CSP
        resp.headers["Cache-Control"] = "no-cache"  # revalidated: a new version shows at once
        resp.headers["X-Frame-Options"] = "DENY"
        return resp

    async def index(self, request: web.Request) -> web.Response:
        """The dashboard page (it holds no data; it calls the API itself)."""
        self._limit(request)
        return self._response("index.html")

    async def static(self, request: web.Request) -> web.Response:
        """One file of ``api/static/`` by its relative name."""
        self._limit(request)
        name = request.match_info["name"]
        if name not in self.files:
            raise ApiError(404, f"no static file {name!r}", details={"name": name})
        return self._response(name)

    async def _plotly_bodies(self) -> tuple[bytes, bytes, str]:
        async with self._plotly_lock:
            if self._plotly is None:
                self._plotly = await asyncio.to_thread(_build_plotly)
            return self._plotly

    async def plotly(self, request: web.Request) -> web.Response:
        """plotly.js from the installed package: cached by browsers, gzip when accepted."""
        self._limit(request)
        plain, packed, etag = await self._plotly_bodies()
        headers = {
            "Cache-Control": f"public, max-age={_PLOTLY_MAX_AGE_S}, immutable",
            "ETag": etag,
            "Vary": "Accept-Encoding",
        }
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        resp = web.Response(content_type="text/javascript", charset="utf-8", headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            resp.body = packed
            resp.headers["Content-Encoding"] = "gzip"
        else:
            resp.body = plain
        return resp


def _build_plotly() -> tuple[bytes, bytes, str]:
    """(plain, gzipped, ETag) of the installed plotly.js bundle."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:  # a dependency; an incomplete install gets a clear answer
        raise ApiError(
            503, "plotly is not installed (pip install plotly): charts are unavailable"
        ) from None
    plain = get_plotlyjs().encode()
    etag = '"' + hashlib.sha256(plain).hexdigest()[:20] + '"'
    return plain, gzip.compress(plain, compresslevel=6, mtime=0), etag
