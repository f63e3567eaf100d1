"""Network architectures as plain ``nn.Module``s whose parameter names match the authors' checkpoints."""
