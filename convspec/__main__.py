"""`python -m convspec`."""

from .cli import main

main()
