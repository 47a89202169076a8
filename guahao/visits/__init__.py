"""Visit day: check-in (V1) and the per-session queue (V2)."""
