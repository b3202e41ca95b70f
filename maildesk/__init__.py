"""maildesk: an IT support desk run over plain email."""

__version__ = "0.1.0"
