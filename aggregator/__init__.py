"""aggregator: a self-hosted RSS/Atom/JSON Feed aggregator and republisher."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/aggregator-project/aggregator"
