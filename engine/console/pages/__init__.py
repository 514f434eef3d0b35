"""The console's pages, one module per section of the navigation; each has a class whose ``routes()`` the console
mounts under ``/console/``."""
