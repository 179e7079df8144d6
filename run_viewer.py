"""Launch the ReID Inspector viewer from a checkout: the ``reid-inspector`` command of an
installed package (``python run_viewer.py --help`` for the options)."""
import sys

from viewer.app import main

if __name__ == "__main__":
    sys.exit(main())
