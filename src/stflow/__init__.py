"""stflow: distributed primal-dual flows with spatio-temporal compressed communication."""

__version__ = "0.1.0"
