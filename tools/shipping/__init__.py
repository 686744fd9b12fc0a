"""Shipping digitkit to Kaggle, split by job; ``python -m tools.ship`` is its command line.

    credentials.py    where the kaggle package finds credentials, and scrub(): no secret is ever printed
    kaggle_client.py  the one door to Kaggle: typed calls over the kaggle package's Python API (retries, timeouts,
                      one-line errors, and a dry run's refusal to send)
    checks.py         what is checked locally before any call (kernel folder, weights folder, submission CSV)
    commands.py       push, status, output, weights, submit, scores, data: the checks, then the client

Local-only code: it is never inlined into a notebook.
"""


class ShipError(Exception):
    """Shipping stopped; the message (one line) says what failed and what to do."""
