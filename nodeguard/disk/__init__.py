"""The disk guard: watch the filesystems holding logs, forecast, alert, reclaim.

The entry point is :func:`nodeguard.disk.cycle.disk_cycle`; delivery of what it
found is :func:`nodeguard.alerts.deliver.deliver`. See docs/alerts.md.
"""
