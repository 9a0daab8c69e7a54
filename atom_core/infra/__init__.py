"""Shared infrastructure: each piece has an in-process and a Redis implementation."""
