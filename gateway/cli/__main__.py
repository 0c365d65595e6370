"""`python -m gateway.cli` is `hotline`."""

from gateway.cli import main

main()
