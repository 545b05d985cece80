"""Small helpers shared by the exporter, the remediator and the sandbox (no service logic)."""
