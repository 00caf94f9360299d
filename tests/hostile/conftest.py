"""The hostile-input suite reuses the admin API's test support (tests/api/api_support.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
