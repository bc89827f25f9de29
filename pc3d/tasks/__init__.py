"""Lightning tasks: loss, metrics and optimizers around the models."""
