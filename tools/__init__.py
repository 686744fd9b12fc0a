"""Command-line helpers that run outside Kaggle (data download, builds); never inlined into notebooks."""
