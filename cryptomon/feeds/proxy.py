"""A feed behind a proxy (``exchanges[].proxy``: HTTP or SOCKS).

cryptofeed's own ``http_proxy`` covers its asynchronous REST GETs only. The symbol list is
read with its synchronous client (``requests``, a class attribute shared by every feed) and
the websockets are opened by ``websockets.connect``: :func:`proxied` gives one feed class its
own synchronous client with the proxy, and the websocket connections get it through
``ws_proxy`` (applied by :class:`~cryptomon.feeds.supervisor.Supervised` to each connection's
``proxy`` argument, which ``websockets`` supports for HTTP CONNECT and SOCKS proxies).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import requests
from cryptofeed.connection import HTTPSync

from cryptomon.errors import ConfigError, Problem

SOCKS_MODULES = ("python_socks", "aiohttp_socks", "socks")
"""What a SOCKS proxy needs: websockets (python-socks), aiohttp (aiohttp-socks), requests
(PySocks): ``pip install 'cryptomon[socks]'``."""


def require_proxy_support(url: str, where: str) -> None:
    """ConfigError when ``url`` is a SOCKS proxy and the SOCKS packages are not installed."""
    if not url.lower().startswith("socks"):
        return
    missing = [m for m in SOCKS_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            [
                Problem(
                    where,
                    url.split("://", 1)[0] + "://...",
                    f"an http:// proxy, or install {', '.join(missing)} for SOCKS "
                    "(pip install 'cryptomon[socks]')",
                )
            ]
        )


class ProxiedHTTPSync(HTTPSync):
    """cryptofeed's synchronous REST client (symbol lists) through a proxy."""

    def __init__(self, proxy: str) -> None:
        super().__init__()
        self.proxy = proxy

    def read(  # noqa: PLR0917 - cryptofeed's HTTPSync.read signature
        self,
        address: str,
        params: Any = None,
        headers: Any = None,
        json: bool = False,
        text: bool = True,
        uuid: Any = None,
    ) -> Any:
        proxies = {"http": self.proxy, "https": self.proxy}
        response = requests.get(
            address, headers=headers, params=params, proxies=proxies, timeout=30
        )
        return self.process_response(response, address, json=json, text=text, uuid=uuid)


def proxied(feed_class: type, proxy: str) -> type:
    """A subclass of ``feed_class`` whose REST and websocket traffic goes through ``proxy``."""
    attrs = {"http_sync": ProxiedHTTPSync(proxy), "ws_proxy": proxy}
    return type(feed_class.__name__, (feed_class,), attrs)
