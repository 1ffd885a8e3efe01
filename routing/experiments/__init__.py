"""Routing experiments: a rule's staging version against production as an A/B split on real leads
(README: Experiments)."""
