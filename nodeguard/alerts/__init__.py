"""Alerts and metrics: the lifecycle of an alert, the spool, and one module per sink.

Sinks are listed in :mod:`nodeguard.alerts.registry` (an explicit table); delivery is
:func:`nodeguard.alerts.deliver.deliver`. See docs/alerts.md.
"""
