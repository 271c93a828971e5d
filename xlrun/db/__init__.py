"""The experiment database: ORM models, engine and migrations, store, work queue.

Only this package talks to the database.
"""
