"""The public Python API: what `import translate` offers, one module per verb (re-exported from `translate`)."""
