"""tfpanc.models."""
