"""`python -m speechvq ...` is the same as the `speechvq` command."""

from .cli import main

raise SystemExit(main())
