"""Processor contracts (Art. 28), the sub-processor registry, and off-boarding."""
