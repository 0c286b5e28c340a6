"""`python -m fxflow ...`: the same entry point as the `fxflow` console script."""

from fxflow.cli import main

if __name__ == "__main__":
    main()
