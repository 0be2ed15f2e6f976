"""Training support shared by the recipes: run directories, callbacks."""
