import sys

from agent.models_cli import main

sys.exit(main())
