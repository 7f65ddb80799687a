"""`python -m lambdalab`."""

import sys

from lambdalab.cli import main

sys.exit(main())
