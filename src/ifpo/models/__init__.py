"""Model loading and log-probability computation."""
