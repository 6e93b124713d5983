"""Re-engagement plans, steps, enrollments and the action outbox (see the plans issue)."""
