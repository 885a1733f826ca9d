"""Composition root and lifecycle (DESIGN.md section 1): ``build.py`` builds every component,
``lifecycle.py`` starts them in order and stops them in reverse, ``services.py`` is what the
build hands to the API, commands and tests."""

from cryptomon.app.build import StoreParts, build_app, build_store
from cryptomon.app.lifecycle import App, Component, HubComponent, StartupError
from cryptomon.app.services import Services

__all__ = [
    "App",
    "Component",
    "HubComponent",
    "Services",
    "StartupError",
    "StoreParts",
    "build_app",
    "build_store",
]
