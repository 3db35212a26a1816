"""ifpo.scale."""
