"""Training: batch samplers, contrastive loss, the encoder and the trainer."""
