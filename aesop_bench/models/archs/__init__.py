"""Network architectures, with the module names of the official code so that official checkpoints load."""
