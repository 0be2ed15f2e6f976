"""tfpanc.methods."""
