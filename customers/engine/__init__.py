"""Engagement engine: pure numerical code (no Django imports)."""
