"""`python -m powerops` runs the CLI."""

from powerops.ops.cli import main

raise SystemExit(main())
