"""`python -m cryptomon` is the same as `crypto-monitor`."""

from cryptomon.cli import main

raise SystemExit(main())
