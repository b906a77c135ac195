"""Face swap: the autoencoder model, augmentation, losses, training and conversion."""
