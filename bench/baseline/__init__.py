"""The bench server: the product's settings and URLs plus one bare view, the baseline the intake is measured
against. Only the benchmarks load it, so the production URLconf never carries a benchmark view."""
