"""translate: train, export and deploy GAN generators from the command line."""

__version__ = "0.1.0"
