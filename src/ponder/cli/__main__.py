"""`python -m ponder.cli`, as the `ponder` command."""

from ponder.cli import main

main()
