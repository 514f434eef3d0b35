"""The operator console: server-rendered pages at ``/console/`` for the people who run the engine.

``Console(...).app()`` is an aiohttp sub-application the engine's HTTP server mounts (``engine serve`` /
``engine run``). Pages are Jinja2 templates (``templates/``) with small live parts driven by htmx and one chart
(uPlot); the front-end files are vendored under ``static/vendor/`` with their licences (no CDN at run time).
:mod:`.security` guards every route (login, sessions, CSRF); each section of the navigation is a module of
:mod:`.pages`.
"""

from __future__ import annotations

from engine.console.server import Console

__all__ = ["Console"]
