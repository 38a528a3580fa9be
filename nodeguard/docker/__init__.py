"""Docker: daemon.json logging keys and the containers' own log files."""
