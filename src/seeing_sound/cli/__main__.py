import sys

from seeing_sound.cli import main

sys.exit(main())
