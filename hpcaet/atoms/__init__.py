"""Atom model: tracing, species, refinement and S/Se pair flipping."""
