"""Allow ``python3 -m nodeguard``."""

from nodeguard.cli import main

raise SystemExit(main())
