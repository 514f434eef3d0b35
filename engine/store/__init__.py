"""All database access of the engine: nothing outside this package runs SQL or imports asyncpg.

The pool, its type and DB_ERRORS (database.py); named SQL by aggregate (*_queries.py); typed
functions over them (outbound, outbox, carousel, admin); LISTEN/NOTIFY (notify.py).
"""
