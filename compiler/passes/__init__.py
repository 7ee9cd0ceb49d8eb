"""IR -> IR passes. Each pass is a frozen dataclass (its fields are its options) with a
docstring stating what it requires and guarantees; ``edgehls.pipeline`` lists them in order."""
