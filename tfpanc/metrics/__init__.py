"""tfpanc.metrics."""
