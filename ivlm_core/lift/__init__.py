"""Lift: 2D per-view masks -> per-vertex contact through precomputed sparse maps."""
