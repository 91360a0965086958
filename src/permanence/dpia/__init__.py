"""Data-protection impact assessments (Art. 35), per account and processing."""
