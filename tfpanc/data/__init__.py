"""tfpanc.data."""
