import sys

from edi.cli import main

sys.exit(main())
