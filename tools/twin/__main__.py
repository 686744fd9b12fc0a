import sys

from tools.twin import main

sys.exit(main())
