"""Traces and spans, cost and usage aggregation."""
