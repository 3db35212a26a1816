"""Project maintenance scripts (python -m ifpo.tools.<name>)."""
