"""`python -m powerops` runs the CLI."""

from powerops.cli import main

raise SystemExit(main())
