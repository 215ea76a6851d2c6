"""Classifying collections of files: decode workers, cross-file batching, resumable output."""
