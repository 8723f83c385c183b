import sys

from bench.tier2_bench import main

sys.exit(main(sys.argv[1:]))
