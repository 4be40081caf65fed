"""The bottom layer every package may import (encoders, data_prep, speech_llm): errors shown to users."""
