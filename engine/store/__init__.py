"""All database access of the engine: the pool (database.py), named SQL (queries.py), operations."""
