import sys

from bench.ratelimit_bench import main

sys.exit(main(sys.argv[1:]))
