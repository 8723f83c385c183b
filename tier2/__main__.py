import sys

from tier2.cli import main

sys.exit(main())
