"""tfpanc.inference."""
