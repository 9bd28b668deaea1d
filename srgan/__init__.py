"""srgan: the SRGAN library (networks, losses, the LightningModule, training, inference, CLI)."""
