"""Generators shipped with translate; see README.md and manifest.json in this folder."""
