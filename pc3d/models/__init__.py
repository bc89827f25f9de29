"""Backbones, heads and building blocks: plain ``nn.Module``s, free of Lightning."""
