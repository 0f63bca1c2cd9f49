"""``python -m featurelens`` runs the command line."""

import sys

from featurelens.cli import main

sys.exit(main())
