import sys

from qlp_agent.cli import main

sys.exit(main())
