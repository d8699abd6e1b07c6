import sys
from pathlib import Path

# the hypothesis strategies live beside the tests
sys.path.insert(0, str(Path(__file__).parent))
