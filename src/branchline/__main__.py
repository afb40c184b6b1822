"""`python -m branchline` runs the CLI."""

from branchline.cli.main import main

main()
