"""Deblurring methods: the registry of what ``--method`` can name, and how each one is run."""
