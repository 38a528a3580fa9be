"""nodeguard: keeps logs from filling a node's disks and warns before any disk fills."""

__version__ = "0.1.0"
