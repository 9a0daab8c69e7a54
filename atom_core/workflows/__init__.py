"""Durable workflows: spec, store, scheduler, executors."""
