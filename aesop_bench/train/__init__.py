"""Training: AE pretraining and GAN-based SR training with the AESOP loss or the LDL objective."""
