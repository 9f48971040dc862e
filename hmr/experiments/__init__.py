"""Experiments of issues 8 and 9: the lifting test bed, runners per experiment, the results report."""
