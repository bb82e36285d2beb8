"""Studies that reproduce figures and tables of the papers (toy problems, ablations)."""
