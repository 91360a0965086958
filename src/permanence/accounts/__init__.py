"""Client accounts (the controllers), their numbers (DIDs) and their mandates."""
