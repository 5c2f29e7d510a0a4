import sys

from bitprop.cli import main

sys.exit(main())
