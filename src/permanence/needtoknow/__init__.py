"""Need-to-know for health data: operator assignments and break-glass access."""
