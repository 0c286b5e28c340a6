"""`python -m fxflow ...`: the same entry point as the `fxflow` console script.

`python -m` puts the working folder first on sys.path; it comes off before anything else is
imported, so a module lying there (a `networkx.py`) never replaces an installed library.
The user's trusted packages are still found there, after the installed ones (fxflow.config.trust).
"""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from fxflow.cli import main  # noqa: E402 - after the path is set

if __name__ == "__main__":
    main()
