"""Training stack (needs the `train` extra: pip install "edgeseg[train]")."""
