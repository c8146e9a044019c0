"""Generator and discriminator networks. Plain nn.Modules with explicit keyword arguments: nothing here knows
about configs, files or ranks."""
