"""Models: the card, model files (no torch needed), the network factory, preprocessing and the shipped weights."""
