"""Start (or reuse) the embedded PostgreSQL from the `pgserver` package when no ENGINE_DSN is given.

The server's data directory survives between runs, so the second `engine demo` reuses it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A handle on a pgserver-managed PostgreSQL; `stop()` releases this process's claim on it."""

    def __init__(self, data_dir: Path, *, keep_running: bool = False) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.keep_running = keep_running
        self._server: Any = None

    def start(self) -> str:
        """Initialise the data directory if needed, start the server, and return its DSN."""
        with warnings.catch_warnings():
            # platformdirs warns about XDG_RUNTIME_DIR on headless machines; harmless here.
            warnings.simplefilter("ignore")
            from pgserver import get_server  # type: ignore[attr-defined]

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            mode = None if self.keep_running else "stop"
            self._server = get_server(self.data_dir, cleanup_mode=mode)
        uri: str = self._server.get_uri()
        log.info("embedded PostgreSQL ready in %s", self.data_dir)
        return uri

    def stop(self) -> None:
        """Release the server; pgserver stops it once no process holds it (unless keep_running)."""
        if self._server is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server.cleanup()
            self._server = None
