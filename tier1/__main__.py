import sys

from tier1.cli import main

sys.exit(main())
