"""journald: follow kubelet, runtime and kernel messages with a kept cursor; keep the journal
in bounds.

Entry points (each takes the validated config and a World, returns data, never prints):

- :func:`nodeguard.journal.follow.follow_once`: from the saved cursor (or the lookback) to
  the end, in bounded batches, the cursor saved after each; returns a ``JournalResult``
  (events, metrics, active conditions). ``follow_live`` does the same until
  ``World.stop`` is set, waiting on the journal in between.
- :func:`nodeguard.journal.follow.view_once` / ``view_live``: the CLI's ``journal
  follow``: from the saved cursor (read only), the lookback or a given time; the position
  kept in memory, no lock, nothing saved (the daemon remains the cursor's only writer).
- :func:`nodeguard.journal.follow.scan`: the rules over a time range; nothing saved.
- :mod:`nodeguard.journal.retention`: ``journal_usage``, ``enforce_retention`` and
  ``vacuum_to_floor`` (for the disk guard).

systemd-python is imported lazily (``reader.py``): without it the journal reports one
``unavailable`` event and the text-log path (``textlogs.py``) takes over in ``auto`` mode.
This package's ``__init__`` imports nothing, so the CLI stays fast.
"""
