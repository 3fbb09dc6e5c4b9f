"""Evaluations of the models and matchers on real and generated data (`gotcha eval ...`)."""
