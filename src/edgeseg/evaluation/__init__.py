"""How good a model's masks are, as a user sees them (no TensorFlow): accuracy and temporal stability."""
