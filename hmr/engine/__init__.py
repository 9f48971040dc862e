"""Training and evaluation engine: forward decoding, losses wiring, loop, checkpoints, evaluation."""
