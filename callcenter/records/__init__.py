"""Records: agent accounts, call detail records, agent state log and queue_log in SQL.

* models.py   -- the schema (SQLAlchemy 2.0); migrations/ -- Alembic revisions.
* db.py       -- URLs, engines, ``migrate``.
* cdr.py      -- pure: engine events -> rows to write (CDR, offers, state log, ...).
* queue_log.py -- pure: engine events -> Asterisk queue_log lines.
* writer.py   -- the shell: batches those rows and writes them off the reactor thread.
* accounts.py -- agent accounts with argon2 password hashes.
* queries.py  -- read helpers (recent contacts, knowledge-base search, CDR export).
* service.py  -- ``make_subsystem(acd)``; cli.py -- ``callcenter migrate|agents|cdr``.

docs/records.md describes the whole.
"""
