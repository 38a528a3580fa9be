"""The daemon: ``nodeguard run`` schedules the concerns' entry points under systemd.

``parts.py`` is the table of what runs and how often; ``loop.py`` the scheduler and
the worker lanes; ``sdnotify.py`` systemd's readiness, watchdog and journald logging;
``status.py`` the status document ``nodeguard status`` reads; ``command.py`` the CLI.
"""
