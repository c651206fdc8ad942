"""Root of the test tree: its folder is on ``sys.path`` (pytest's prepend import mode), so ``tiny_models`` imports."""
