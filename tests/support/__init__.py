"""Helpers shared by the tests: stand-in networks, rasters, batch archives."""
