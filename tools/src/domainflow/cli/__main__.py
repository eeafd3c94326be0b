"""`python -m domainflow.cli` is the `domainflow` command."""

from domainflow.cli.main import main

raise SystemExit(main())
