import sys

from gateway.regress.cli import main

sys.exit(main())
