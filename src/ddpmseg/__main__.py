"""`python -m ddpmseg`: the `ddpmseg` command (`ddpmseg.cli`)."""
import sys

from ddpmseg.cli import main

sys.exit(main())
