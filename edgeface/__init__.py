"""edgeface: compact facial-attribute networks from training to measured edge engines."""

__version__ = "0.1.0"
