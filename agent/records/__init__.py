"""The owner's records: every answer given, visitors' feedback and the owner's curated answers, in a database
(SQLite in a file by default, PostgreSQL with `DATABASE_URL`) behind a small repository.

- `settings`: the knobs; `tables`: the schema (Alembic migrations in `migrations/`); `database`: the
  engine and the migrations at start; `repository`: every query; `writer`: answers leave the request path
  through a bounded queue to a batch writer thread; `curated`: the curated answers' in-memory index; `gaps`:
  questions the knowledge did not answer, grouped by meaning.
"""
