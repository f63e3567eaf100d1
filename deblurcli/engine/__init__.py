"""Running a method over a photo: tiling, devices and precision."""
