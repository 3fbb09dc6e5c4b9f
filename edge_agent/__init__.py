"""Gotcha edge agent: photos in, Korean plates read, evidence-rule reports out."""

__version__ = "0.1.0"
