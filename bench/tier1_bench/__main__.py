import sys

from bench.tier1_bench import main

sys.exit(main(sys.argv[1:]))
