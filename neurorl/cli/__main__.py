"""``python -m neurorl.cli``."""
from . import run

run()
