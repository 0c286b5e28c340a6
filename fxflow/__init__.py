"""fxflow: declarative, config-driven torch.fx graph experiments with an auditable run record."""

__version__ = "0.1.0"
