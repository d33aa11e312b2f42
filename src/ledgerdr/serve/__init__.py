"""`ledgerdr serve`: QLDB's two wire APIs over the embedded ledgers of one data directory.

- `app.py` — the ASGI application: body limits, SigV4, routing, error rendering (never a stack trace).
- `sigv4.py` — AWS Signature Version 4 verification against the configured keys.
- `keys.py` — access keys from the command line, `LEDGERDR_ACCESS_KEYS` and the config's `[serve]`.
- `errors.py` — AWS's error codes and statuses, as both protocols render them.
- `catalog.py` — the ledgers of the data directory (`DIR/<name>.db`) and their control-plane state.
- `session_api.py` — `QLDBSession.SendCommand` (AWS JSON 1.0): sessions, transactions, pages, digests.
- `committer.py` — group commit: one writer connection per ledger, one fsync per group of queued commits.
- `messages.py` — QLDB's own wording for the errors drivers see (PartiQL, OCC, sessions).
- `control.py` — the `qldb` control plane (REST-JSON): ledgers, digests, blocks, revisions, tags.
- `exports.py` — ExportJournalToS3 and its descriptions, through ledgerdr's S3 store.
- `records.py` — small JSON state files written atomically.
- `threaded.py` — the default HTTP stack: a thread per connection, httptools parsing.
- `server.py` — binds the socket and runs the application on that stack, or on uvicorn (`--http httptools|h11`).
"""
