"""ifpo.eval."""
