"""Lightning module, callbacks and the training pipeline."""
