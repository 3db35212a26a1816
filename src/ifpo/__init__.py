"""ifpo."""
