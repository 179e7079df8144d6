"""Launch the ReID Inspector viewer (``python run_viewer.py --help`` for the options)."""
import sys

from viewer.app import main

if __name__ == "__main__":
    sys.exit(main())
