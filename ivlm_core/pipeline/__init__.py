"""Pipeline: the stages composed (Perceive -> Render -> Localize -> Lift -> Fit)."""
