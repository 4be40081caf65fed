import sys

from speech_llm.cli import main

sys.exit(main())
