"""``defocus bench``: quality, speed and memory of methods on paired datasets, under one protocol."""
