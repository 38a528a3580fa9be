"""Retention: logrotate-style rotation of log files, safe against hostile trees."""
