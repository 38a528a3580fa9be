"""Retention: logrotate-style rotation of log files, safe against hostile trees.

The entry point is :func:`nodeguard.rotation.runner.run_rotation_pass`.
"""

from __future__ import annotations

import logging

# Events are logged under "nodeguard.rotation"; whoever runs nodeguard (the daemon's
# journald handler, a CLI option) decides where they go. Until then they go nowhere,
# rather than to Python's last-resort stderr handler beside the printed report.
logging.getLogger("nodeguard.rotation").addHandler(logging.NullHandler())
